package conformance

import (
	"fmt"
	"math"
	"runtime/debug"
	"testing"

	"glimmer/engine"
)

// NMSE bounds of the backward ops, beside the forward ones in
// conformance.go (u² ≈ 3.6e-15 per rounding of independent sign).
const (
	// SumTo: float32 sums of up to ~4000 terms. A running sum of K unit
	// terms carries NMSE ≈ K·u²/3 ≈ 5e-12 at K = 4000, less in a tree or
	// a float64 accumulator; 1e-10 allows any order, yet one element
	// dropped from a 4000-term sum (NMSE ≈ 2.5e-4) fails.
	nmseReduce = 1e-10
	// GroupNorm and LayerNorm backward: the forward's statistics plus two
	// more group sums (Σ gamma·dz, Σ gamma·dz·x̂) and a difference of
	// three terms per element, which cancels (dx sums to zero over a
	// group): a float32 implementation lands near 1e-11 on the suite's
	// cases, so 1e-9, ten times the forward bound; a wrong mean, a
	// missing x̂ term or a biased/unbiased mix-up is ≥ 1e-3.
	nmseNormGrad = 1e-9
	// Softmax backward: a row dot product of up to 1000 terms and one
	// product per element: ≈ 1e-13; the forward's 1e-10.
	nmseSoftmaxGrad = nmseSoftmax
	// Attention backward: recomputed scores (D-term dot products and
	// exp), then dP = dO·Vᵀ, Δ and dS = P(dP - Δ), which cancels where
	// one key dominates, and Nq- or Nk-term sums for dq, dk, dv: about
	// ten times the forward's rounding, so ten times its bound.
	nmseAttentionGrad = 1e-9
	// AdamW moments m and v: two or three roundings per step over three
	// steps: ≈ 1e-14; the elementwise bound.
	nmseAdamWMoments = nmseElementwise
	// AdamW parameter: its error is measured in units of the learning
	// rate, Σ(got - ref)² / (n·LR²), because Adam's normalised step moves
	// every element by about LR whatever its gradient, while param itself
	// is dominated by its unchanged value. Storing param in float32 rounds
	// it by up to 1.2e-7 (|param| < 4) per step, three steps against
	// LR = 0.05: at most (3.6e-7/0.05)² ≈ 5e-11 per element; sqrt, the
	// division and pow add a few ulp of the step. 1e-9 accepts that and
	// rejects a missing bias correction or weight decay (≥ 1e-4) and even
	// decay taken from the updated param (≈ 2.5e-7).
	adamWParamBound = 1e-9
)

// RunGrad runs the backward-op suite (engine.GradOps) against backends
// made by newBackend: one subtest per op, each with cases of awkward sizes
// compared with the float64 references of grad_reference.go. A panic in an
// op (an op not implemented yet) fails only its case, so a backend can
// land its ops one by one and run a single op with
// -run 'TestGrad.*/Conv2DBackwardData'.
func RunGrad(t *testing.T, newBackend func() engine.TrainBackend) {
	be := newBackend()
	defer func() {
		if err := be.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	t.Logf("backend: %s", be.Name())
	s := &gradSuite{suite: suite{be: be}, be: be}
	t.Run("SumTo", s.testSumTo)
	t.Run("Conv2DBackwardData", s.testConv2DBackwardData)
	t.Run("Conv2DBackwardWeight", s.testConv2DBackwardWeight)
	t.Run("GroupNormBackward", s.testGroupNormBackward)
	t.Run("LayerNormBackward", s.testLayerNormBackward)
	t.Run("SoftmaxBackward", s.testSoftmaxBackward)
	t.Run("AttentionBackward", s.testAttentionBackward)
	t.Run("UnaryBackward", s.testUnaryBackward)
	t.Run("GEGLUBackward", s.testGEGLUBackward)
	t.Run("Upsample2xBackward", s.testUpsample2xBackward)
	t.Run("Split", s.testSplit)
	t.Run("AdamW", s.testAdamW)
}

// gradSuite is the forward suite's state with the backend's GradOps.
type gradSuite struct {
	suite
	be engine.TrainBackend
}

// gcase is one backward case: a forward case plus the GradOps to call.
type gcase struct {
	*tcase
	g engine.TrainBackend
}

// run runs body as subtest name, seeded like the forward cases, and turns
// a panic inside it into a failure of this case alone.
func (s *gradSuite) run(t *testing.T, op, name string, body func(c *gcase)) {
	t.Helper()
	s.suite.run(t, op, name, func(c *tcase) {
		defer func() {
			if r := recover(); r != nil {
				c.Errorf("%s panicked: %v\n%s", op, r, debug.Stack())
			}
		}()
		body(&gcase{tcase: c, g: s.be})
	})
}

func (s *gradSuite) testSumTo(t *testing.T) {
	cases := []struct{ x, dst []int }{
		{[]int{2, 9, 11}, []int{11}},           // a linear layer's bias from [N, L, C]
		{[]int{3, 50, 130}, []int{130}},        // ... wider than a tile of columns
		{[]int{2, 5, 7, 9}, []int{1, 5, 1, 1}}, // a convolution's bias from [N, C, H, W]
		{[]int{3, 7, 5, 3}, []int{7, 1, 1}},    // ... written without the leading 1
		{[]int{1, 13, 17, 19}, []int{1, 13, 1, 1}},
		{[]int{3, 4, 5}, []int{1}},                 // a scalar from anything
		{[]int{13}, []int{1}},                      // ... from a vector
		{[]int{4, 33, 31}, []int{1, 1, 1}},         // ... of full rank
		{[]int{1}, []int{1}},                       // nothing to sum
		{[]int{2, 3, 5}, []int{2, 3, 5}},           // same shape: a copy
		{[]int{4, 6, 9}, []int{4, 1, 9}},           // [B, 1, N]: over the middle axis
		{[]int{7, 33, 65}, []int{7, 1, 1}},         // per-row sums over the trailing axes
		{[]int{2, 3, 4, 5}, []int{2, 1, 4, 1}},     // kept and summed axes interleaved
		{[]int{2, 3, 4, 5}, []int{3, 1, 5}},        // ... the other way round
		{[]int{3, 1, 7}, []int{1, 1, 7}},           // x with an extent 1
		{[]int{2, 6, 3, 11, 3}, []int{6, 1, 1, 3}}, // rank 5
		{[]int{5, 4000}, []int{5, 1}},              // long rows
		{[]int{4000, 3}, []int{3}},                 // long columns
	}
	for _, tc := range cases {
		s.run(t, "SumTo", fmt.Sprint(engine.Shape(tc.x), "_to_", engine.Shape(tc.dst)), func(c *gcase) {
			x, xv := c.randn(engine.F32, tc.x...)
			dst := c.out(tc.dst...)
			c.g.SumTo(dst, x)
			c.expect(dst, refSumTo(xv, tc.x, tc.dst), nmseReduce)
		})
	}
}

// gradConvShapes are the convolution backward cases: 1x1 and 3x3 kernels,
// strides 1 and 2 with odd and even inputs (a strided input's size is
// ambiguous from dy's), padding 0 and 1, and GEMM-tile-crossing sizes.
var gradConvShapes = []struct {
	name string
	convShape
}{
	{"1x1", convShape{n: 2, c: 5, h: 7, w: 9, oc: 6, kh: 1, kw: 1, sh: 1, sw: 1}},
	{"1x1_pad1", convShape{n: 1, c: 3, h: 4, w: 5, oc: 2, kh: 1, kw: 1, sh: 1, sw: 1, ph: 1, pw: 1}},
	{"1x1_stride2", convShape{n: 2, c: 3, h: 7, w: 6, oc: 4, kh: 1, kw: 1, sh: 2, sw: 2}},
	{"3x3_pad1", convShape{n: 1, c: 3, h: 11, w: 13, oc: 7, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
	{"3x3_pad1_batch", convShape{n: 3, c: 8, h: 9, w: 6, oc: 5, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
	{"3x3_pad0", convShape{n: 2, c: 2, h: 6, w: 5, oc: 3, kh: 3, kw: 3, sh: 1, sw: 1}},
	{"3x3_stride2_pad0_odd", convShape{n: 1, c: 4, h: 9, w: 11, oc: 3, kh: 3, kw: 3, sh: 2, sw: 2}},
	{"3x3_stride2_pad0_even", convShape{n: 2, c: 4, h: 10, w: 12, oc: 3, kh: 3, kw: 3, sh: 2, sw: 2}},
	{"3x3_stride2_pad1_odd", convShape{n: 2, c: 5, h: 9, w: 7, oc: 4, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1}},
	{"3x3_stride2_pad1_even", convShape{n: 1, c: 5, h: 10, w: 8, oc: 4, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1}},
	{"4x4_stride2_pad1", convShape{n: 1, c: 2, h: 9, w: 13, oc: 3, kh: 4, kw: 4, sh: 2, sw: 2, ph: 1, pw: 1}},
	{"5x3_stride1x2_pad2x1", convShape{n: 1, c: 3, h: 8, w: 10, oc: 2, kh: 5, kw: 3, sh: 1, sw: 2, ph: 2, pw: 1}},
	{"kernel_is_image", convShape{n: 2, c: 3, h: 3, w: 5, oc: 4, kh: 3, kw: 5, sh: 1, sw: 1}},
	// C·KH·KW = 261 and 272 pixels both cross 256-wide GEMM tiles.
	{"3x3_pad1_deep", convShape{n: 1, c: 29, h: 16, w: 17, oc: 9, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
	// 131 output channels: the reduction of dx runs over > 128.
	{"3x3_pad1_wide", convShape{n: 2, c: 3, h: 7, w: 6, oc: 131, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
	{"1x1_tiles", convShape{n: 1, c: 130, h: 17, w: 16, oc: 33, kh: 1, kw: 1, sh: 1, sw: 1}},
}

func convParams(cs convShape) engine.Conv2DParams {
	return engine.Conv2DParams{StrideH: cs.sh, StrideW: cs.sw, PadH: cs.ph, PadW: cs.pw}
}

func (s *gradSuite) testConv2DBackwardData(t *testing.T) {
	for _, sh := range gradConvShapes {
		for _, wt := range []engine.DType{engine.F32, engine.F16} {
			cs := sh.convShape
			s.run(t, "Conv2DBackwardData", sh.name+dtypeName(wt), func(c *gcase) {
				w, wv := c.randn(wt, cs.oc, cs.c, cs.kh, cs.kw)
				dy, dyv := c.randn(engine.F32, cs.n, cs.oc, cs.outH(), cs.outW())
				dx := c.out(cs.n, cs.c, cs.h, cs.w)
				c.g.Conv2DBackwardData(dx, dy, w, convParams(cs))
				c.expect(dx, refConv2DBackwardData(dyv, wv, cs), nmseGEMM)
			})
		}
	}
}

func (s *gradSuite) testConv2DBackwardWeight(t *testing.T) {
	for _, sh := range gradConvShapes {
		cs := sh.convShape
		s.run(t, "Conv2DBackwardWeight", sh.name, func(c *gcase) {
			x, xv := c.randn(engine.F32, cs.n, cs.c, cs.h, cs.w)
			dy, dyv := c.randn(engine.F32, cs.n, cs.oc, cs.outH(), cs.outW())
			dw := c.out(cs.oc, cs.c, cs.kh, cs.kw)
			p := convParams(cs)
			if cs.sh == 1 && cs.sw == 1 {
				p.StrideH, p.StrideW = 0, 0 // zero strides mean 1
			}
			c.g.Conv2DBackwardWeight(dw, x, dy, p)
			c.expect(dw, refConv2DBackwardWeight(xv, dyv, cs), nmseGEMM)
		})
	}
}

// wantGrads names which of an op's optional gradients a case asks for.
type wantGrads struct {
	name              string
	dx, dgamma, dbeta bool
}

var normWants = []wantGrads{
	{"all", true, true, true},
	{"dx_only", true, false, false},
	{"params_only", false, true, true},
	{"dgamma_only", false, true, false},
}

func (s *gradSuite) testGroupNormBackward(t *testing.T) {
	cases := []struct {
		shape    []int // [N, C, ...]
		groups   int
		sd, mean float64 // of the input
		eps      float32
	}{
		{[]int{2, 6, 5, 7}, 3, 1, 0, 1e-5},
		{[]int{1, 12, 4, 9}, 12, 1, 0, 1e-6}, // groups == channels
		{[]int{3, 8, 3, 5}, 1, 1, 0, 1e-5},   // one group: the whole image
		{[]int{2, 64, 5, 3}, 32, 1, 0, 1e-6}, // SD's 32 groups, 2 channels each
		{[]int{2, 10, 13}, 5, 1, 0, 1e-5},    // rank 3
		{[]int{1, 6, 11, 13}, 2, 1, 3, 1e-5}, // off centre
		{[]int{2, 4, 3, 7}, 2, 0.003, 0, 1e-5},
		{[]int{1, 4, 33, 31}, 2, 1, 0, 1e-5}, // 2046 values per group
	}
	for _, tc := range cases {
		for _, silu := range []bool{false, true} {
			for _, wt := range []engine.DType{engine.F32, engine.F16} {
				wants := normWants[:1]
				if wt == engine.F32 && !silu {
					wants = normWants
				}
				for _, want := range wants {
					name := fmt.Sprintf("%v_g%d_sd%g_mean%g_eps%g_silu%v%s_%s", engine.Shape(tc.shape), tc.groups, tc.sd, tc.mean, tc.eps, silu, dtypeName(wt), want.name)
					s.run(t, "GroupNormBackward", name, func(c *gcase) {
						ch := tc.shape[1]
						x, xv := c.randnScaled(engine.F32, tc.sd, tc.mean, tc.shape...)
						gamma, gv := c.randn(wt, ch)
						beta, bv := c.randn(wt, ch)
						dy, dyv := c.randn(engine.F32, tc.shape...)
						var dx, dgamma, dbeta *engine.Tensor
						if want.dx {
							dx = c.out(tc.shape...)
						}
						if want.dgamma {
							dgamma = c.out(ch)
						}
						if want.dbeta {
							dbeta = c.out(ch)
						}
						p := engine.GroupNormParams{Groups: tc.groups, Eps: tc.eps, SiLU: silu}
						c.g.GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta, p)
						spatial := x.Numel() / (tc.shape[0] * ch)
						rdx, rdg, rdb := refGroupNormBackward(dyv, xv, gv, bv, tc.shape[0], ch, spatial, tc.groups, float64(tc.eps), silu)
						c.expectSome(dx, rdx, dgamma, rdg, dbeta, rdb, nmseNormGrad)
					})
				}
			}
		}
	}
}

// expectSome compares each gradient that was asked for.
func (c *gcase) expectSome(dx *engine.Tensor, rdx []float64, dgamma *engine.Tensor, rdg []float64, dbeta *engine.Tensor, rdb []float64, bound float64) {
	c.Helper()
	if dx != nil {
		c.expect(dx, rdx, bound)
	}
	if dgamma != nil {
		c.expect(dgamma, rdg, bound)
	}
	if dbeta != nil {
		c.expect(dbeta, rdb, bound)
	}
}

func (s *gradSuite) testLayerNormBackward(t *testing.T) {
	cases := []struct {
		shape    []int
		sd, mean float64 // of the input
	}{
		{[]int{3, 5, 33}, 2, 0.5},
		{[]int{1, 77, 40}, 2, 0.5},
		{[]int{2, 3, 768}, 2, 0.5},
		{[]int{7, 1}, 2, 0.5}, // one column: dx is zero
		{[]int{13}, 2, 0.5},
		{[]int{4, 19}, 0.003, 0}, // variance of the order of eps
		{[]int{130, 9}, 1, 0},    // dgamma summed over many rows
	}
	for _, tc := range cases {
		for _, wt := range []engine.DType{engine.F32, engine.F16} {
			wants := normWants[:1]
			if wt == engine.F32 {
				wants = normWants
			}
			for _, want := range wants {
				name := fmt.Sprintf("%v_sd%g_mean%g%s_%s", engine.Shape(tc.shape), tc.sd, tc.mean, dtypeName(wt), want.name)
				s.run(t, "LayerNormBackward", name, func(c *gcase) {
					cols := tc.shape[len(tc.shape)-1]
					x, xv := c.randnScaled(engine.F32, tc.sd, tc.mean, tc.shape...)
					gamma, gv := c.randn(wt, cols)
					dy, dyv := c.randn(engine.F32, tc.shape...)
					var dx, dgamma, dbeta *engine.Tensor
					if want.dx {
						dx = c.out(tc.shape...)
					}
					if want.dgamma {
						dgamma = c.out(cols)
					}
					if want.dbeta {
						dbeta = c.out(cols)
					}
					const eps = 1e-5
					c.g.LayerNormBackward(dx, dgamma, dbeta, dy, x, gamma, eps)
					rdx, rdg, rdb := refLayerNormBackward(dyv, xv, gv, cols, float64(float32(eps)))
					c.expectSome(dx, rdx, dgamma, rdg, dbeta, rdb, nmseNormGrad)
				})
			}
		}
	}
}

func (s *gradSuite) testSoftmaxBackward(t *testing.T) {
	cases := []struct {
		shape []int
		sd    float64 // spread of the logits
	}{
		{[]int{3, 7, 77}, 1},
		{[]int{1, 1000}, 1},
		{[]int{5, 1}, 1}, // y = 1: dx is zero
		{[]int{2, 3, 13}, 5},
	}
	for _, tc := range cases {
		s.run(t, "SoftmaxBackward", fmt.Sprintf("%v_sd%g", engine.Shape(tc.shape), tc.sd), func(c *gcase) {
			cols := tc.shape[len(tc.shape)-1]
			// y is a softmax output, as the op receives it.
			logits := c.normals(engine.Shape(tc.shape).Numel(), tc.sd, 0)
			y, yv := c.from(engine.F32, toFloat32(refSoftmax(float32s(logits), cols)), tc.shape...)
			dy, dyv := c.randn(engine.F32, tc.shape...)
			dx := c.out(tc.shape...)
			c.g.SoftmaxBackward(dx, dy, y)
			c.expect(dx, refSoftmaxBackward(dyv, yv, cols), nmseSoftmaxGrad)
		})
	}
}

func float32s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func toFloat32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func (s *gradSuite) testAttentionBackward(t *testing.T) {
	cases := []attnCase{
		{b: 2, nq: 13, nk: 13, heads: 2, dim: 4},
		{b: 1, nq: 17, nk: 17, heads: 3, dim: 8},
		{b: 1, nq: 9, nk: 9, heads: 1, dim: 40},
		{b: 1, nq: 70, nk: 70, heads: 2, dim: 40}, // keys cross 64-wide blocks
		{b: 1, nq: 1, nk: 1, heads: 1, dim: 4},
		// Cross-attention, Nq ≠ Nk.
		{b: 2, nq: 19, nk: 77, heads: 2, dim: 8},
		{b: 1, nq: 33, nk: 77, heads: 2, dim: 64},
		{b: 1, nq: 9, nk: 3, heads: 3, dim: 8},
		{b: 1, nq: 20, nk: 37, heads: 1, dim: 160},
		// Causal.
		{b: 2, nq: 11, nk: 11, heads: 2, dim: 8, causal: true},
		{b: 1, nq: 66, nk: 66, heads: 3, dim: 4, causal: true},
		{b: 1, nq: 77, nk: 77, heads: 1, dim: 64, causal: true},
		// Head sizes that are not a multiple of 4, an explicit scale.
		{b: 1, nq: 7, nk: 9, heads: 3, dim: 5},
		{b: 1, nq: 13, nk: 13, heads: 2, dim: 3, causal: true},
		{b: 1, nq: 10, nk: 21, heads: 2, dim: 8, scale: 0.3},
	}
	for _, ac := range cases {
		s.run(t, "AttentionBackward", ac.name(), func(c *gcase) {
			width := ac.heads * ac.dim
			q, qv := c.randn(engine.F32, ac.b, ac.nq, width)
			k, kv := c.randn(engine.F32, ac.b, ac.nk, width)
			v, vv := c.randn(engine.F32, ac.b, ac.nk, width)
			dy, dyv := c.randn(engine.F32, ac.b, ac.nq, width)
			dq := c.out(ac.b, ac.nq, width)
			dk := c.out(ac.b, ac.nk, width)
			dv := c.out(ac.b, ac.nk, width)
			c.g.AttentionBackward(dq, dk, dv, dy, q, k, v, engine.AttentionParams{Heads: ac.heads, Scale: ac.scale, Causal: ac.causal})
			scale := float64(ac.scale)
			if scale == 0 {
				scale = 1 / math.Sqrt(float64(ac.dim))
			}
			rq, rk, rv := refAttentionBackward(dyv, qv, kv, vv, ac.b, ac.nq, ac.nk, ac.heads, ac.dim, scale, ac.causal)
			c.expect(dq, rq, nmseAttentionGrad)
			c.expect(dk, rk, nmseAttentionGrad)
			c.expect(dv, rv, nmseAttentionGrad)
		})
	}
}

// unaryGradBounds: the derivatives cost what the forward ops do (one exp
// or erf, a few products), except ReLU's, which passes dy or 0 exactly.
var unaryGradBounds = map[engine.UnaryOp]float64{
	engine.SiLU:      nmseSigmoid,
	engine.GELU:      nmseGELU,
	engine.QuickGELU: nmseSigmoid,
	engine.ReLU:      nmseCopy,
	engine.Tanh:      nmseSigmoid, // 1 - tanh² cancels in the tails, but there |dx| < 1e-3
	engine.Exp:       nmseSigmoid,
}

func (s *gradSuite) testUnaryBackward(t *testing.T) {
	shapes := [][]int{{3, 5, 7}, {1000}, {2, 333}, {1}}
	for _, u := range unaryRefs {
		for _, shape := range shapes {
			s.run(t, "UnaryBackward", fmt.Sprint(u.op, engine.Shape(shape)), func(c *gcase) {
				// sd 3 reaches the tails, where sigmoid saturates.
				x, xv := c.randnScaled(engine.F32, 3, 0, shape...)
				dy, dyv := c.randn(engine.F32, shape...)
				dx := c.out(shape...)
				c.g.UnaryBackward(dx, dy, x, u.op)
				c.expect(dx, refUnaryBackward(dyv, xv, unaryDeriv(u.op)), unaryGradBounds[u.op])
			})
		}
	}
}

func (s *gradSuite) testGEGLUBackward(t *testing.T) {
	shapes := [][]int{{3, 7, 10}, {2, 19, 80}, {1, 2}, {5, 2 * 33}}
	for _, shape := range shapes {
		s.run(t, "GEGLUBackward", fmt.Sprint(engine.Shape(shape)), func(c *gcase) {
			x, xv := c.randnScaled(engine.F32, 2, 0, shape...)
			f := shape[len(shape)-1] / 2
			outShape := append(append([]int(nil), shape[:len(shape)-1]...), f)
			dy, dyv := c.randn(engine.F32, outShape...)
			dx := c.out(shape...)
			c.g.GEGLUBackward(dx, dy, x)
			c.expect(dx, refGEGLUBackward(dyv, xv, f), nmseGELU)
		})
	}
}

func (s *gradSuite) testUpsample2xBackward(t *testing.T) {
	for _, shape := range [][]int{{2, 3, 5, 7}, {1, 1, 1, 1}, {1, 4, 3, 8}, {2, 5, 17, 9}} {
		s.run(t, "Upsample2xBackward", fmt.Sprint(engine.Shape(shape)), func(c *gcase) {
			dy, dyv := c.randn(engine.F32, shape[0], shape[1], 2*shape[2], 2*shape[3])
			dx := c.out(shape...)
			c.g.Upsample2xBackward(dx, dy)
			// Three roundings of a four-term sum, in any order.
			c.expect(dx, refUpsample2xBackward(dyv, shape[0]*shape[1], shape[2], shape[3]), nmseElementwise)
		})
	}
}

func (s *gradSuite) testSplit(t *testing.T) {
	cases := []struct{ a, b []int }{
		{[]int{2, 3, 5, 7}, []int{2, 4, 5, 7}},
		{[]int{3, 5}, []int{3, 2}},
		{[]int{2, 1, 9}, []int{2, 6, 9}},
		{[]int{1, 320, 3, 3}, []int{1, 7, 3, 3}},
	}
	for _, sc := range cases {
		for _, keep := range []string{"both", "a_only", "b_only"} {
			s.run(t, "Split", fmt.Sprint(engine.Shape(sc.a), engine.Shape(sc.b), "_", keep), func(c *gcase) {
				shape := append([]int(nil), sc.a...)
				shape[1] += sc.b[1]
				x, xv := c.randn(engine.F32, shape...)
				var a, b *engine.Tensor
				if keep != "b_only" {
					a = c.out(sc.a...)
				}
				if keep != "a_only" {
					b = c.out(sc.b...)
				}
				c.g.Split(a, b, x)
				rest := engine.Shape(sc.a).Numel() / (sc.a[0] * sc.a[1])
				ra, rb := refSplit(xv, sc.a[0], sc.a[1], sc.b[1], rest)
				if a != nil {
					c.expect(a, ra, nmseCopy)
				}
				if b != nil {
					c.expect(b, rb, nmseCopy)
				}
			})
		}
	}
}

func (s *gradSuite) testAdamW(t *testing.T) {
	base := engine.AdamWParams{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	cases := []struct {
		name   string
		shape  []int
		p      engine.AdamWParams
		gradSD float64
		first  int  // the first step's t
		warm   bool // start from random moments, as mid-training
	}{
		{"plain", []int{7, 13}, base, 1, 1, false},
		{"one", []int{1}, base, 1, 1, false},
		{"large", []int{3, 1111}, base, 1, 1, false},
		{"scaled", []int{5, 9}, withScale(base, 0.37), 1, 1, false},
		{"no_decay", []int{17}, withDecay(base, 0), 1, 1, false},
		{"strong_decay", []int{17}, withDecay(base, 0.5), 1, 1, false},
		// Gradients of the order of eps: eps's place in the denominator
		// matters.
		{"eps_matters", []int{4, 5}, withEps(base, 1e-3), 1e-3, 1, false},
		// Late in training: β^t underflows the corrections towards 1.
		{"warm_step1000", []int{6, 7}, withScale(base, 2), 1, 1000, true},
	}
	for _, ac := range cases {
		s.run(t, "AdamW", ac.name, func(c *gcase) {
			param, pv := c.randn(engine.F32, ac.shape...)
			n := param.Numel()
			mVals, vVals := make([]float32, n), make([]float32, n) // zero at step 1
			if ac.warm {
				mVals = c.normals(n, 0.1, 0)
				vVals = c.normals(n, 0.1, 0)
				for i := range vVals {
					vVals[i] *= vVals[i] // v ≥ 0
				}
			}
			m, mv := c.from(engine.F32, mVals, ac.shape...)
			v, vv := c.from(engine.F32, vVals, ac.shape...)
			c.adamSteps(ac.p, ac.first, ac.gradSD, ac.shape, param, m, v, pv, mv, vv)
		})
	}
}

func withScale(p engine.AdamWParams, s float32) engine.AdamWParams { p.GradScale = s; return p }
func withDecay(p engine.AdamWParams, d float32) engine.AdamWParams { p.WeightDecay = d; return p }
func withEps(p engine.AdamWParams, e float32) engine.AdamWParams   { p.Eps = e; return p }

// adamSteps runs three AdamW steps from t = first with fresh random
// gradients and, after each, compares m, v and param with the float64
// trajectory of refAdamW from the same start.
func (c *gcase) adamSteps(p engine.AdamWParams, first int, gradSD float64, shape []int, param, m, v *engine.Tensor, pv, mv, vv []float64) {
	c.Helper()
	for step := first; step < first+3; step++ {
		grad, gv := c.randnScaled(engine.F32, gradSD, 0, shape...)
		p.Step = step
		c.g.AdamW(param, grad, m, v, p)
		refAdamW(pv, gv, mv, vv, p)
		c.expect(m, mv, nmseAdamWMoments)
		c.expect(v, vv, nmseAdamWMoments)
		got, err := c.be.Read(param)
		if err != nil {
			c.Fatalf("Read: %v", err)
		}
		var errSum float64
		for i, g := range got {
			if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
				c.Fatalf("%v: element %d is %v after step %d", param, i, g, step)
			}
			d := float64(g) - pv[i]
			errSum += d * d
		}
		lr := float64(p.LR)
		e := errSum / (float64(len(got)) * lr * lr)
		if e > adamWParamBound {
			c.Errorf("%v after step %d: mean squared error %.3g LR² > %.3g LR²", param, step, e, adamWParamBound)
			continue
		}
		c.Logf("param after step %d: mean squared error %.3g LR² (bound %.3g LR²)", step, e, adamWParamBound)
	}
}
