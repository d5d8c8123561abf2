package cpu

import (
	"sync"

	"glimmer/engine"
)

// The convolution gradients reuse the forward's GEMM core (gemm.go) and its
// im2col gather (conv.go). With cols[n] [C*KH*KW, OH*OW] the input patches
// of image n:
//
//	forward:  y[n]  [OC, OH*OW]     = w [OC, CKK] · cols[n]
//	data:     dcols [CKK, OH*OW]    = wᵀ · dy[n], then col2im adds each
//	          column back onto the pixels its patch came from
//	weight:   dw [OC, CKK]          = Σ_n dy[n] · cols[n]ᵀ

// colsBudget is the most floats of dcols Conv2DBackwardData keeps at once
// (16 MiB); larger images are done in column chunks.
const colsBudget = 1 << 22

// Conv2DBackwardData: dx [N, C, H, W] from dy [N, OC, OH, OW] and
// w [OC, C, KH, KW].
func (be *Backend) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.Conv2DParams) {
	d := engine.CheckConv2D(dy, dx, w, nil, p)
	pix := d.OH * d.OW
	kdim := d.C * d.KH * d.KW
	ws, dys, dxs := buf(w), buf(dy), buf(dx)
	// A = wᵀ: A[i, p] = w[p, i], i over C*KH*KW, p over OC.
	g := gemmOp{m: kdim, k: d.OC, a: ws, aRow: 1, aCol: kdim, alpha: 1}
	if d.Pointwise() {
		// A 1x1 convolution's cols is the image: dx[n] [C, HW] = wᵀ · dy[n].
		g.batch, g.n = d.N, pix
		g.c, g.cBatch = dxs, d.C*pix // [N, C, H*W]
		g.bBlock = func(n, k0, _, j0, _ int, _ []float32) ([]float32, int, int) {
			return dys, n*d.OC*pix + k0*pix + j0, pix
		}
		g.run(be)
		return
	}
	chunk := min(pix, max(colsBudget/max(d.N*kdim, 1), 64))
	dcols := make([]float32, d.N*kdim*chunk) // [N, CKK, chunk]
	be.parallel(len(dxs), 1, func(lo, hi int) { clear(dxs[lo:hi]) })
	plane := d.H * d.W
	for j0 := 0; j0 < pix; j0 += chunk {
		j1 := min(j0+chunk, pix)
		cw := j1 - j0
		g.batch, g.n = d.N, cw
		g.c, g.cBatch = dcols, kdim*cw
		g.bBlock = func(n, k0, _, jj0, _ int, _ []float32) ([]float32, int, int) {
			return dys, n*d.OC*pix + k0*pix + j0 + jj0, pix
		}
		g.run(be)
		// col2im: channel ch's rows of dcols only touch plane ch, so
		// channels run in parallel.
		be.each(d.N*d.C, 2*d.KH*d.KW*cw, func(t int) {
			n, ch := t/d.C, t%d.C
			rows := dcols[n*kdim*cw+ch*d.KH*d.KW*cw : n*kdim*cw+(ch+1)*d.KH*d.KW*cw] // [KH*KW, cw]
			col2imPlane(dxs[t*plane:(t+1)*plane], rows, &d, j0, j1)
		})
	}
}

// col2imPlane adds the rows of one channel's dcols (one row per kernel tap,
// columns for output pixels j0..j1-1) onto the input plane [H, W] at the
// pixels the forward read them from; taps in the padding are dropped.
func col2imPlane(plane, rows []float32, d *engine.Conv2DDims, j0, j1 int) {
	w := j1 - j0
	sh, sw, ph, pw := d.P.StrideH, d.P.StrideW, d.P.PadH, d.P.PadW
	for kh := range d.KH {
		for kw := range d.KW {
			row := rows[(kh*d.KW+kw)*w : (kh*d.KW+kw+1)*w]
			// Output columns ow whose input column ow*sw - pw + kw lies in
			// [0, W): owLo <= ow < owHi.
			owLo := 0
			if pw > kw {
				owLo = (pw - kw + sw - 1) / sw
			}
			owHi := 0
			if d.W-1+pw-kw >= 0 {
				owHi = min((d.W-1+pw-kw)/sw+1, d.OW)
			}
			oh, ow := j0/d.OW, j0%d.OW
			for j := 0; j < w; {
				run := min(d.OW-ow, w-j) // output pixels left on row oh
				ih := oh*sh - ph + kh
				if ih >= 0 && ih < d.H {
					in := plane[ih*d.W : (ih+1)*d.W]
					seg := row[j : j+run] // output columns ow..ow+run-1 of row oh
					for q := max(ow, owLo); q < min(ow+run, owHi); q++ {
						in[q*sw-pw+kw] += seg[q-ow]
					}
				}
				j += run
				oh, ow = oh+1, 0
			}
		}
	}
}

// gatherPool recycles the im2col block Conv2DBackwardWeight transposes.
var gatherPool = sync.Pool{New: func() any {
	s := make([]float32, gemmKC*gemmNC)
	return &s
}}

// Conv2DBackwardWeight: dw [OC, C, KH, KW] = Σ_n dy[n] · cols[n]ᵀ, one GEMM
// per image (A = dy[n] [OC, OH*OW], B = cols[n]ᵀ gathered block by block),
// the images' products then summed.
func (be *Backend) Conv2DBackwardWeight(dw, x, dy *engine.Tensor, p engine.Conv2DParams) {
	d := engine.CheckConv2D(dy, x, dw, nil, p)
	engine.CheckF32("Conv2DBackwardWeight", dw)
	pix := d.OH * d.OW
	kdim := d.C * d.KH * d.KW
	xs, dys, dws := buf(x), buf(dy), buf(dw)
	g := gemmOp{
		batch: d.N, m: d.OC, n: kdim, k: pix,
		a: dys, aBatch: d.OC * pix, aRow: pix, aCol: 1, // [N, OC, OH*OW]
		alpha: 1,
		mc:    128,
	}
	per := d.OC * kdim
	g.c, g.cBatch = dws, per
	var parts []float32
	if d.N > 1 {
		parts = make([]float32, d.N*per) // [N, OC, CKK]
		g.c = parts
	}
	if d.Pointwise() {
		// cols[n] is x[n] [C, H*W]; B = its transpose.
		g.bBlock = transposedBlock(xs, d.C*pix, pix)
	} else {
		img := d.C * d.H * d.W
		g.bBlock = func(n, k0, k1, j0, j1 int, scratch []float32) ([]float32, int, int) {
			// Rows k0..k1 of B are output pixels, columns j0..j1 rows of
			// cols: gather cols[j0:j1, k0:k1], then transpose it.
			tp := gatherPool.Get().(*[]float32)
			defer gatherPool.Put(tp)
			rows, cols := j1-j0, k1-k0
			tmp := (*tp)[:rows*cols] // [rows, cols]
			im2colBlock(tmp, xs[n*img:(n+1)*img], &d, j0, j1, k0, k1)
			for r := range rows {
				src := tmp[r*cols : (r+1)*cols]
				for c, v := range src {
					scratch[c*rows+r] = v
				}
			}
			return scratch, 0, rows
		}
	}
	g.run(be)
	if parts == nil {
		return
	}
	be.parallel(per, d.N, func(lo, hi int) {
		out := dws[lo:hi]
		copy(out, parts[lo:hi])
		for n := 1; n < d.N; n++ {
			src := parts[n*per+lo : n*per+hi]
			for i, v := range src {
				out[i] += v
			}
		}
	})
}
