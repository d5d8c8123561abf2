package cpu

import (
	"math"

	"glimmer/engine"
)

// Attention scores keys in blocks with an online softmax: each query keeps
// a running max m, sum l and unnormalised output o, and folds in one block
// of scores s_j after another:
//
//	m' = max(m, max_j s_j)
//	l' = l·exp(m - m') + Σ_j exp(s_j - m')
//	o' = o·exp(m - m') + Σ_j exp(s_j - m')·v_j
//
// so memory is one block of scores per query, never Nq x Nk. A task is a
// block of queries of one batch and head; it transposes each key block once
// so that scoring, like P·V, is the GEMM kernel's two-rows-by-four update
// along contiguous memory.
//
// Precision: a score is a float32 sum of D <= 160 products taken four at a
// time, relative error about sqrt(D)·2⁻²⁴; the softmax sums l run in
// float64 and exp is evaluated in float64. The suite measures NMSE below
// 1e-13 against a float64 reference.
const (
	attnKeyBlock   = 64 // keys scored at a time
	attnQueryBlock = 16 // queries sharing one transposed key block
)

// Attention: dst = softmax(q kᵀ · scale) v for each batch and head, head h
// reading features h*D .. h*D+D-1 of q [B, Nq, H*D], k, v [B, Nk, H*D].
func (be *Backend) Attention(dst, q, k, v *engine.Tensor, p engine.AttentionParams) {
	d := engine.CheckAttention(dst, q, k, v, p)
	a := attnInputs{d: &d, out: buf(dst)}
	if p.Packed {
		a.q, a.k, a.v = unpackQKV(buf(q), d.Heads*d.HeadDim)
	} else {
		a.q, a.k, a.v = buf(q), buf(k), buf(v)
	}
	blocks := (d.Nq + attnQueryBlock - 1) / attnQueryBlock
	be.parallel(d.B*d.Heads*blocks, 4*attnQueryBlock*d.Nk*d.HeadDim, func(lo, hi int) {
		st := newAttnState(d.HeadDim)
		for t := lo; t < hi; t++ {
			blk, bh := t%blocks, t/blocks
			i0 := blk * attnQueryBlock
			st.queries(&a, bh/d.Heads, bh%d.Heads, i0, min(i0+attnQueryBlock, d.Nq))
		}
	})
}

// unpackQKV splits rows of 3w values, q | k | v, into three [rows, w].
func unpackQKV(qkv []float32, w int) (q, k, v []float32) {
	rows := len(qkv) / (3 * w)
	q, k, v = make([]float32, rows*w), make([]float32, rows*w), make([]float32, rows*w)
	for r := range rows {
		row := qkv[3*r*w : 3*(r+1)*w]
		copy(q[r*w:(r+1)*w], row[:w])
		copy(k[r*w:(r+1)*w], row[w:2*w])
		copy(v[r*w:(r+1)*w], row[2*w:])
	}
	return q, k, v
}

// attnInputs are one Attention's operands.
type attnInputs struct {
	d            *engine.AttentionDims
	q, k, v, out []float32
}

// head returns token i's features of head h in batch b of t, which has n
// tokens: [D].
func (a *attnInputs) head(t []float32, n, b, h, i int) []float32 {
	dim := a.d.HeadDim
	o := (b*n+i)*a.d.Heads*dim + h*dim
	return t[o : o+dim]
}

// attnState is one goroutine's scratch. Row attnQueryBlock of acc, m and l
// belongs to a phantom query that pads an odd block to whole pairs.
type attnState struct {
	kt  []float32                // [D, attnKeyBlock] the key block, transposed
	s   [2][attnKeyBlock]float32 // scores, then probabilities, of a query pair
	acc [attnQueryBlock + 1][]float32
	m   [attnQueryBlock + 1]float32
	l   [attnQueryBlock + 1]float64
}

func newAttnState(dim int) *attnState {
	st := &attnState{kt: make([]float32, dim*attnKeyBlock)}
	for i := range st.acc {
		st.acc[i] = make([]float32, dim) // [D]
	}
	return st
}

// queries computes the outputs of queries i0..i1-1 of batch b, head h.
func (st *attnState) queries(a *attnInputs, b, h, i0, i1 int) {
	d := a.d
	dim, nq := d.HeadDim, i1-i0
	for r := range nq + 1 {
		st.m[r], st.l[r] = float32(math.Inf(-1)), 0
		clear(st.acc[r])
	}
	nk := d.Nk
	if d.Causal {
		nk = i1 // the block's last query sees keys 0..i1-1
	}
	for j0 := 0; j0 < nk; j0 += attnKeyBlock {
		j1 := min(j0+attnKeyBlock, nk)
		w := j1 - j0
		for j := j0; j < j1; j++ {
			for x, kv := range a.head(a.k, d.Nk, b, h, j) {
				st.kt[x*attnKeyBlock+j-j0] = kv
			}
		}
		ktRow := func(x int) []float32 { return st.kt[x*attnKeyBlock : x*attnKeyBlock+w] }
		for r0 := 0; r0 < nq; r0 += 2 {
			r1 := r0 + 1
			q0 := a.head(a.q, d.Nq, b, h, i0+r0)
			q1 := q0
			if r1 < nq {
				q1 = a.head(a.q, d.Nq, b, h, i0+r1)
			} else {
				r1 = attnQueryBlock // phantom: same query, result dropped
			}
			// s = q·Kᵀ for both queries, four features at a time.
			s0, s1 := st.s[0][:w], st.s[1][:w]
			clear(s0)
			clear(s1)
			x := 0
			for ; x+4 <= dim; x += 4 {
				axpy2x4(s0, s1, ktRow(x), ktRow(x+1), ktRow(x+2), ktRow(x+3),
					q0[x], q0[x+1], q0[x+2], q0[x+3], q1[x], q1[x+1], q1[x+2], q1[x+3])
			}
			for ; x < dim; x++ {
				axpy2x1(s0, s1, ktRow(x), q0[x], q1[x])
			}
			st.fold(r0, s0, d, i0+r0, j0)
			st.fold(r1, s1, d, i0+min(r0+1, nq-1), j0)
			// acc += P·V, four keys at a time.
			c0, c1 := st.acc[r0], st.acc[r1]
			j := 0
			for ; j+4 <= w; j += 4 {
				axpy2x4(c0, c1,
					a.head(a.v, d.Nk, b, h, j0+j), a.head(a.v, d.Nk, b, h, j0+j+1),
					a.head(a.v, d.Nk, b, h, j0+j+2), a.head(a.v, d.Nk, b, h, j0+j+3),
					s0[j], s0[j+1], s0[j+2], s0[j+3], s1[j], s1[j+1], s1[j+2], s1[j+3])
			}
			for ; j < w; j++ {
				axpy2x1(c0, c1, a.head(a.v, d.Nk, b, h, j0+j), s0[j], s1[j])
			}
		}
	}
	for r := range nq {
		out := a.head(a.out, d.Nq, b, h, i0+r) // [D]
		inv := float32(1 / st.l[r])
		for x, o := range st.acc[r] {
			out[x] = o * inv
		}
	}
}

// fold turns row r's raw dot products s, for keys j0.., into probabilities
// under the updated running max, rescaling what row r has summed so far.
// Query i sees every key, or keys 0..i when causal.
func (st *attnState) fold(r int, s []float32, d *engine.AttentionDims, i, j0 int) {
	hi := st.m[r]
	for j := range s {
		s[j] *= d.Scale
		if d.Causal && j0+j > i {
			s[j] = float32(math.Inf(-1))
		}
		hi = max(hi, s[j])
	}
	if hi > st.m[r] {
		corr := math.Exp(float64(st.m[r] - hi)) // 0 on the first block
		st.l[r] *= corr
		scaleVec(st.acc[r], float32(corr))
		st.m[r] = hi
	}
	var sum float64
	for j, x := range s {
		e := math.Exp(float64(x - hi))
		sum += e
		s[j] = float32(e)
	}
	st.l[r] += sum
}

func scaleVec(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}
