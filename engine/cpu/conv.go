package cpu

import "glimmer/engine"

// Conv2D is torch's cross-correlation as an implicit GEMM: for image n,
//
//	out[n] [OC, OH*OW] = w [OC, C*KH*KW] · cols [C*KH*KW, OH*OW] + bias
//
// where column (oh, ow) of cols holds the input patch under output pixel
// (oh, ow), then adds p.Residual when set. cols is never built whole:
// each GEMM task gathers only the block it is about to use (at most
// 256x256 floats).
func (be *Backend) Conv2D(dst, x, w, bias *engine.Tensor, p engine.Conv2DParams) {
	d := engine.CheckConv2D(dst, x, w, bias, p)
	res := takeResidual(dst, p.Residual)
	defer res.add(be, dst)
	pix := d.OH * d.OW
	kdim := d.C * d.KH * d.KW
	g := gemmOp{
		batch: d.N, m: d.OC, n: pix, k: kdim,
		a:    buf(w), // [OC, C*KH*KW]
		aRow: kdim, aCol: 1,
		c:      buf(dst), // [N, OC, OH*OW]
		cBatch: d.OC * pix,
		alpha:  1,
		// Taller tasks: every task gathers its own block of cols, so
		// covering more output channels per gather amortises it.
		mc: 128,
	}
	if bias != nil {
		g.biasRow = buf(bias) // [OC]
	}
	xs := buf(x) // [N, C, H, W]
	if d.Pointwise() {
		// A 1x1 convolution's cols is the image itself, [C, H*W].
		g.bBlock = func(n, k0, _, j0, _ int, _ []float32) ([]float32, int, int) {
			return xs, n*d.C*pix + k0*pix + j0, pix
		}
	} else {
		g.bBlock = func(n, k0, k1, j0, j1 int, scratch []float32) ([]float32, int, int) {
			im2colBlock(scratch, xs[n*d.C*d.H*d.W:(n+1)*d.C*d.H*d.W], &d, k0, k1, j0, j1)
			return scratch, 0, j1 - j0
		}
	}
	g.run(be)
}

// im2colBlock writes rows k0..k1-1 and columns j0..j1-1 of one image's
// cols matrix into dst, row-major with j1-j0 columns. Row k is input
// channel k/(KH*KW) shifted by kernel tap (kh, kw); column j is output
// pixel (j/OW, j%OW). Taps that fall in the padding read zero.
func im2colBlock(dst, img []float32, d *engine.Conv2DDims, k0, k1, j0, j1 int) {
	w := j1 - j0
	sh, sw, ph, pw := d.P.StrideH, d.P.StrideW, d.P.PadH, d.P.PadW
	taps := d.KH * d.KW
	for k := k0; k < k1; k++ {
		ch, tap := k/taps, k%taps
		kh, kw := tap/d.KW, tap%d.KW
		plane := img[ch*d.H*d.W : (ch+1)*d.H*d.W] // [H, W]
		row := dst[(k-k0)*w : (k-k0+1)*w]
		oh, ow := j0/d.OW, j0%d.OW
		for j := 0; j < w; {
			run := min(d.OW-ow, w-j) // output pixels left on row oh
			out := row[j : j+run]
			ih := oh*sh - ph + kh
			if ih < 0 || ih >= d.H {
				clear(out)
			} else {
				in := plane[ih*d.W : (ih+1)*d.W]
				iw0 := ow*sw - pw + kw // input column of out[0]
				if sw == 1 {
					// Valid outputs are those with 0 <= iw0+q < W.
					lo := min(max(-iw0, 0), run)
					hi := max(min(d.W-iw0, run), lo)
					clear(out[:lo])
					copy(out[lo:hi], in[iw0+lo:iw0+hi])
					clear(out[hi:])
				} else {
					for q := range out {
						iw := iw0 + q*sw
						if iw >= 0 && iw < d.W {
							out[q] = in[iw]
						} else {
							out[q] = 0
						}
					}
				}
			}
			j += run
			oh, ow = oh+1, 0
		}
	}
}
