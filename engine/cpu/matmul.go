package cpu

import "glimmer/engine"

// MatMul: dst[b] = alpha · op(a[b]) · op(b[b]) + bias (+ p.Residual).
func (be *Backend) MatMul(dst, a, b, bias *engine.Tensor, p engine.MatMulParams) {
	d := engine.CheckMatMul(dst, a, b, bias, p)
	if p.GEGLU {
		full := be.New(engine.F32, d.Batch, d.M, d.N) // [B, M, N]: (value, gate) pairs
		p.GEGLU = false
		be.MatMul(full, a, b, bias, p)
		be.gegluPairs(dst, full) // [B, M, N/2]
		be.Free(full)
		return
	}
	res := takeResidual(dst, p.Residual)
	defer res.add(be, dst)
	alpha := p.Alpha
	if alpha == 0 {
		alpha = 1
	}
	g := gemmOp{
		batch: d.Batch, m: d.M, n: d.N, k: d.K,
		a:      buf(a), // [B, M, K] or [B, K, M]
		aBatch: d.M * d.K,
		aRow:   d.K, aCol: 1,
		c:      buf(dst), // [B, M, N]
		cBatch: d.M * d.N,
		alpha:  alpha,
	}
	if p.TransA {
		g.aRow, g.aCol = 1, d.M
	}
	if bias != nil {
		g.biasCol = buf(bias) // [N]
	}
	bb := buf(b) // [Bb, K, N] or [Bb, N, K]
	bBatch := 0
	if d.BBatched {
		bBatch = d.K * d.N
	}
	if p.TransB {
		g.bBlock = transposedBlock(bb, bBatch, d.K)
	} else {
		g.bBlock = func(b, k0, _, j0, _ int, _ []float32) ([]float32, int, int) {
			return bb, b*bBatch + k0*d.N + j0, d.N
		}
		// With one shared B and untransposed A, the batches are just
		// more rows of one [B*M, K] x [K, N] product.
		if !d.BBatched && !p.TransA {
			g.m, g.batch = d.Batch*d.M, 1
		}
	}
	g.run(be)
}

// transposedBlock serves blocks of B from src holding Bᵀ, [N, K] per batch:
// each block is transposed into scratch so its rows run along N.
func transposedBlock(src []float32, batchStride, k int) blockFunc {
	return func(b, k0, k1, j0, j1 int, scratch []float32) ([]float32, int, int) {
		w := j1 - j0
		base := src[b*batchStride:]
		for j := j0; j < j1; j++ {
			col := base[j*k+k0 : j*k+k1] // row j of Bᵀ
			s := scratch[j-j0:]
			for p, v := range col {
				s[p*w] = v
			}
		}
		return scratch, 0, w
	}
}
