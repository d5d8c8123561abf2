package cpu

import "sync"

// The GEMM core behind MatMul and Conv2D. It computes, for every batch b,
//
//	C_b = alpha · A_b · B_b + bias
//
// with C_b row-major [M, N]. The loops are ordered i, k, j: two rows of C
// are updated from four rows of B at a time, so the innermost loop runs over
// contiguous memory in C and B and does 16 flops per 4 loads of B and a
// load and store of each C row (the compiler does not vectorise; this
// shape is what kept scalar SSE units busiest among the shapes tried, about
// 10 GFLOP/s per Zen 4 core with data in L1). Work is tiled into tasks of
// gemmMC rows by gemmNC columns, and K into blocks of gemmKC, so a block of
// B (gemmKC x gemmNC floats, 256 KiB) stays in L2 while every row pair of
// the task streams through it. Tasks are independent and run in parallel.
const (
	gemmMC = 64  // rows of C per task
	gemmNC = 256 // columns of C per task
	gemmKC = 256 // depth of one block of B
)

// gemmOp describes one batched GEMM. A is read element by element through
// strides; B through a block provider, so a caller can hand out a matrix in
// place or gather one on the fly (Conv2D's implicit im2col).
type gemmOp struct {
	batch, m, n, k int

	a                  []float32 // A_b[i, p] = a[b*aBatch + i*aRow + p*aCol]
	aBatch, aRow, aCol int
	bBlock             blockFunc
	c                  []float32 // C_b[i, j] = c[b*cBatch + i*n + j]
	cBatch             int
	alpha              float32   // 1 means no scaling
	biasCol            []float32 // [N] added to every row, or nil
	biasRow            []float32 // [M] added to every column, or nil
	mc                 int       // rows per task, gemmMC if 0
}

// blockFunc makes rows k0..k1-1, columns j0..j1-1 of B_b available as a
// dense block: row p of it starts at blk[off+p*ld]. It may return a view of
// B itself or fill scratch, which holds (k1-k0)*(j1-j0) floats.
type blockFunc func(b, k0, k1, j0, j1 int, scratch []float32) (blk []float32, off, ld int)

// scratchPool recycles one B block per running task.
var scratchPool = sync.Pool{New: func() any {
	s := make([]float32, gemmKC*gemmNC)
	return &s
}}

// run executes the GEMM on be's workers.
func (g *gemmOp) run(be *Backend) {
	mc := g.mc
	if mc == 0 {
		mc = gemmMC
	}
	nt := (g.n + gemmNC - 1) / gemmNC
	// Too few tasks leave workers idle (a 320-channel convolution on a
	// small image is 12 tiles): split rows finer, down to 16 per task.
	for mc > 16 && g.batch*((g.m+mc-1)/mc)*nt < 2*be.workers {
		mc /= 2
	}
	mt := (g.m + mc - 1) / mc
	tasks := g.batch * mt * nt
	if tasks == 0 {
		return
	}
	cost := 2 * min(mc, g.m) * min(gemmNC, g.n) * max(g.k, 1)
	be.parallel(tasks, cost, func(lo, hi int) {
		sp := scratchPool.Get().(*[]float32)
		defer scratchPool.Put(sp)
		for t := lo; t < hi; t++ {
			// Row tiles vary fastest, so tasks running at the same
			// time read the same columns of B.
			it, rest := t%mt, t/mt
			jt, b := rest%nt, rest/nt
			g.tile(b, it*mc, min(it*mc+mc, g.m), jt*gemmNC, min(jt*gemmNC+gemmNC, g.n), *sp)
		}
	})
}

// tile computes C_b[i0:i1, j0:j1].
func (g *gemmOp) tile(b, i0, i1, j0, j1 int, scratch []float32) {
	w := j1 - j0
	c := g.c[b*g.cBatch:]
	for i := i0; i < i1; i++ {
		clear(c[i*g.n+j0 : i*g.n+j1])
	}
	a := g.a[b*g.aBatch:]
	ar, ak := g.aRow, g.aCol
	for k0 := 0; k0 < g.k; k0 += gemmKC {
		k1 := min(k0+gemmKC, g.k)
		blk, off, ld := g.bBlock(b, k0, k1, j0, j1, scratch)
		row := func(p int) []float32 { // row p of B, within the block
			s := off + (p-k0)*ld
			return blk[s : s+w]
		}
		i := i0
		for ; i+2 <= i1; i += 2 {
			c0 := c[i*g.n+j0 : i*g.n+j1]
			c1 := c[(i+1)*g.n+j0 : (i+1)*g.n+j1]
			a0, a1 := i*ar, (i+1)*ar
			p := k0
			for ; p+4 <= k1; p += 4 {
				q0, q1, q2, q3 := p*ak, (p+1)*ak, (p+2)*ak, (p+3)*ak
				axpy2x4(c0, c1, row(p), row(p+1), row(p+2), row(p+3),
					a[a0+q0], a[a0+q1], a[a0+q2], a[a0+q3],
					a[a1+q0], a[a1+q1], a[a1+q2], a[a1+q3])
			}
			for ; p < k1; p++ {
				axpy2x1(c0, c1, row(p), a[a0+p*ak], a[a1+p*ak])
			}
		}
		if i < i1 { // odd row left over
			c0 := c[i*g.n+j0 : i*g.n+j1]
			a0 := i * ar
			p := k0
			for ; p+4 <= k1; p += 4 {
				axpy1x4(c0, row(p), row(p+1), row(p+2), row(p+3),
					a[a0+p*ak], a[a0+(p+1)*ak], a[a0+(p+2)*ak], a[a0+(p+3)*ak])
			}
			for ; p < k1; p++ {
				axpy1x1(c0, row(p), a[a0+p*ak])
			}
		}
	}
	g.epilogue(c, i0, i1, j0, j1)
}

// epilogue applies alpha and the bias to C_b[i0:i1, j0:j1].
func (g *gemmOp) epilogue(c []float32, i0, i1, j0, j1 int) {
	if g.alpha == 1 && g.biasCol == nil && g.biasRow == nil {
		return
	}
	alpha := g.alpha
	for i := i0; i < i1; i++ {
		cr := c[i*g.n+j0 : i*g.n+j1]
		var br float32
		if g.biasRow != nil {
			br = g.biasRow[i]
		}
		if g.biasCol != nil {
			bc := g.biasCol[j0:j1]
			for j := range cr {
				cr[j] = alpha*cr[j] + (bc[j] + br)
			}
			continue
		}
		for j := range cr {
			cr[j] = alpha*cr[j] + br
		}
	}
}

// axpy2x4 adds a two-row by four-column block of A times four rows of B to
// two rows of C: c0 += a00 b0 + a01 b1 + a02 b2 + a03 b3, c1 likewise.
func axpy2x4(c0, c1, b0, b1, b2, b3 []float32, a00, a01, a02, a03, a10, a11, a12, a13 float32) {
	n := len(c0)
	c1, b0, b1, b2, b3 = c1[:n], b0[:n], b1[:n], b2[:n], b3[:n]
	for j := range c0 {
		x0, x1, x2, x3 := b0[j], b1[j], b2[j], b3[j]
		c0[j] += a00*x0 + a01*x1 + a02*x2 + a03*x3
		c1[j] += a10*x0 + a11*x1 + a12*x2 + a13*x3
	}
}

func axpy2x1(c0, c1, b0 []float32, a0, a1 float32) {
	n := len(c0)
	c1, b0 = c1[:n], b0[:n]
	for j, x := range b0 {
		c0[j] += a0 * x
		c1[j] += a1 * x
	}
}

func axpy1x4(c, b0, b1, b2, b3 []float32, a0, a1, a2, a3 float32) {
	n := len(c)
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	for j := range c {
		c[j] += a0*b0[j] + a1*b1[j] + a2*b2[j] + a3*b3[j]
	}
}

func axpy1x1(c, b []float32, a float32) {
	b = b[:len(c)]
	for j, x := range b {
		c[j] += a * x
	}
}
