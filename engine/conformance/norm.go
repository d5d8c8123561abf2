package conformance

import (
	"fmt"
	"math"
	"testing"

	"glimmer/engine"
)

func (s *suite) testGroupNorm(t *testing.T) {
	cases := []struct {
		shape    []int // [N, C, ...]
		groups   int
		sd, mean float64 // of the input
		eps      float32
	}{
		{[]int{2, 6, 5, 7}, 3, 1, 0, 1e-5},
		{[]int{1, 12, 4, 9}, 12, 1, 0, 1e-6}, // groups == channels
		{[]int{3, 8, 3, 5}, 1, 1, 0, 1e-5},   // one group: the whole image
		{[]int{1, 64, 5, 3}, 32, 1, 0, 1e-6}, // SD's 32 groups, 2 channels each
		{[]int{2, 10, 13}, 5, 1, 0, 1e-5},    // rank 3
		// Off centre: a variance taken as E[x²] - E[x]² in float32
		// loses digits here.
		{[]int{1, 6, 11, 13}, 2, 1, 3, 1e-5},
		// Variance 1e-5 of the order of eps, so eps must sit inside the
		// square root.
		{[]int{2, 4, 3, 7}, 2, 0.003, 0, 1e-5},
	}
	for _, tc := range cases {
		for _, silu := range []bool{false, true} {
			for _, wt := range []engine.DType{engine.F32, engine.F16} {
				name := fmt.Sprintf("%v_g%d_sd%g_mean%g_eps%g_silu%v%s", engine.Shape(tc.shape), tc.groups, tc.sd, tc.mean, tc.eps, silu, dtypeName(wt))
				s.run(t, "GroupNorm", name, func(c *tcase) {
					ch := tc.shape[1]
					x, xv := c.randnScaled(engine.F32, tc.sd, tc.mean, tc.shape...)
					gamma, gv := c.randn(wt, ch)
					beta, bv := c.randn(wt, ch)
					dst := c.out(tc.shape...)
					c.be.GroupNorm(dst, x, gamma, beta, engine.GroupNormParams{Groups: tc.groups, Eps: tc.eps, SiLU: silu})
					spatial := x.Numel() / (tc.shape[0] * ch)
					c.expect(dst, refGroupNorm(xv, gv, bv, tc.shape[0], ch, spatial, tc.groups, float64(tc.eps), silu), nmseNorm)
				})
			}
		}
	}
	// In place (dst is x), as the VAE's ResNets with a shortcut convolution
	// normalise their input.
	s.run(t, "GroupNorm", "in_place", func(c *tcase) {
		shape := []int{2, 8, 5, 7}
		x, xv := c.randnScaled(engine.F32, 1, 2, shape...)
		gamma, gv := c.randn(engine.F16, 8)
		beta, bv := c.randn(engine.F16, 8)
		c.be.GroupNorm(x, x, gamma, beta, engine.GroupNormParams{Groups: 4, Eps: 1e-5, SiLU: true})
		c.expect(x, refGroupNorm(xv, gv, bv, 2, 8, 35, 4, float64(float32(1e-5)), true), nmseNorm)
	})
}

// testGroupNormShift: GroupNorm of x + shift[row0 + n, c]
// (GroupNormParams.Shift and ShiftRow) against float64 on the float32
// sums, and bit for bit against the Binary Add of the used rows broadcast
// followed by GroupNorm, which is what it stands in for (a ResNet's time
// embedding). Shapes: small rows, and rows of 16,400 values that the GL
// backend splits into chunks; the shift has rows before and after those
// used, so a backend that ignores ShiftRow or reads past the used rows
// fails.
func (s *suite) testGroupNormShift(t *testing.T) {
	for _, tc := range []struct {
		shape        []int
		groups       int
		silu         bool
		row0, spares int // shift rows before the used ones, and in all beyond them
	}{{[]int{2, 6, 5, 7}, 3, true, 0, 0}, {[]int{1, 64, 3, 3}, 32, false, 3, 5}, {[]int{2, 8, 64, 64}, 2, true, 4, 6}} {
		name := fmt.Sprintf("%v_g%d_silu%v_row%d", engine.Shape(tc.shape), tc.groups, tc.silu, tc.row0)
		s.run(t, "GroupNormShift", name, func(c *tcase) {
			n, ch := tc.shape[0], tc.shape[1]
			spatial := engine.Shape(tc.shape).Numel() / (n * ch)
			xs := c.normals(engine.Shape(tc.shape).Numel(), 1, 1)
			x, _ := c.from(engine.F32, xs, tc.shape...)
			all := c.normals((n+tc.spares)*ch, 2, 0)
			shift, _ := c.from(engine.F32, all, n+tc.spares, ch) // [R, C]
			used := all[tc.row0*ch : (tc.row0+n)*ch]             // [N, C]
			gamma, gv := c.randn(engine.F16, ch)
			beta, bv := c.randn(engine.F16, ch)
			p := engine.GroupNormParams{Groups: tc.groups, Eps: 1e-5, SiLU: tc.silu}
			sum := make([]float64, len(xs)) // x + shift, rounded to float32
			for i, v := range xs {
				sum[i] = float64(v + used[i/spatial])
			}
			dst := c.out(tc.shape...)
			p.Shift, p.ShiftRow = shift, tc.row0
			c.be.GroupNorm(dst, x, gamma, beta, p)
			c.expect(dst, refGroupNorm(sum, gv, bv, n, ch, spatial, tc.groups, float64(float32(1e-5)), tc.silu), nmseNorm)

			rows, _ := c.from(engine.F32, used, append([]int{n, ch}, make1s(len(tc.shape)-2)...)...) // [N, C, 1, ...]
			two := c.out(tc.shape...)
			c.be.Binary(two, x, rows, engine.Add)
			p.Shift, p.ShiftRow = nil, 0
			c.be.GroupNorm(two, two, gamma, beta, p)
			c.expectSame(dst, two, "with the shift", "after a Binary Add")
		})
	}
}

// make1s is n ones (trailing axes of extent 1, for broadcasting).
func make1s(n int) []int {
	ones := make([]int, n)
	for i := range ones {
		ones[i] = 1
	}
	return ones
}

func (s *suite) testLayerNorm(t *testing.T) {
	cases := []struct {
		shape    []int
		sd, mean float64 // of the input
	}{
		{[]int{3, 5, 33}, 2, 0.5},
		{[]int{1, 77, 40}, 2, 0.5},
		{[]int{2, 3, 768}, 2, 0.5},
		{[]int{2, 9, 320}, 2, 0.5},  // a transformer's width at 320 channels
		{[]int{1, 3, 2500}, 2, 0.5}, // long rows: 625 vec4s over a row's threads
		{[]int{7, 1}, 2, 0.5},       // one column: the output is beta
		{[]int{13}, 2, 0.5},
		// Variance 1e-5 of the order of eps, so eps must sit inside the
		// square root. Centred: with a mean of 0.5, the float32 rounding
		// of the mean alone (3e-8) would be 1e-5 of every deviation and
		// put a correct float32 LayerNorm at NMSE ~5e-11.
		{[]int{4, 19}, 0.003, 0},
	}
	for _, tc := range cases {
		for _, wt := range []engine.DType{engine.F32, engine.F16} {
			s.run(t, "LayerNorm", fmt.Sprintf("%v_sd%g_mean%g%s", engine.Shape(tc.shape), tc.sd, tc.mean, dtypeName(wt)), func(c *tcase) {
				cols := tc.shape[len(tc.shape)-1]
				x, xv := c.randnScaled(engine.F32, tc.sd, tc.mean, tc.shape...)
				gamma, gv := c.randn(wt, cols)
				beta, bv := c.randn(wt, cols)
				dst := c.out(tc.shape...)
				const eps = 1e-5
				c.be.LayerNorm(dst, x, gamma, beta, eps)
				c.expect(dst, refLayerNorm(xv, gv, bv, cols, float64(float32(eps))), nmseNorm)
			})
		}
	}
}

func (s *suite) testSoftmax(t *testing.T) {
	cases := []struct {
		shape []int
		sd    float64 // spread of the logits
	}{
		{[]int{3, 7, 77}, 1},
		{[]int{1, 1000}, 1},
		{[]int{5, 1}, 1},
		{[]int{2, 3, 13}, 30}, // exp overflows float32 unless the max is subtracted
		{[]int{4, 130}, 400},  // ... and float64
	}
	for _, tc := range cases {
		s.run(t, "Softmax", fmt.Sprintf("%v_sd%g", engine.Shape(tc.shape), tc.sd), func(c *tcase) {
			x, xv := c.randnScaled(engine.F32, tc.sd, 0, tc.shape...)
			dst := c.out(tc.shape...)
			c.be.Softmax(dst, x)
			c.expect(dst, refSoftmax(xv, tc.shape[len(tc.shape)-1]), nmseSoftmax)
		})
	}
}

// attnCase is one Attention problem.
type attnCase struct {
	b, nq, nk, heads, dim int
	causal                bool
	scale                 float32 // 0: the default 1/sqrt(dim)
	sharp                 bool    // q·30: scores overflow exp unless the max is subtracted
}

func (a attnCase) name() string {
	n := fmt.Sprintf("b%d_q%d_k%d_h%d_d%d", a.b, a.nq, a.nk, a.heads, a.dim)
	if a.causal {
		n += "_causal"
	}
	if a.scale != 0 {
		n += fmt.Sprintf("_scale%g", a.scale)
	}
	if a.sharp {
		n += "_sharp"
	}
	return n
}

func (s *suite) testAttention(t *testing.T) {
	cases := []attnCase{
		// Self-attention, Nq == Nk.
		{b: 2, nq: 13, nk: 13, heads: 2, dim: 4},
		{b: 1, nq: 17, nk: 17, heads: 3, dim: 8},
		{b: 1, nq: 9, nk: 9, heads: 1, dim: 40},
		{b: 2, nq: 7, nk: 7, heads: 2, dim: 64},
		{b: 1, nq: 70, nk: 70, heads: 2, dim: 40}, // keys cross 64-wide blocks
		{b: 1, nq: 5, nk: 5, heads: 1, dim: 80},
		{b: 1, nq: 3, nk: 3, heads: 2, dim: 160},
		{b: 1, nq: 1, nk: 1, heads: 1, dim: 4},
		{b: 1, nq: 45, nk: 45, heads: 2, dim: 80},   // queries cross 32-wide blocks
		{b: 1, nq: 37, nk: 37, heads: 2, dim: 160},  // and 16-wide ones
		{b: 1, nq: 20, nk: 37, heads: 1, dim: 512},  // the VAE's single head
		{b: 1, nq: 70, nk: 140, heads: 1, dim: 512}, // over a 128-key tile
		// Cross-attention onto 77 text tokens (and other key counts).
		{b: 2, nq: 19, nk: 77, heads: 2, dim: 8},
		{b: 1, nq: 11, nk: 77, heads: 1, dim: 40},
		{b: 1, nq: 33, nk: 77, heads: 2, dim: 64},
		{b: 1, nq: 6, nk: 77, heads: 1, dim: 80},
		{b: 1, nq: 4, nk: 77, heads: 2, dim: 160},
		{b: 2, nq: 5, nk: 130, heads: 2, dim: 4},
		{b: 1, nq: 9, nk: 3, heads: 3, dim: 8},
		// Causal, as CLIP's text encoder.
		{b: 2, nq: 11, nk: 11, heads: 2, dim: 8, causal: true},
		{b: 1, nq: 77, nk: 77, heads: 1, dim: 64, causal: true},
		{b: 1, nq: 66, nk: 66, heads: 3, dim: 4, causal: true},
		{b: 1, nq: 150, nk: 150, heads: 1, dim: 40, causal: true}, // several query blocks and key tiles
		// Head sizes that are not a multiple of 4.
		{b: 1, nq: 7, nk: 9, heads: 3, dim: 5},
		{b: 2, nq: 5, nk: 77, heads: 2, dim: 6},
		{b: 1, nq: 13, nk: 13, heads: 2, dim: 3, causal: true},
		// An explicit scale.
		{b: 1, nq: 10, nk: 21, heads: 2, dim: 8, scale: 0.3},
		// Scores spread over hundreds: exp overflows without the max.
		{b: 1, nq: 7, nk: 77, heads: 2, dim: 40, sharp: true},
		{b: 1, nq: 9, nk: 9, heads: 1, dim: 8, causal: true, sharp: true},
	}
	for _, ac := range cases {
		s.run(t, "Attention", ac.name(), func(c *tcase) {
			c.attention(ac)
		})
	}
	// Self-attention reading q, k and v from one packed [B, N, 3·H·D]
	// (AttentionParams.Packed): against float64, and bit for bit against
	// the same attention of q, k and v in tensors of their own.
	for _, ac := range []attnCase{{b: 2, nq: 13, heads: 2, dim: 4}, {b: 1, nq: 70, heads: 2, dim: 40},
		{b: 2, nq: 45, heads: 2, dim: 80}, {b: 1, nq: 37, heads: 2, dim: 160}, {b: 1, nq: 9, heads: 3, dim: 5}} {
		ac.nk = ac.nq
		s.run(t, "AttentionPacked", "packed_"+ac.name(), func(c *tcase) {
			w := ac.heads * ac.dim
			qkv, pv := c.randn(engine.F32, ac.b, ac.nq, 3*w)
			part := func(i int) []float64 { // q, k or v of every row
				out := make([]float64, 0, ac.b*ac.nq*w)
				for r := range ac.b * ac.nq {
					out = append(out, pv[(3*r+i)*w:(3*r+i+1)*w]...)
				}
				return out
			}
			qv, kv, vv := part(0), part(1), part(2)
			dst := c.out(ac.b, ac.nq, w)
			c.be.Attention(dst, qkv, nil, nil, engine.AttentionParams{Heads: ac.heads, Packed: true})
			c.expect(dst, refAttention(qv, kv, vv, ac.b, ac.nq, ac.nk, ac.heads, ac.dim, 1/math.Sqrt(float64(ac.dim)), false), nmseSoftmax)

			sep := func(v []float64) *engine.Tensor {
				f := make([]float32, len(v))
				for i, x := range v {
					f[i] = float32(x)
				}
				t, _ := c.from(engine.F32, f, ac.b, ac.nq, w)
				return t
			}
			two := c.out(ac.b, ac.nq, w)
			c.be.Attention(two, sep(qv), sep(kv), sep(vv), engine.AttentionParams{Heads: ac.heads})
			c.expectSame(dst, two, "packed", "q, k and v apart")
		})
	}
}

func (c *tcase) attention(ac attnCase) {
	width := ac.heads * ac.dim
	qsd := 1.0
	if ac.sharp {
		qsd = 30
	}
	q, qv := c.randnScaled(engine.F32, qsd, 0, ac.b, ac.nq, width)
	k, kv := c.randn(engine.F32, ac.b, ac.nk, width)
	v, vv := c.randn(engine.F32, ac.b, ac.nk, width)
	dst := c.out(ac.b, ac.nq, width)
	c.be.Attention(dst, q, k, v, engine.AttentionParams{Heads: ac.heads, Scale: ac.scale, Causal: ac.causal})
	scale := float64(ac.scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(ac.dim))
	}
	c.expect(dst, refAttention(qv, kv, vv, ac.b, ac.nq, ac.nk, ac.heads, ac.dim, scale, ac.causal), nmseSoftmax)
}
