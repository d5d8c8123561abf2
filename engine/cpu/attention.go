package cpu

import (
	"math"

	"glimmer/engine"
)

// attnKeyBlock is how many keys Attention scores at a time. The online
// softmax keeps a running max m, sum l and output o per query and folds in
// one block after another:
//
//	m' = max(m, max_j s_j)
//	l' = l·exp(m - m') + Σ_j exp(s_j - m')
//	o' = o·exp(m - m') + Σ_j exp(s_j - m')·v_j
//
// so memory is one block of scores per query, never Nq x Nk.
const attnKeyBlock = 64

// Attention: dst = softmax(q kᵀ · scale) v for each batch and head, head h
// reading features h*D .. h*D+D-1 of q [B, Nq, H*D], k, v [B, Nk, H*D].
// Queries are processed in pairs, so each key and value row loaded serves
// two queries.
func (be *Backend) Attention(dst, q, k, v *engine.Tensor, p engine.AttentionParams) {
	d := engine.CheckAttention(dst, q, k, v, p)
	qs, ks, vs, ys := buf(q), buf(k), buf(v), buf(dst)
	pairs := (d.Nq + 1) / 2
	be.parallel(d.B*d.Heads*pairs, 8*d.Nk*d.HeadDim, func(lo, hi int) {
		st := newAttnState(d.HeadDim)
		for t := lo; t < hi; t++ {
			pair, bh := t%pairs, t/pairs
			st.queryPair(&d, bh/d.Heads, bh%d.Heads, 2*pair, qs, ks, vs, ys)
		}
	})
}

// attnState is one goroutine's scratch for a pair of queries.
type attnState struct {
	s   [2][attnKeyBlock]float32 // scores, then probabilities, of a block
	acc [2][]float32             // [D] unnormalised outputs
}

func newAttnState(dim int) *attnState {
	st := &attnState{}
	st.acc[0], st.acc[1] = make([]float32, dim), make([]float32, dim)
	return st
}

// queryPair computes the outputs of queries i0 and i0+1 (if it exists) of
// batch b, head h.
func (st *attnState) queryPair(d *engine.AttentionDims, b, h, i0 int, qs, ks, vs, ys []float32) {
	dim, width := d.HeadDim, d.Heads*d.HeadDim
	row := func(t []float32, n, i int) []float32 { // [D] of token i
		o := (b*n+i)*width + h*dim
		return t[o : o+dim]
	}
	nq := min(2, d.Nq-i0) // 1 for an odd last query
	q0, q1 := row(qs, d.Nq, i0), row(qs, d.Nq, i0+nq-1)
	nk := d.Nk
	if d.Causal {
		nk = i0 + nq // query i sees keys 0..i
	}
	m := [2]float32{float32(math.Inf(-1)), float32(math.Inf(-1))}
	var l [2]float64
	clear(st.acc[0])
	clear(st.acc[1])
	for j0 := 0; j0 < nk; j0 += attnKeyBlock {
		j1 := min(j0+attnKeyBlock, nk)
		s0, s1 := st.s[0][:j1-j0], st.s[1][:j1-j0]
		for j := j0; j < j1; j++ {
			a, c := dot2(q0, q1, row(ks, d.Nk, j))
			s0[j-j0], s1[j-j0] = a*d.Scale, c*d.Scale
		}
		if d.Causal && j1 > i0+1 {
			s0[i0+1-j0] = float32(math.Inf(-1)) // key i0+1 is only query i0+1's
		}
		for qi, s := range [2][]float32{s0, s1} {
			hi := m[qi]
			for _, x := range s {
				hi = max(hi, x)
			}
			if hi > m[qi] {
				// Rescale what was summed under the old max.
				corr := math.Exp(float64(m[qi] - hi))
				l[qi] *= corr
				scaleVec(st.acc[qi], float32(corr))
				m[qi] = hi
			}
			var sum float64
			for j, x := range s {
				e := math.Exp(float64(x - hi))
				sum += e
				s[j] = float32(e)
			}
			l[qi] += sum
		}
		// acc += P · V over the block, four keys at a time.
		j := j0
		for ; j+4 <= j1; j += 4 {
			r := j - j0
			axpy2x4(st.acc[0], st.acc[1],
				row(vs, d.Nk, j), row(vs, d.Nk, j+1), row(vs, d.Nk, j+2), row(vs, d.Nk, j+3),
				s0[r], s0[r+1], s0[r+2], s0[r+3], s1[r], s1[r+1], s1[r+2], s1[r+3])
		}
		for ; j < j1; j++ {
			axpy2x1(st.acc[0], st.acc[1], row(vs, d.Nk, j), s0[j-j0], s1[j-j0])
		}
	}
	for qi := range nq {
		out := row(ys, d.Nq, i0+qi) // [D]
		inv := float32(1 / l[qi])
		for i, x := range st.acc[qi] {
			out[i] = x * inv
		}
	}
}

// dot2 returns q0·k and q1·k, each summed in two interleaved float32
// partial sums: with D <= 160 terms the rounding error stays near
// sqrt(D)·2⁻²⁴ relative, far below what the softmax can notice.
func dot2(q0, q1, k []float32) (float32, float32) {
	n := len(k)
	q0, q1 = q0[:n], q1[:n]
	var a0, a1, c0, c1 float32
	j := 0
	for ; j+2 <= n; j += 2 {
		k0, k1 := k[j], k[j+1]
		a0 += q0[j] * k0
		a1 += q0[j+1] * k1
		c0 += q1[j] * k0
		c1 += q1[j+1] * k1
	}
	if j < n {
		a0 += q0[j] * k[j]
		c0 += q1[j] * k[j]
	}
	return a0 + a1, c0 + c1
}

func scaleVec(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}
