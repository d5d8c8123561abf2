package conformance

import (
	"fmt"
	"testing"

	"glimmer/engine"
)

// mmVariant is one combination of MatMul's options beyond the sizes.
type mmVariant struct {
	name   string
	shared bool         // one b for all batches: rank 2, like a weight
	batch1 bool         // ... given as rank 3 with batch 1 instead
	bias   bool         // add a bias [N]
	alpha  float32      // 0 means 1
	wtype  engine.DType // dtype of b and bias
}

var mmVariants = []mmVariant{
	{name: "plain"},
	{name: "bias_alpha", bias: true, alpha: 0.37},
	{name: "shared_bias", shared: true, bias: true},
	{name: "shared_batch1_bias_alpha_f16", shared: true, batch1: true, bias: true, alpha: -1.25, wtype: engine.F16},
	{name: "alpha_f16", alpha: 2, wtype: engine.F16},
}

func (s *suite) testMatMul(t *testing.T) {
	sizes := []struct{ batch, m, n, k int }{
		{1, 1, 1, 1},
		{2, 3, 5, 7},
		{3, 17, 13, 29},
		{4, 7, 77, 40},
		{1, 130, 257, 19}, // crosses 128x128 output tiles and 8-deep K tiles: 1.3 MFLOP
		{2, 5, 9, 300},    // K > 256
		{1, 33, 70, 513},  // K > 512: crosses K tiles of every power-of-two size up to 512; 2.4 MFLOP
		{2, 9, 12, 20},    // N and K multiples of 4 (vec4 loads on the GL backend)
	}
	for _, sz := range sizes {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for _, v := range mmVariants {
				name := fmt.Sprintf("b%d_m%d_n%d_k%d_%s_%s", sz.batch, sz.m, sz.n, sz.k, transName(tr), v.name)
				s.run(t, "MatMul", name, func(c *tcase) {
					c.matMul(sz.batch, sz.m, sz.n, sz.k, tr[0], tr[1], v)
				})
			}
		}
	}
}

// testMatMulGEGLU: a Linear's product with GEGLU in its epilogue
// (MatMulParams.GEGLU), weights [K, N] and [N, K], F32 and F16, with and
// without a bias, against the float64 product followed by GEGLU of each
// (value, gate) column pair. Bound: nmseGELU, the looser of the product's
// and GEGLU's own.
func (s *suite) testMatMulGEGLU(t *testing.T) {
	sizes := []struct{ batch, m, n, k int }{{1, 1, 2, 1}, {2, 7, 18, 29}, {1, 130, 260, 19}, {2, 9, 12, 20}}
	for _, sz := range sizes {
		for _, transB := range []bool{false, true} {
			for _, v := range []mmVariant{{name: "plain"}, {name: "bias_f16", bias: true, wtype: engine.F16}, {name: "bias_alpha", bias: true, alpha: 0.5}} {
				name := fmt.Sprintf("b%d_m%d_n%d_k%d_transB%v_%s", sz.batch, sz.m, sz.n, sz.k, transB, v.name)
				s.run(t, "MatMulGEGLU", name, func(c *tcase) {
					bsz, m, n, k := sz.batch, sz.m, sz.n, sz.k
					a, av := c.randn(engine.F32, bsz, m, k)
					bShape := []int{k, n}
					if transB {
						bShape = []int{n, k}
					}
					b, bv := c.randn(v.wtype, bShape...)
					var bias *engine.Tensor
					var biasv []float64
					if v.bias {
						bias, biasv = c.randn(v.wtype, n)
					}
					dst := c.out(bsz, m, n/2)
					c.be.MatMul(dst, a, b, bias, engine.MatMulParams{TransB: transB, Alpha: v.alpha, GEGLU: true})
					alpha := float64(v.alpha)
					if alpha == 0 {
						alpha = 1
					}
					full := refMatMul(av, bv, biasv, bsz, m, n, k, false, transB, true, alpha) // [B, M, N]
					want := make([]float64, len(full)/2)
					for i := range want {
						want[i] = full[2*i] * refGELU(full[2*i+1])
					}
					c.expect(dst, want, nmseGELU)

					// Bit for bit what the product, its pairs gathered into
					// halves, then the GEGLU op make.
					p := engine.MatMulParams{TransB: transB, Alpha: v.alpha}
					prod := c.out(bsz*m, n/2, 2) // [B·M, N/2, 2]: (value, gate) pairs
					c.be.MatMul(prod.Reshape(bsz, m, n), a, b, bias, p)
					halves := c.out(bsz*m, 2, n/2) // [B·M, 2, N/2]: [value | gate]
					c.be.Transpose(halves, prod)
					two := c.out(bsz, m, n/2)
					c.be.GEGLU(two, halves.Reshape(bsz, m, n))
					c.expectSame(dst, two, "with GEGLU in the epilogue", "product, then GEGLU")
				})
			}
		}
	}
}

func transName(tr [2]bool) string {
	n := []byte("NN")
	if tr[0] {
		n[0] = 'T'
	}
	if tr[1] {
		n[1] = 'T'
	}
	return string(n)
}

// matMul runs one MatMul case. With batch 1 and a rank-2 shared b, every
// operand is rank 2.
func (c *tcase) matMul(batch, m, n, k int, transA, transB bool, v mmVariant) {
	aShape := []int{batch, m, k}
	if transA {
		aShape = []int{batch, k, m}
	}
	bShape := []int{batch, k, n}
	if transB {
		bShape = []int{batch, n, k}
	}
	dShape := []int{batch, m, n}
	switch {
	case v.shared && v.batch1:
		bShape[0] = 1
	case v.shared:
		bShape = bShape[1:]
		if batch == 1 {
			aShape, dShape = aShape[1:], dShape[1:]
		}
	}
	a, av := c.randn(engine.F32, aShape...)
	b, bv := c.randn(v.wtype, bShape...)
	var bias *engine.Tensor
	var biasv []float64
	if v.bias {
		bias, biasv = c.randn(v.wtype, n)
	}
	dst := c.out(dShape...)
	c.be.MatMul(dst, a, b, bias, engine.MatMulParams{TransA: transA, TransB: transB, Alpha: v.alpha})
	alpha := float64(v.alpha)
	if alpha == 0 {
		alpha = 1
	}
	c.expect(dst, refMatMul(av, bv, biasv, batch, m, n, k, transA, transB, v.shared || batch == 1, alpha), nmseGEMM)
}

func (s *suite) testConv2D(t *testing.T) {
	shapes := []struct {
		name string
		convShape
	}{
		{"1x1", convShape{n: 2, c: 5, h: 7, w: 9, oc: 6, kh: 1, kw: 1, sh: 1, sw: 1}},
		{"1x1_wide", convShape{n: 1, c: 19, h: 3, w: 21, oc: 3, kh: 1, kw: 1, sh: 1, sw: 1}},
		{"1x1_vec4", convShape{n: 2, c: 8, h: 4, w: 6, oc: 5, kh: 1, kw: 1, sh: 1, sw: 1}}, // C and H*W multiples of 4
		{"3x3_pad1", convShape{n: 1, c: 3, h: 11, w: 13, oc: 7, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
		{"3x3_pad1_batch", convShape{n: 2, c: 8, h: 9, w: 6, oc: 5, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
		{"3x3_pad0", convShape{n: 1, c: 2, h: 6, w: 5, oc: 3, kh: 3, kw: 3, sh: 1, sw: 1}},
		// The VAE encoder's downsample (after an explicit pad) and the
		// U-Net's, on odd and even extents.
		{"3x3_stride2_pad0", convShape{n: 1, c: 4, h: 9, w: 12, oc: 3, kh: 3, kw: 3, sh: 2, sw: 2}},
		{"3x3_stride2_pad1", convShape{n: 2, c: 5, h: 10, w: 7, oc: 4, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1}},
		{"4x4", convShape{n: 1, c: 3, h: 10, w: 11, oc: 5, kh: 4, kw: 4, sh: 1, sw: 1}},
		{"4x4_stride2_pad1", convShape{n: 1, c: 2, h: 9, w: 13, oc: 3, kh: 4, kw: 4, sh: 2, sw: 2, ph: 1, pw: 1}},
		{"5x3_stride1x2_pad2x1", convShape{n: 1, c: 3, h: 8, w: 10, oc: 2, kh: 5, kw: 3, sh: 1, sw: 2, ph: 2, pw: 1}},
		{"1x1_pad1", convShape{n: 1, c: 3, h: 4, w: 5, oc: 2, kh: 1, kw: 1, sh: 1, sw: 1, ph: 1, pw: 1}},
		{"1x1_stride2", convShape{n: 2, c: 3, h: 7, w: 6, oc: 4, kh: 1, kw: 1, sh: 2, sw: 2}},
		{"1x3", convShape{n: 1, c: 4, h: 5, w: 8, oc: 3, kh: 1, kw: 3, sh: 1, sw: 1}},
		{"1x3_pad0x1", convShape{n: 1, c: 4, h: 5, w: 8, oc: 3, kh: 1, kw: 3, sh: 1, sw: 1, pw: 1}},
		{"3x1_stride2x1", convShape{n: 1, c: 3, h: 9, w: 4, oc: 2, kh: 3, kw: 1, sh: 2, sw: 1}},
		{"kernel_is_image", convShape{n: 2, c: 3, h: 3, w: 5, oc: 4, kh: 3, kw: 5, sh: 1, sw: 1}},
		// 131 output channels by 272 pixels crosses 128x128 output tiles,
		// 2 MFLOP.
		{"3x3_pad1_tiles", convShape{n: 1, c: 3, h: 16, w: 17, oc: 131, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
		// K = 29·9 = 261 > 256.
		{"3x3_pad1_deep", convShape{n: 1, c: 29, h: 10, w: 13, oc: 9, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}},
	}
	variants := []struct {
		name  string
		bias  bool
		wtype engine.DType
	}{{"nobias", false, engine.F32}, {"bias", true, engine.F32}, {"bias_f16", true, engine.F16}, {"nobias_f16", false, engine.F16}}
	for _, sh := range shapes {
		for _, v := range variants {
			cs := sh.convShape
			s.run(t, "Conv2D", sh.name+"_"+v.name, func(c *tcase) {
				x, xv := c.randn(engine.F32, cs.n, cs.c, cs.h, cs.w)
				w, wv := c.randn(v.wtype, cs.oc, cs.c, cs.kh, cs.kw)
				var bias *engine.Tensor
				var biasv []float64
				if v.bias {
					bias, biasv = c.randn(v.wtype, cs.oc)
				}
				dst := c.out(cs.n, cs.oc, cs.outH(), cs.outW())
				p := engine.Conv2DParams{StrideH: cs.sh, StrideW: cs.sw, PadH: cs.ph, PadW: cs.pw}
				if v.name == "nobias" && cs.sh == 1 && cs.sw == 1 {
					p.StrideH, p.StrideW = 0, 0 // zero strides mean 1
				}
				c.be.Conv2D(dst, x, w, bias, p)
				c.expect(dst, refConv2D(xv, wv, biasv, cs), nmseGEMM)
			})
		}
	}
}

// testResidual holds MatMul's and Conv2D's residual operand to the float64
// reference and to the two ops it replaces: the product (bias included)
// then a Binary Add must give the same bits. Each runs with a separate
// destination and in place (the residual is the destination), with a K
// small enough to run in one pass and one deep enough (> 512) that a
// backend splitting K adds the residual in its finishing pass.
func (s *suite) testResidual(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		where := "separate"
		if inPlace {
			where = "in_place"
		}
		for _, k := range []int{40, 520} {
			s.run(t, "Residual", fmt.Sprintf("MatMul_k%d_%s", k, where), func(c *tcase) {
				batch, m, n := 2, 70, 131
				a, av := c.randn(engine.F32, batch, m, k)
				w, wv := c.randn(engine.F16, n, k) // a linear layer's weight [Out, In]
				bias, biasv := c.randn(engine.F16, n)
				want := refMatMul(av, wv, biasv, batch, m, n, k, false, true, true, 1)
				c.residual(want, func(dst, res *engine.Tensor) {
					c.be.MatMul(dst, a, w, bias, engine.MatMulParams{TransB: true, Residual: res})
				}, func(dst *engine.Tensor) {
					c.be.MatMul(dst, a, w, bias, engine.MatMulParams{TransB: true})
				}, inPlace, batch, m, n)
			})
		}
		for _, ch := range []int{3, 64} {
			cs := convShape{n: 2, c: ch, h: 10, w: 13, oc: 9, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}
			s.run(t, "Residual", fmt.Sprintf("Conv2D_k%d_%s", ch*9, where), func(c *tcase) {
				x, xv := c.randn(engine.F32, cs.n, cs.c, cs.h, cs.w)
				w, wv := c.randn(engine.F16, cs.oc, cs.c, cs.kh, cs.kw)
				bias, biasv := c.randn(engine.F16, cs.oc)
				p := engine.Conv2DParams{PadH: 1, PadW: 1}
				c.residual(refConv2D(xv, wv, biasv, cs), func(dst, res *engine.Tensor) {
					q := p
					q.Residual = res
					c.be.Conv2D(dst, x, w, bias, q)
				}, func(dst *engine.Tensor) {
					c.be.Conv2D(dst, x, w, bias, p)
				}, inPlace, cs.n, cs.oc, cs.outH(), cs.outW())
			})
		}
	}
}

// residual checks fused(dst, res) = product + res against want (the
// product in float64, res added here) and against plain(dst) followed by
// a Binary Add, bit for bit. In place, dst is res.
func (c *tcase) residual(want []float64, fused func(dst, res *engine.Tensor), plain func(dst *engine.Tensor), inPlace bool, shape ...int) {
	c.Helper()
	vals := c.normals(engine.Shape(shape).Numel(), 1, 0)
	res, rv := c.from(engine.F32, vals, shape...)
	dst := res
	if !inPlace {
		dst = c.out(shape...)
	}
	fused(dst, res)
	for i := range want {
		want[i] += rv[i]
	}
	c.expect(dst, want, nmseGEMM)

	two := c.out(shape...)
	plain(two)
	again, _ := c.from(engine.F32, vals, shape...)
	c.be.Binary(two, two, again, engine.Add)
	c.expectSame(dst, two, "fused", "product then Add")
}
