package gl

import (
	"fmt"
	"os"
	"strconv"

	"glimmer/engine"
)

// The heavy backward ops: the convolution's data and weight gradients as
// implicit GEMMs on gemm_core.glsl, and attention's gradients as a
// flash-attention-style backward that recomputes the scores tile by tile.

// convBackwardDims checks a backward convolution's tensors by the
// forward's rules (x [N, C, H, W], w [OC, C, KH, KW], y [N, OC, OH, OW]:
// the shapes, F32 x and y) and returns the dims with the strides defaulted.
func convBackwardDims(x, w, y *engine.Tensor, p engine.Conv2DParams) engine.Conv2DDims {
	return engine.CheckConv2D(y, x, w, nil, p)
}

func (b *Backend) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.Conv2DParams) {
	d := convBackwardDims(dx, w, dy, p) // dx [N, C, H, W] from dy [N, OC, OH, OW]
	m, n, k := d.C, d.H*d.W, d.OC*d.KH*d.KW
	tile, bk, groups := b.gemmShape(m, n, d.N)
	def := defines{"W_F16": isF16(w), "TILE": tile, "BK": bk}
	b.dispatch("conv2d_backward_data", def, groups, []*buffer{buf(dx), buf(dy), buf(w)}, func(u uniforms) {
		u.u("u_M", uint32(m))
		u.u("u_N", uint32(n))
		u.u("u_K", uint32(k))
		convGeometry(u, d)
	})
}

// Split-K for the weight gradient: each split sums at least
// splitMinDepth of the K = N*OH*OW products, the partials take at most
// splitMaxScratch floats, and splits are added until the grid has about
// twice fullGrid work groups.
const (
	splitMinDepth   = 512
	splitMaxScratch = 32 << 20
)

// convWeightSplits picks the number of K slices for an M x N result of
// depth k.
func (b *Backend) convWeightSplits(m, n, k int) int {
	_, _, g := b.gemmShape(m, n, 1)
	s := ceilDiv(2*b.fullGrid, g)
	s = min(s, k/splitMinDepth, splitMaxScratch/(m*n))
	return max(s, 1)
}

func (b *Backend) Conv2DBackwardWeight(dw, x, dy *engine.Tensor, p engine.Conv2DParams) {
	if dw.DType() != engine.F32 {
		panic("gl: Conv2DBackwardWeight: dw must be F32, got " + dw.DType().String())
	}
	d := convBackwardDims(x, dw, dy, p)
	m, n, ktot := d.OC, d.C*d.KH*d.KW, d.N*d.OH*d.OW
	splits := b.convWeightSplits(m, n, ktot)
	tile, bk, _ := b.gemmShape(m, n, splits)
	chunk := ceilDiv(ceilDiv(ktot, splits), bk) * bk // k per split, whole slices
	splits = ceilDiv(ktot, chunk)
	groups := ceilDiv(m, tile) * ceilDiv(n, tile) * splits
	dst := dw
	if splits > 1 {
		dst = b.scratch(splits * m * n) // [splits, OC, C*KH*KW]
	}
	def := defines{"REDUCE": 0, "TILE": tile, "BK": bk}
	b.dispatch("conv2d_backward_weight", def, groups, []*buffer{buf(dst), buf(x), buf(dy)}, func(u uniforms) {
		u.u("u_M", uint32(m))
		u.u("u_N", uint32(n))
		u.u("u_K", uint32(chunk))
		u.u("u_Ktot", uint32(ktot))
		u.i("u_OHW", d.OH*d.OW)
		convGeometry(u, d)
	})
	if splits == 1 {
		return
	}
	total := m * n
	b.dispatch("conv2d_backward_weight", defines{"REDUCE": 1}, elemGroups(total), []*buffer{buf(dw), buf(dst)}, func(u uniforms) {
		u.u("u_n", uint32(total))
		u.u("u_splits", uint32(splits))
	})
	b.release(dst)
}

// attnBackRows is TR, the rows each thread of the attention backward
// passes owns (attention_backward.glsl): 4 (64 rows a group) up to head
// dim 192, fewer for wider heads so that the dK/dV pass's two
// accumulators (2*TR*ceil(D/16) floats a thread) stay in registers, and
// fewer while the shared memory does not fit the driver.
// GLIMMER_GL_ATTN_BWD_TR (1, 2 or 4) forces it, for tuning.
func (b *Backend) attnBackRows(headDim int) int {
	tr := 4
	switch {
	case headDim > 384:
		tr = 1
	case headDim > 192:
		tr = 2
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_ATTN_BWD_TR")); err == nil && (v == 1 || v == 2 || v == 4) {
		tr = v // for tuning
	}
	for tr > 1 && attnBackShared(tr) > b.limits.MaxSharedBytes {
		tr /= 2
	}
	return tr
}

// attnBackShared mirrors attention_backward.glsl's shared array.
func attnBackShared(tr int) int {
	const bc, cst, tst = 64, 5, 64/4 + 1
	br := 16 * tr
	union := max((2*br+bc)*cst, br*tst)
	return 16 * (union + bc*cst)
}

// The dK/dV pass splits the queries when too few key blocks would run
// (cross-attention to 77 text tokens): each split covers at least
// attnSplitMinRows queries, and the partials take at most
// splitMaxScratch floats.
const attnSplitMinRows = 256

func (b *Backend) AttentionBackward(dq, dk, dv, dy, q, k, v *engine.Tensor, p engine.AttentionParams) {
	d := engine.CheckAttention(dy, q, k, v, p)
	for _, g := range []struct {
		name string
		t    *engine.Tensor
		like *engine.Tensor
	}{{"dq", dq, q}, {"dk", dk, k}, {"dv", dv, v}} {
		if g.t.DType() != engine.F32 || !g.t.Shape().Equal(g.like.Shape()) {
			panic(fmt.Sprintf("gl: AttentionBackward: %s is %v %v, want F32 %v", g.name, g.t.DType(), g.t.Shape(), g.like.Shape()))
		}
	}
	tr := b.attnBackRows(d.HeadDim)
	br, bc := 16*tr, 64
	def := defines{"HEAD_DIM": d.HeadDim, "TR": tr, "CAUSAL": b2i(d.Causal)}
	common := func(u uniforms) {
		u.u("u_Nq", uint32(d.Nq))
		u.u("u_Nk", uint32(d.Nk))
		u.u("u_H", uint32(d.Heads))
		u.f("u_scale", d.Scale)
	}
	bh := d.B * d.Heads
	stats := b.scratch(bh * d.Nq * 2) // [B, H, Nq, (L, D)]
	qGroups := ceilDiv(d.Nq, br) * bh
	b.dispatch("attention_backward_stats", def, qGroups,
		[]*buffer{buf(stats), buf(q), buf(k), buf(v), buf(dy)}, common)
	b.dispatch("attention_backward_dq", def, qGroups,
		[]*buffer{buf(dq), buf(q), buf(k), buf(v), buf(dy), buf(stats)}, common)

	kGroups := ceilDiv(d.Nk, br) * bh
	qTiles := ceilDiv(d.Nq, bc)
	splits := min(ceilDiv(2*b.fullGrid, kGroups), d.Nq/attnSplitMinRows, splitMaxScratch/(2*dk.Numel()))
	splits = max(splits, 1)
	qchunk := ceilDiv(qTiles, splits) * bc // queries per split, whole tiles
	splits = ceilDiv(d.Nq, qchunk)
	pk, pv := dk, dv
	if splits > 1 {
		pk = b.scratch(splits * dk.Numel()) // [splits, B, Nk, H*D]
		pv = b.scratch(splits * dv.Numel()) // [splits, B, Nk, H*D]
	}
	b.dispatch("attention_backward_dkdv", def, kGroups*splits,
		[]*buffer{buf(pk), buf(pv), buf(q), buf(k), buf(v), buf(dy), buf(stats)}, func(u uniforms) {
			common(u)
			u.u("u_B", uint32(d.B))
			u.u("u_qchunk", uint32(qchunk))
		})
	b.release(stats)
	if splits == 1 {
		return
	}
	n := dk.Numel()
	for _, r := range [][2]*engine.Tensor{{dk, pk}, {dv, pv}} {
		b.dispatch("attention_backward_reduce", nil, elemGroups(n), []*buffer{buf(r[0]), buf(r[1])}, func(u uniforms) {
			u.u("u_n", uint32(n))
			u.u("u_splits", uint32(splits))
		})
		b.release(r[1])
	}
}
