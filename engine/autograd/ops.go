package autograd

import (
	"fmt"

	"glimmer/engine"
)

// record is one recorded op: its output node and a closure that, given
// d loss / d output, adds the gradients of the op's inputs.
type record struct {
	out   *node
	shape engine.Shape // the output's shape as the op wrote it
	back  func(dy *engine.Tensor)
}

// in resolves an op input: its current node (marked as read) and its
// physical view. nil stays nil.
func in(t *engine.Tensor) (*node, *engine.Tensor) {
	if t == nil {
		return nil, nil
	}
	s := store(t)
	s.cur.used = true
	return s.cur, s.cur.t.View(t.Shape()...)
}

// out prepares an op's destination after its inputs were resolved (so an
// in-place op reads the old node and writes a new one).
func (tp *Tape) out(t *engine.Tensor) (*node, *engine.Tensor) {
	n := tp.output(t)
	return n, n.t.View(t.Shape()...)
}

// rec records an op whose output is n (shaped as t) and whose inputs are
// ins, unless recording is paused or no input needs a gradient.
func (tp *Tape) rec(n *node, t *engine.Tensor, ins []*node, back func(dy *engine.Tensor)) {
	n.used = true
	if tp.paused > 0 {
		return
	}
	for _, i := range ins {
		if i != nil && i.needGrad {
			n.needGrad = true
		}
	}
	if n.needGrad {
		tp.records = append(tp.records, record{out: n, shape: t.Shape().Clone(), back: back})
	}
}

// target is where one input's gradient goes: straight into the node's
// gradient when it has none yet, else into a scratch tensor that done adds.
type target struct {
	n   *node
	dst *engine.Tensor
	tmp bool
}

// want returns the destination for n's gradient shaped as shape, or nil
// when n needs none.
func (tp *Tape) want(n *node, shape engine.Shape) *target {
	if n == nil || !n.needGrad {
		return nil
	}
	if n.t.DType() != engine.F32 {
		panic(fmt.Sprintf("autograd: a gradient reached an %v tensor; trainable tensors must be F32", n.t.DType()))
	}
	if n.grad == nil {
		n.grad = tp.alloc(engine.F32, shape.Numel()) // [numel]
		return &target{n: n, dst: n.grad.Reshape(shape...)}
	}
	return &target{n: n, dst: tp.scratch(shape...), tmp: true}
}

// T is the destination tensor, nil for no target.
func (t *target) T() *engine.Tensor {
	if t == nil {
		return nil
	}
	return t.dst
}

// done adds scratch gradients into their nodes.
func (tp *Tape) done(ts ...*target) {
	for _, t := range ts {
		if t != nil && t.tmp {
			tp.b.Binary(t.n.grad, t.n.grad, t.dst.Reshape(t.dst.Numel()), engine.Add) // [numel]
			tp.release(t.dst)
		}
	}
}

// scratch is a temporary F32 tensor of the real backend for a backward
// rule; give it back with release.
func (tp *Tape) scratch(shape ...int) *engine.Tensor {
	return tp.alloc(engine.F32, engine.Shape(shape).Numel()).Reshape(shape...)
}

// grad computes one input's gradient with f into its target.
func (tp *Tape) grad(n *node, shape engine.Shape, f func(dst *engine.Tensor)) {
	if t := tp.want(n, shape); t != nil {
		f(t.dst)
		tp.done(t)
	}
}

func (tp *Tape) MatMul(dst, a, w, bias *engine.Tensor, p engine.MatMulParams) {
	d := engine.CheckMatMul(dst, a, w, bias, p)
	if p.GEGLU {
		engine.Fail("MatMul", "the GEGLU epilogue has no gradient here: record MatMul, then GEGLU")
	}
	na, pa := in(a)
	nw, pw := in(w)
	nb, pb := in(bias)
	nr, pr := in(p.Residual)
	no, po := tp.out(dst)
	fwd := p
	fwd.Residual = pr
	tp.b.MatMul(po, pa, pw, pb, fwd)
	alpha := p.Alpha
	if alpha == 0 {
		alpha = 1
	}
	tp.rec(no, dst, []*node{na, nw, nb, nr}, func(dy *engine.Tensor) {
		b := tp.b
		tp.residualGrad(nr, p.Residual, dy)
		dy3 := dy.Reshape(d.Batch, d.M, d.N) // [B, M, N]
		// d op(A) [B, M, K] = alpha · dy · op(W)ᵀ.
		tp.grad(na, a.Shape(), func(da *engine.Tensor) {
			if !p.TransA {
				b.MatMul(da.Reshape(d.Batch, d.M, d.K), dy3, pw, nil, engine.MatMulParams{TransB: !p.TransB, Alpha: alpha}) // [B, M, K]
				return
			}
			tmp := tp.scratch(d.Batch, d.M, d.K)                                              // [B, M, K]
			b.MatMul(tmp, dy3, pw, nil, engine.MatMulParams{TransB: !p.TransB, Alpha: alpha}) // [B, M, K]
			b.Transpose(da.Reshape(d.Batch, d.K, d.M), tmp)                                   // [B, K, M]
			tp.release(tmp)
		})
		// d op(W) [K, N] = alpha · op(A)ᵀ · dy, summed over the batch when
		// W is shared; stored transposed when TransB.
		tp.grad(nw, w.Shape(), func(dw *engine.Tensor) {
			if !d.BBatched && !p.TransA {
				// Fold the batch into the rows: A [B·M, K], dy [B·M, N].
				a2, dy2 := pa.Reshape(d.Batch*d.M, d.K), dy.Reshape(d.Batch*d.M, d.N)
				if p.TransB {
					b.MatMul(dw.Reshape(d.N, d.K), dy2, a2, nil, engine.MatMulParams{TransA: true, Alpha: alpha}) // [N, K]
				} else {
					b.MatMul(dw.Reshape(d.K, d.N), a2, dy2, nil, engine.MatMulParams{TransA: true, Alpha: alpha}) // [K, N]
				}
				return
			}
			rows, cols := d.K, d.N
			if p.TransB {
				rows, cols = d.N, d.K
			}
			full := dw.Reshape(d.Batch, rows, cols) // [B, rows, cols]
			if !d.BBatched {
				full = tp.scratch(d.Batch, rows, cols) // [B, rows, cols]
			}
			pa3 := pa.Reshape(d.Batch, a.Dim(a.Rank()-2), a.Dim(a.Rank()-1)) // [B, M, K] or [B, K, M]
			if p.TransB {
				// dWᵀ [N, K] = alpha · dyᵀ · op(A)
				b.MatMul(full, dy3, pa3, nil, engine.MatMulParams{TransA: true, TransB: p.TransA, Alpha: alpha}) // [B, N, K]
			} else {
				// dW [K, N] = alpha · op(A)ᵀ · dy
				b.MatMul(full, pa3, dy3, nil, engine.MatMulParams{TransA: !p.TransA, Alpha: alpha}) // [B, K, N]
			}
			if !d.BBatched {
				b.SumTo(dw.Reshape(1, rows, cols), full) // [1, rows, cols]
				tp.release(full)
			}
		})
		if bias != nil {
			tp.grad(nb, bias.Shape(), func(db *engine.Tensor) { b.SumTo(db, dy3) }) // [N]
		}
	})
}

func (tp *Tape) Conv2D(dst, x, w, bias *engine.Tensor, p engine.Conv2DParams) {
	engine.CheckConv2D(dst, x, w, bias, p)
	nx, px := in(x)
	nw, pw := in(w)
	nb, pb := in(bias)
	nr, pr := in(p.Residual)
	no, po := tp.out(dst)
	res := p.Residual
	fwd := p
	fwd.Residual = pr
	tp.b.Conv2D(po, px, pw, pb, fwd)
	p.Residual = nil // the backward convolutions take the geometry alone
	tp.rec(no, dst, []*node{nx, nw, nb, nr}, func(dy *engine.Tensor) {
		tp.residualGrad(nr, res, dy)
		tp.grad(nx, x.Shape(), func(dx *engine.Tensor) { tp.b.Conv2DBackwardData(dx, dy, pw, p) })   // [N, C, H, W]
		tp.grad(nw, w.Shape(), func(dw *engine.Tensor) { tp.b.Conv2DBackwardWeight(dw, px, dy, p) }) // [OC, C, KH, KW]
		if bias != nil {
			tp.grad(nb, bias.Shape(), func(db *engine.Tensor) { tp.b.SumTo(db.Reshape(1, db.Numel(), 1, 1), dy) }) // [OC]
		}
	})
}

// residualGrad writes a GEMM's residual operand's gradient: dy itself.
func (tp *Tape) residualGrad(n *node, res, dy *engine.Tensor) {
	if res != nil {
		tp.grad(n, res.Shape(), func(dr *engine.Tensor) { tp.b.Scale(dr, dy.Reshape(res.Shape()...), 1, 0) })
	}
}

func (tp *Tape) GroupNorm(dst, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	if p.Shift != nil {
		engine.Fail("GroupNorm", "a shift has no gradient here: record the Binary Add, then GroupNorm")
	}
	nx, px := in(x)
	ng, pg := in(gamma)
	nb, pb := in(beta)
	no, po := tp.out(dst)
	tp.b.GroupNorm(po, px, pg, pb, p)
	tp.rec(no, dst, []*node{nx, ng, nb}, func(dy *engine.Tensor) {
		tx, tg, tb := tp.want(nx, x.Shape()), tp.want(ng, gamma.Shape()), tp.want(nb, beta.Shape())
		tp.b.GroupNormBackward(tx.T(), tg.T(), tb.T(), dy, px, pg, pb, p) // [N, C, ...], [C], [C]
		tp.done(tx, tg, tb)
	})
}

func (tp *Tape) LayerNorm(dst, x, gamma, beta *engine.Tensor, eps float32) {
	nx, px := in(x)
	ng, pg := in(gamma)
	nb, pb := in(beta)
	no, po := tp.out(dst)
	tp.b.LayerNorm(po, px, pg, pb, eps)
	tp.rec(no, dst, []*node{nx, ng, nb}, func(dy *engine.Tensor) {
		tx, tg, tb := tp.want(nx, x.Shape()), tp.want(ng, gamma.Shape()), tp.want(nb, beta.Shape())
		tp.b.LayerNormBackward(tx.T(), tg.T(), tb.T(), dy, px, pg, eps) // [..., C], [C], [C]
		tp.done(tx, tg, tb)
	})
}

func (tp *Tape) Softmax(dst, x *engine.Tensor) {
	nx, px := in(x)
	no, po := tp.out(dst)
	tp.b.Softmax(po, px)
	tp.rec(no, dst, []*node{nx}, func(dy *engine.Tensor) {
		tp.grad(nx, x.Shape(), func(dx *engine.Tensor) { tp.b.SoftmaxBackward(dx, dy, po) }) // [..., L]
	})
}

func (tp *Tape) Attention(dst, q, k, v *engine.Tensor, p engine.AttentionParams) {
	if p.Packed {
		engine.Fail("Attention", "packed q, k and v have no gradient here")
	}
	nq, pq := in(q)
	nk, pk := in(k)
	nv, pv := in(v)
	no, po := tp.out(dst)
	tp.b.Attention(po, pq, pk, pv, p)
	tp.rec(no, dst, []*node{nq, nk, nv}, func(dy *engine.Tensor) {
		tq, tk, tv := tp.want(nq, q.Shape()), tp.want(nk, k.Shape()), tp.want(nv, v.Shape())
		if tq == nil && tk == nil && tv == nil {
			return
		}
		// AttentionBackward writes all three; unwanted ones go to scratch.
		dq, dk, dv := tq.T(), tk.T(), tv.T()
		var scratch []*engine.Tensor
		fill := func(t **engine.Tensor, shape engine.Shape) {
			if *t == nil {
				*t = tp.scratch(shape...)
				scratch = append(scratch, *t)
			}
		}
		fill(&dq, q.Shape()) // [B, Nq, H*D]
		fill(&dk, k.Shape()) // [B, Nk, H*D]
		fill(&dv, v.Shape()) // [B, Nk, H*D]
		tp.b.AttentionBackward(dq, dk, dv, dy, pq, pk, pv, p)
		tp.done(tq, tk, tv)
		for _, s := range scratch {
			tp.release(s)
		}
	})
}

func (tp *Tape) Unary(dst, x *engine.Tensor, op engine.UnaryOp) {
	nx, px := in(x)
	no, po := tp.out(dst)
	tp.b.Unary(po, px, op)
	tp.rec(no, dst, []*node{nx}, func(dy *engine.Tensor) {
		tp.grad(nx, x.Shape(), func(dx *engine.Tensor) { tp.b.UnaryBackward(dx, dy, px, op) })
	})
}

func (tp *Tape) GEGLU(dst, x *engine.Tensor) {
	nx, px := in(x)
	no, po := tp.out(dst)
	tp.b.GEGLU(po, px)
	tp.rec(no, dst, []*node{nx}, func(dy *engine.Tensor) {
		tp.grad(nx, x.Shape(), func(dx *engine.Tensor) { tp.b.GEGLUBackward(dx, dy, px) }) // [..., 2F]
	})
}

func (tp *Tape) Binary(dst, a, c *engine.Tensor, op engine.BinaryOp) {
	na, pa := in(a)
	nc, pc := in(c)
	no, po := tp.out(dst)
	tp.b.Binary(po, pa, pc, op)
	tp.rec(no, dst, []*node{na, nc}, func(dy *engine.Tensor) {
		b := tp.b
		// reduce writes SumTo(dy ⊙ other) (other nil: dy) into dst, negated
		// when neg.
		reduce := func(dst, other *engine.Tensor, neg bool) {
			src := dy
			if other != nil {
				src = tp.scratch(dy.Shape()...)      // [dst shape of the op]
				b.Binary(src, dy, other, engine.Mul) // [dst shape of the op]
			}
			if dst.Shape().Equal(src.Shape()) && other == nil {
				b.Scale(dst, src, 1, 0)
			} else {
				b.SumTo(dst, src)
			}
			if neg {
				b.Scale(dst, dst, -1, 0)
			}
			if other != nil {
				tp.release(src)
			}
		}
		switch op {
		case engine.Add:
			tp.grad(na, a.Shape(), func(da *engine.Tensor) { reduce(da, nil, false) })
			tp.grad(nc, c.Shape(), func(dc *engine.Tensor) { reduce(dc, nil, false) })
		case engine.Sub:
			tp.grad(na, a.Shape(), func(da *engine.Tensor) { reduce(da, nil, false) })
			tp.grad(nc, c.Shape(), func(dc *engine.Tensor) { reduce(dc, nil, true) })
		case engine.Mul:
			tp.grad(na, a.Shape(), func(da *engine.Tensor) { reduce(da, pc, false) })
			tp.grad(nc, c.Shape(), func(dc *engine.Tensor) { reduce(dc, pa, false) })
		}
	})
}

func (tp *Tape) Scale(dst, x *engine.Tensor, s, c float32) {
	nx, px := in(x)
	no, po := tp.out(dst)
	tp.b.Scale(po, px, s, c)
	tp.rec(no, dst, []*node{nx}, func(dy *engine.Tensor) {
		tp.grad(nx, x.Shape(), func(dx *engine.Tensor) { tp.b.Scale(dx, dy, s, 0) })
	})
}

func (tp *Tape) Upsample2x(dst, x *engine.Tensor) {
	nx, px := in(x)
	no, po := tp.out(dst)
	tp.b.Upsample2x(po, px)
	tp.rec(no, dst, []*node{nx}, func(dy *engine.Tensor) {
		tp.grad(nx, x.Shape(), func(dx *engine.Tensor) { tp.b.Upsample2xBackward(dx, dy) }) // [N, C, H, W]
	})
}

func (tp *Tape) Concat(dst, a, c *engine.Tensor) {
	na, pa := in(a)
	nc, pc := in(c)
	no, po := tp.out(dst)
	tp.b.Concat(po, pa, pc)
	tp.rec(no, dst, []*node{na, nc}, func(dy *engine.Tensor) {
		ta, tc := tp.want(na, a.Shape()), tp.want(nc, c.Shape())
		if ta != nil || tc != nil {
			tp.b.Split(ta.T(), tc.T(), dy) // [N, Ca, ...], [N, Cb, ...]
			tp.done(ta, tc)
		}
	})
}

func (tp *Tape) Transpose(dst, x *engine.Tensor) {
	nx, px := in(x)
	no, po := tp.out(dst)
	tp.b.Transpose(po, px)
	tp.rec(no, dst, []*node{nx}, func(dy *engine.Tensor) {
		tp.grad(nx, x.Shape(), func(dx *engine.Tensor) { tp.b.Transpose(dx, dy) }) // [B, R, C]
	})
}

// TimestepEmbedding has no gradient: timesteps are data.
func (tp *Tape) TimestepEmbedding(dst, t *engine.Tensor, p engine.TimestepParams) {
	_, pt := in(t)
	no, po := tp.out(dst)
	tp.b.TimestepEmbedding(po, pt, p)
	tp.rec(no, dst, nil, nil)
}

// SampleStep runs a sampler's step without a record: it has no gradient
// (the latents are data; training draws its sample images under NoGrad).
// x and hist, which it updates in place, keep their nodes unless a record
// has used them; then they move to fresh nodes holding copies, so the
// recorded values stay intact.
func (tp *Tape) SampleStep(x, eps, hist, noise, next *engine.Tensor, p engine.StepParams) {
	_, pe := in(eps)
	_, pn := in(noise)
	px, ph := tp.inPlace(x), tp.inPlace(hist)
	var no *node
	var po *engine.Tensor
	if next != nil {
		no, po = tp.out(next)
	}
	tp.b.SampleStep(px, pe, ph, pn, po, p)
	if no != nil {
		tp.rec(no, next, nil, nil)
	}
}

// inPlace returns t's value for an unrecorded op to update in place
// (nil for a nil t): its current node, or a copy of it on a fresh node
// when a record has used that one. The copy is x·1 + 0, exact but for
// −0, which becomes +0.
func (tp *Tape) inPlace(t *engine.Tensor) *engine.Tensor {
	if t == nil {
		return nil
	}
	s := store(t)
	if s.cur.used {
		old := s.cur.t
		s.cur = tp.newNode(t.DType(), old.Numel())
		s.cur.needGrad = false
		tp.b.Scale(s.cur.t, old, 1, 0)
	}
	return s.cur.t.View(t.Shape()...)
}
