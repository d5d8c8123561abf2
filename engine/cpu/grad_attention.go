package cpu

import (
	"math"

	"glimmer/engine"
)

// AttentionBackward recomputes the scores instead of storing them, in two
// passes that each own what they write (no atomics, no locks):
//
//  1. per query row i (of one batch and head): scores s_j = scale·q_i·k_j,
//     p = softmax(s), lse_i = log Σ exp(s_j), dp_j = dy_i·v_j,
//     Δ_i = Σ_j p_j·dp_j and dq_i = scale·Σ_j p_j·(dp_j - Δ_i)·k_j;
//  2. per block of keys: for every query that sees them, p_ij =
//     exp(s_ij - lse_i) from the same float32 dot products as pass 1,
//     dv_j += p_ij·dy_i and dk_j += scale·p_ij·(dy_i·v_j - Δ_i)·q_i.
//
// That is 7·D multiply-adds per (query, key) pair against the forward's 2.
// Two keys are taken at a time, so one pass over a query's features gives
// both keys' q·k and dy·v (dots2x2) and one pass adds both keys' dk and dv
// terms (grad2). Dot products are float32, summed in the same order in both
// passes; exp, the softmax sums, lse and Δ are float64.
const attnGradKeyBlock = 8 // keys whose dk, dv one pass-2 task accumulates

// AttentionBackward: dq, dk, dv of Attention(q, k, v, p) given dy.
func (be *Backend) AttentionBackward(dq, dk, dv, dy, q, k, v *engine.Tensor, p engine.AttentionParams) {
	const op = "AttentionBackward"
	d := engine.CheckAttention(dy, q, k, v, p)
	engine.CheckF32(op, dq, dk, dv)
	engine.CheckShape(op, "dq", dq, q.Shape())
	engine.CheckShape(op, "dk", dk, k.Shape())
	engine.CheckShape(op, "dv", dv, v.Shape())
	a := attnGrad{d: &d, q: buf(q), k: buf(k), v: buf(v), dy: buf(dy),
		dq: buf(dq), dk: buf(dk), dv: buf(dv)}
	rows := d.B * d.Heads * d.Nq
	a.lse = make([]float64, rows)   // [B, H, Nq]
	a.delta = make([]float64, rows) // [B, H, Nq]
	be.parallel(rows, 6*d.Nk*d.HeadDim, func(lo, hi int) {
		s := make([]float64, d.Nk)
		dp := make([]float64, d.Nk)
		for r := lo; r < hi; r++ {
			a.queryRow(r, s, dp)
		}
	})
	blocks := (d.Nk + attnGradKeyBlock - 1) / attnGradKeyBlock
	be.parallel(d.B*d.Heads*blocks, 8*attnGradKeyBlock*d.Nq*d.HeadDim, func(lo, hi int) {
		acc := make([]float32, 2*attnGradKeyBlock*d.HeadDim)
		for t := lo; t < hi; t++ {
			bh, blk := t/blocks, t%blocks
			j0 := blk * attnGradKeyBlock
			a.keyBlock(bh/d.Heads, bh%d.Heads, j0, min(j0+attnGradKeyBlock, d.Nk), acc)
		}
	})
}

// attnGrad holds one AttentionBackward's operands and per-row statistics.
type attnGrad struct {
	d                       *engine.AttentionDims
	q, k, v, dy, dq, dk, dv []float32
	lse, delta              []float64 // [B, H, Nq]
}

// head returns token i's features of head h in batch b of t (n tokens).
func (a *attnGrad) head(t []float32, n, b, h, i int) []float32 {
	dim := a.d.HeadDim
	o := (b*n+i)*a.d.Heads*dim + h*dim
	return t[o : o+dim]
}

// dots2x2 returns q·k0, q·k1, g·v0, g·v1 in one pass over the features.
func dots2x2(q, g, k0, k1, v0, v1 []float32) (s0, s1, t0, t1 float32) {
	n := len(q)
	g, k0, k1, v0, v1 = g[:n], k0[:n], k1[:n], v0[:n], v1[:n]
	for x, qx := range q {
		gx := g[x]
		s0 += qx * k0[x]
		s1 += qx * k1[x]
		t0 += gx * v0[x]
		t1 += gx * v1[x]
	}
	return
}

// grad2 adds p0·g, p1·g to dv0, dv1 and e0·q, e1·q to dk0, dk1.
func grad2(dv0, dv1, dk0, dk1, g, q []float32, p0, p1, e0, e1 float32) {
	n := len(g)
	dv0, dv1, dk0, dk1, q = dv0[:n], dv1[:n], dk0[:n], dk1[:n], q[:n]
	for x, gx := range g {
		qx := q[x]
		dv0[x] += p0 * gx
		dv1[x] += p1 * gx
		dk0[x] += e0 * qx
		dk1[x] += e1 * qx
	}
}

// queryRow is pass 1 for row r = (b·H + h)·Nq + i.
func (a *attnGrad) queryRow(r int, s, dp []float64) {
	d := a.d
	i, bh := r%d.Nq, r/d.Nq
	b, h := bh/d.Heads, bh%d.Heads
	keys := d.Nk
	if d.Causal {
		keys = i + 1
	}
	qi := a.head(a.q, d.Nq, b, h, i)
	gi := a.head(a.dy, d.Nq, b, h, i)
	hi := math.Inf(-1)
	j := 0
	for ; j+2 <= keys; j += 2 {
		s0, s1, d0, d1 := dots2x2(qi, gi, a.head(a.k, d.Nk, b, h, j), a.head(a.k, d.Nk, b, h, j+1),
			a.head(a.v, d.Nk, b, h, j), a.head(a.v, d.Nk, b, h, j+1))
		s[j], s[j+1] = float64(s0*d.Scale), float64(s1*d.Scale)
		dp[j], dp[j+1] = float64(d0), float64(d1)
		hi = max(hi, s[j], s[j+1])
	}
	if j < keys {
		kj, vj := a.head(a.k, d.Nk, b, h, j), a.head(a.v, d.Nk, b, h, j)
		s0, _, d0, _ := dots2x2(qi, gi, kj, kj, vj, vj)
		s[j], dp[j] = float64(s0*d.Scale), float64(d0)
		hi = max(hi, s[j])
	}
	var sum float64
	for j := range keys {
		s[j] = math.Exp(s[j] - hi)
		sum += s[j]
	}
	var delta float64
	for j := range keys {
		s[j] /= sum // p_j
		delta += s[j] * dp[j]
	}
	ds := func(j int) float32 { return float32(s[j] * (dp[j] - delta) * float64(d.Scale)) }
	out := a.head(a.dq, d.Nq, b, h, i) // [D]
	clear(out)
	j = 0
	for ; j+4 <= keys; j += 4 {
		axpy1x4(out, a.head(a.k, d.Nk, b, h, j), a.head(a.k, d.Nk, b, h, j+1),
			a.head(a.k, d.Nk, b, h, j+2), a.head(a.k, d.Nk, b, h, j+3), ds(j), ds(j+1), ds(j+2), ds(j+3))
	}
	for ; j < keys; j++ {
		axpy1x1(out, a.head(a.k, d.Nk, b, h, j), ds(j))
	}
	a.lse[r] = hi + math.Log(sum)
	a.delta[r] = delta
}

// keyBlock is pass 2 for keys j0..j1-1 of batch b, head h; acc holds
// 2·attnGradKeyBlock·D floats of scratch.
func (a *attnGrad) keyBlock(b, h, j0, j1 int, acc []float32) {
	d := a.d
	dim := d.HeadDim
	nk := j1 - j0
	dkAcc, dvAcc := acc[:nk*dim], acc[attnGradKeyBlock*dim:attnGradKeyBlock*dim+nk*dim]
	clear(dkAcc)
	clear(dvAcc)
	i0 := 0
	if d.Causal {
		i0 = j0 // query i sees key j only when i >= j
	}
	row := (b*d.Heads + h) * d.Nq
	for i := i0; i < d.Nq; i++ {
		qi := a.head(a.q, d.Nq, b, h, i)
		gi := a.head(a.dy, d.Nq, b, h, i)
		lse, delta := a.lse[row+i], a.delta[row+i]
		jEnd := j1
		if d.Causal {
			jEnd = min(j1, i+1)
		}
		for j := j0; j < jEnd; j += 2 {
			// Keys j and j+1 together (j+1 a repeat of j past the end,
			// its result dropped).
			j2 := min(j+1, jEnd-1)
			kA, kB := a.head(a.k, d.Nk, b, h, j), a.head(a.k, d.Nk, b, h, j2)
			s0, s1, d0, d1 := dots2x2(qi, gi, kA, kB, a.head(a.v, d.Nk, b, h, j), a.head(a.v, d.Nk, b, h, j2))
			p0 := math.Exp(float64(s0*d.Scale) - lse)
			p1 := math.Exp(float64(s1*d.Scale) - lse)
			ds0 := float32(p0 * (float64(d0) - delta) * float64(d.Scale))
			ds1 := float32(p1 * (float64(d1) - delta) * float64(d.Scale))
			r0 := (j - j0) * dim
			if j2 == j {
				axpy1x1(dvAcc[r0:r0+dim], gi, float32(p0))
				axpy1x1(dkAcc[r0:r0+dim], qi, ds0)
				continue
			}
			grad2(dvAcc[r0:r0+dim], dvAcc[r0+dim:r0+2*dim], dkAcc[r0:r0+dim], dkAcc[r0+dim:r0+2*dim],
				gi, qi, float32(p0), float32(p1), ds0, ds1)
		}
	}
	for j := j0; j < j1; j++ {
		copy(a.head(a.dk, d.Nk, b, h, j), dkAcc[(j-j0)*dim:(j-j0+1)*dim])
		copy(a.head(a.dv, d.Nk, b, h, j), dvAcc[(j-j0)*dim:(j-j0+1)*dim])
	}
}
