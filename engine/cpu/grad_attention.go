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
//     exp(s_ij - lse_i) from the same float32 dot product as pass 1,
//     dv_j += p_ij·dy_i and dk_j += scale·p_ij·(dy_i·v_j - Δ_i)·q_i.
//
// That is 7·D multiply-adds per (query, key) pair against the forward's 2.
// Dot products are float32 with four partial sums; exp, the softmax sums,
// lse and Δ are float64.
const attnGradKeyBlock = 8 // keys whose dk, dv one pass-2 task accumulates

// AttentionBackward: dq, dk, dv of Attention(q, k, v, p) given dy.
func (be *Backend) AttentionBackward(dq, dk, dv, dy, q, k, v *engine.Tensor, p engine.AttentionParams) {
	const op = "AttentionBackward"
	d := engine.CheckAttention(dy, q, k, v, p)
	gradF32(op, dq, dk, dv)
	gradShape(op, "dq", dq, q.Shape())
	gradShape(op, "dk", dk, k.Shape())
	gradShape(op, "dv", dv, v.Shape())
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

// dot32 is Σ x·y in float32 with four partial sums.
func dot32(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
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
	for j := range keys {
		s[j] = float64(dot32(qi, a.head(a.k, d.Nk, b, h, j)) * d.Scale)
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
		dp[j] = float64(dot32(gi, a.head(a.v, d.Nk, b, h, j)))
		delta += s[j] * dp[j]
	}
	out := a.head(a.dq, d.Nq, b, h, i) // [D]
	clear(out)
	for j := range keys {
		ds := float32(s[j] * (dp[j] - delta) * float64(d.Scale))
		axpy1x1(out, a.head(a.k, d.Nk, b, h, j), ds)
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
		for j := j0; j < j1; j++ {
			if d.Causal && j > i {
				break
			}
			kj := a.head(a.k, d.Nk, b, h, j)
			p := math.Exp(float64(dot32(qi, kj)*d.Scale) - lse)
			dpj := float64(dot32(gi, a.head(a.v, d.Nk, b, h, j)))
			ds := float32(p * (dpj - delta) * float64(d.Scale))
			axpy1x1(dvAcc[(j-j0)*dim:(j-j0+1)*dim], gi, float32(p))
			axpy1x1(dkAcc[(j-j0)*dim:(j-j0+1)*dim], qi, ds)
		}
	}
	for j := j0; j < j1; j++ {
		copy(a.head(a.dk, d.Nk, b, h, j), dkAcc[(j-j0)*dim:(j-j0+1)*dim])
		copy(a.head(a.dv, d.Nk, b, h, j), dvAcc[(j-j0)*dim:(j-j0+1)*dim])
	}
}
