package gl

import (
	"math"

	"glimmer/engine"
)

var _ engine.TrainBackend = (*Backend)(nil)

// GroupNormBackward: see engine.GradOps. Four dispatches of
// groupnorm_backward.comp (its comment explains the passes), so groups of
// any size spread over many work groups.
func (b *Backend) GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	const op = "GroupNormBackward"
	engine.CheckF32(op, dx, dgamma, dbeta, dy, x)
	if x.Rank() < 2 {
		engine.Fail(op, "x %v needs rank >= 2", x.Shape())
	}
	n, c := x.Dim(0), x.Dim(1)
	if p.Groups <= 0 || c%p.Groups != 0 {
		engine.Fail(op, "%d channels do not split into %d groups", c, p.Groups)
	}
	engine.CheckShape(op, "dy", dy, x.Shape())
	engine.CheckShape(op, "dx", dx, x.Shape())
	engine.CheckShape(op, "gamma", gamma, engine.Shape{c})
	engine.CheckShape(op, "dgamma", dgamma, engine.Shape{c})
	engine.CheckShape(op, "dbeta", dbeta, engine.Shape{c})
	if gamma == nil || (p.SiLU && beta == nil) {
		engine.Fail(op, "gamma (and beta with SiLU) are needed")
	}
	engine.CheckShape(op, "beta", beta, engine.Shape{c})
	if dx == nil && dgamma == nil && dbeta == nil {
		return
	}
	sp := x.Numel() / max(n*c, 1)
	if n*c == 0 || sp == 0 {
		engine.Fail(op, "x %v is empty", x.Shape())
	}
	// Pieces: enough work groups to fill the GPU, each at least ~4096
	// elements when the channel has them (1024 ran 10% slower on the
	// H200 at 2x320x64x64: more groups, each mostly reduction overhead).
	pieces := max(1, min(ceilDiv(sumTarget, n*c), ceilDiv(sp, 4096)))
	piece := ceilDiv(sp, pieces)
	pieces = ceilDiv(sp, piece)
	betaBuf := buf(x) // placeholder binding when beta is not read
	betaF16 := 0
	if beta != nil {
		betaBuf, betaF16 = buf(beta), isF16(beta)
	}
	def := func(pass int) defines {
		return defines{"PASS": pass, "SILU": b2i(p.SiLU), "G_F16": isF16(gamma), "B_F16": betaF16,
			"HAS_DX": b2i(dx != nil), "HAS_DG": b2i(dgamma != nil), "HAS_DB": b2i(dbeta != nil)}
	}
	set := func(u uniforms) {
		u.u("u_N", uint32(n))
		u.u("u_C", uint32(c))
		u.u("u_G", uint32(p.Groups))
		u.u("u_S", uint32(sp))
		u.u("u_P", uint32(pieces))
		u.u("u_piece", uint32(piece))
		u.f("u_eps", p.Eps)
	}
	ng := n * p.Groups
	part1 := b.scratch(n * c * pieces * 2) // [N*C*P, 2] per piece: (mean, Σ(x-mean)²)
	part2 := b.scratch(n * c * pieces * 2) // [N*C*P, 2] per piece: (Σ ga x̂, Σ ga)
	stats := b.scratch(ng * 2)             // [N*G, 2] per group: (mean, rstd)
	gsum := b.scratch(ng * 2)              // [N*G, 2] per group: (Σ gamma ga x̂, Σ gamma ga)
	xb, dyb, gb := buf(x), buf(dy), buf(gamma)
	b.dispatch("groupnorm_backward", def(1), n*c*pieces, []*buffer{buf(part1), xb}, set)
	b.dispatch("groupnorm_backward", def(3), n*c*pieces,
		[]*buffer{buf(part2), xb, dyb, buf(stats), buf(part1), gb, betaBuf}, set)
	// Placeholder bindings for unwanted outputs are never declared.
	dg, db := buf(gsum), buf(gsum)
	if dgamma != nil {
		dg = buf(dgamma)
	}
	if dbeta != nil {
		db = buf(dbeta)
	}
	threads := 0
	if dx != nil {
		threads += ng
	}
	if dgamma != nil || dbeta != nil {
		threads += c
	}
	b.dispatch("groupnorm_backward", def(4), elemGroups(threads),
		[]*buffer{buf(gsum), buf(part2), dg, db, xb, gb}, set)
	if dx != nil {
		b.dispatch("groupnorm_backward", def(6), elemGroups(x.Numel()),
			[]*buffer{buf(dx), xb, dyb, buf(stats), buf(gsum), gb, betaBuf}, set)
	}
	b.release(gsum)
	b.release(stats)
	b.release(part2)
	b.release(part1)
}

// LayerNormBackward: see engine.GradOps. Pass 1 of
// layernorm_backward.comp (a work group per row) writes the row
// statistics and dx; pass 2 sums dgamma and dbeta down the columns in
// slices, which SumTo's reduction adds up when there are several.
func (b *Backend) LayerNormBackward(dx, dgamma, dbeta, dy, x, gamma *engine.Tensor, eps float32) {
	const op = "LayerNormBackward"
	engine.CheckF32(op, dx, dgamma, dbeta, dy, x)
	cols := x.Shape().Last()
	if x.Rank() < 1 || cols == 0 {
		engine.Fail(op, "x %v is empty", x.Shape())
	}
	rows := x.Numel() / cols
	engine.CheckShape(op, "dy", dy, x.Shape())
	engine.CheckShape(op, "dx", dx, x.Shape())
	if gamma == nil {
		engine.Fail(op, "gamma is needed")
	}
	engine.CheckShape(op, "gamma", gamma, engine.Shape{cols})
	engine.CheckShape(op, "dgamma", dgamma, engine.Shape{cols})
	engine.CheckShape(op, "dbeta", dbeta, engine.Shape{cols})
	if dx == nil && dgamma == nil && dbeta == nil || rows == 0 {
		return
	}
	stats := b.scratch(rows * 2) // [rows, 2] per row: (mean, rstd)
	set := func(u uniforms) {
		u.u("u_cols", uint32(cols))
		u.u("u_rows", uint32(rows))
		u.f("u_eps", eps)
	}
	bufs := []*buffer{buf(stats), buf(x), buf(dy), buf(gamma)}
	if dx != nil {
		bufs = append(bufs, buf(dx))
	}
	b.dispatch("layernorm_backward", defines{"PASS": 1, "G_F16": isF16(gamma), "HAS_DX": b2i(dx != nil)},
		rows, bufs, set)
	if dgamma != nil || dbeta != nil {
		blocks := ceilDiv(cols, 256)
		s := max(1, min(ceilDiv(sumTarget, blocks), ceilDiv(rows, 32)))
		chunk := ceilDiv(rows, s)
		s = ceilDiv(rows, chunk)
		outs := [2]*engine.Tensor{dgamma, dbeta}
		var parts [2]*engine.Tensor
		bind := [2]*buffer{buf(stats), buf(stats)} // placeholders for an unwanted output
		for i, t := range outs {
			switch {
			case t == nil:
			case s == 1:
				bind[i] = buf(t)
			default:
				parts[i] = b.scratch(s * cols) // [S, cols] slice sums
				bind[i] = buf(parts[i])
			}
		}
		b.dispatch("layernorm_backward", defines{"PASS": 2, "HAS_A": b2i(dgamma != nil), "HAS_B": b2i(dbeta != nil)},
			blocks*s, []*buffer{bind[0], bind[1], buf(x), buf(dy), buf(stats)}, func(u uniforms) {
				set(u)
				u.u("u_S", uint32(s))
				u.u("u_chunk", uint32(chunk))
			})
		for i, t := range parts {
			if t != nil {
				b.sumBuf(buf(outs[i]), buf(t), planSum(op, engine.Shape{cols}, engine.Shape{s, cols}))
				b.release(t)
			}
		}
	}
	b.release(stats)
}

// SoftmaxBackward: dx = y ⊙ (dy − Σ_last(dy ⊙ y)), a work group per row.
func (b *Backend) SoftmaxBackward(dx, dy, y *engine.Tensor) {
	const op = "SoftmaxBackward"
	engine.CheckF32(op, dx, dy, y)
	engine.CheckShape(op, "dy", dy, y.Shape())
	engine.CheckShape(op, "dx", dx, y.Shape())
	cols := y.Shape().Last()
	if cols == 0 {
		return
	}
	b.dispatch("softmax_backward", nil, y.Numel()/cols, []*buffer{buf(dx), buf(dy), buf(y)}, func(u uniforms) {
		u.u("u_cols", uint32(cols))
	})
}

// UnaryBackward: dx = dy ⊙ f'(x), elementwise.
func (b *Backend) UnaryBackward(dx, dy, x *engine.Tensor, op engine.UnaryOp) {
	engine.CheckF32("UnaryBackward", dx, dy, x)
	engine.CheckShape("UnaryBackward", "dy", dy, x.Shape())
	engine.CheckShape("UnaryBackward", "dx", dx, x.Shape())
	if op > engine.Exp {
		engine.Fail("UnaryBackward", "unknown activation %d", op)
	}
	n := x.Numel()
	b.dispatch("unary_backward", defines{"OP": int(op)}, elemGroups(n), []*buffer{buf(dx), buf(dy), buf(x)},
		func(u uniforms) { u.u("u_n", uint32(n)) })
}

// GEGLUBackward: dx [..., 2F] from dy [..., F] and x [..., 2F].
func (b *Backend) GEGLUBackward(dx, dy, x *engine.Tensor) {
	const op = "GEGLUBackward"
	engine.CheckF32(op, dx, dy, x)
	two := x.Shape().Last()
	if x.Rank() < 1 || two%2 != 0 {
		engine.Fail(op, "last axis of x %v is odd", x.Shape())
	}
	engine.CheckShape(op, "dx", dx, x.Shape())
	want := append(x.Shape()[:x.Rank()-1].Clone(), two/2)
	engine.CheckShape(op, "dy", dy, want)
	n := dy.Numel()
	b.dispatch("geglu_backward", nil, elemGroups(n), []*buffer{buf(dx), buf(dy), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_F", uint32(two/2))
	})
}

// Upsample2xBackward: dx [N, C, H, W] sums dy [N, C, 2H, 2W]'s 2x2 blocks.
func (b *Backend) Upsample2xBackward(dx, dy *engine.Tensor) {
	const op = "Upsample2xBackward"
	engine.CheckF32(op, dx, dy)
	if dx.Rank() != 4 {
		engine.Fail(op, "dx %v must be [N, C, H, W]", dx.Shape())
	}
	engine.CheckShape(op, "dy", dy, engine.Shape{dx.Dim(0), dx.Dim(1), 2 * dx.Dim(2), 2 * dx.Dim(3)})
	n := dx.Numel()
	b.dispatch("upsample2x_backward", nil, elemGroups(n), []*buffer{buf(dx), buf(dy)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_H", uint32(dx.Dim(2)))
		u.u("u_W", uint32(dx.Dim(3)))
	})
}

// Split: x [N, Ca+Cb, ...] into a [N, Ca, ...] and c [N, Cb, ...], one
// dispatch per wanted output.
func (b *Backend) Split(a, c, x *engine.Tensor) {
	const op = "Split"
	engine.CheckF32(op, a, c, x)
	if x.Rank() < 2 {
		engine.Fail(op, "x %v needs rank >= 2", x.Shape())
	}
	n := x.Dim(0)
	if n == 0 || x.Numel() == 0 {
		return
	}
	row := x.Numel() / n
	inner := row / x.Dim(1) // elements per channel
	// With one output nil, the other's channel count comes from x.
	ca, cb := -1, -1
	if a != nil {
		ca = a.Dim(1)
	}
	if c != nil {
		cb = c.Dim(1)
	}
	switch {
	case ca < 0 && cb < 0:
		return
	case ca < 0:
		ca = x.Dim(1) - cb
	case cb < 0:
		cb = x.Dim(1) - ca
	}
	if ca < 0 || cb < 0 || ca+cb != x.Dim(1) {
		engine.Fail(op, "a %v and b %v do not split x %v", shapeOf(a), shapeOf(c), x.Shape())
	}
	off := 0
	for _, t := range []struct {
		dst *engine.Tensor
		ch  int
	}{{a, ca}, {c, cb}} {
		if t.dst != nil {
			want := x.Shape().Clone()
			want[1] = t.ch
			engine.CheckShape(op, "output", t.dst, want)
			total, per, o := t.dst.Numel(), t.ch*inner, off
			b.dispatch("split", nil, elemGroups(total), []*buffer{buf(t.dst), buf(x)}, func(u uniforms) {
				u.u("u_n", uint32(total))
				u.u("u_I", uint32(per))
				u.u("u_row", uint32(row))
				u.u("u_off", uint32(o))
			})
		}
		off += t.ch * inner
	}
}

func shapeOf(t *engine.Tensor) any {
	if t == nil {
		return "nil"
	}
	return t.Shape()
}

// AdamW updates param, m and v in place. The bias corrections 1-β^t are
// computed on the host in float64 and passed rounded to float32.
func (b *Backend) AdamW(param, grad, m, v *engine.Tensor, p engine.AdamWParams) {
	const op = "AdamW"
	engine.CheckF32(op, param, grad, m, v)
	engine.CheckShape(op, "grad", grad, param.Shape())
	engine.CheckShape(op, "m", m, param.Shape())
	engine.CheckShape(op, "v", v, param.Shape())
	if p.Step < 1 {
		engine.Fail(op, "step %d, want >= 1", p.Step)
	}
	scale := p.GradScale
	if scale == 0 {
		scale = 1
	}
	bc1 := float32(1 - math.Pow(float64(p.Beta1), float64(p.Step)))
	bc2 := float32(1 - math.Pow(float64(p.Beta2), float64(p.Step)))
	n := param.Numel()
	b.dispatch("adamw", nil, elemGroups(n), []*buffer{buf(param), buf(grad), buf(m), buf(v)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.f("u_lr", p.LR)
		u.f("u_b1", p.Beta1)
		u.f("u_b2", p.Beta2)
		u.f("u_eps", p.Eps)
		u.f("u_wd", p.WeightDecay)
		u.f("u_bc1", bc1)
		u.f("u_bc2", bc2)
		u.f("u_gscale", scale)
	})
}
