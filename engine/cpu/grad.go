package cpu

import (
	"fmt"
	"math"

	"glimmer/engine"
)

// The backward ops (engine.GradOps). The heavy ones live beside this file:
// grad_conv.go, grad_norm.go, grad_attention.go. Gradients, like the
// forward activations, are float32; sums that reduce many values
// (SumTo, the norms' statistics) run in float64.

var _ engine.TrainBackend = (*Backend)(nil)

// sumAxis is one axis of a SumTo after merging neighbours of the same
// kind: kept (dst has it) or summed (dst has 1 there).
type sumAxis struct {
	ext, stride int // extent and stride in x
	keep        bool
}

// sumToAxes aligns dst's shape on x's and merges adjacent axes of one
// kind, dropping x's extents of 1. Strides are x's.
func sumToAxes(dst, x *engine.Tensor) []sumAxis {
	const op = "SumTo"
	xs, ds := x.Shape(), dst.Shape()
	// Leading 1s of dst beyond x's rank are harmless: drop them.
	for len(ds) > len(xs) && ds[0] == 1 {
		ds = ds[1:]
	}
	if len(ds) > len(xs) {
		engine.Fail(op, "dst %v has a higher rank than x %v", dst.Shape(), xs)
	}
	off := len(xs) - len(ds)
	var axes []sumAxis
	for i, xe := range xs {
		de := 1
		if i >= off {
			de = ds[i-off]
		}
		if de != xe && de != 1 {
			engine.Fail(op, "dst %v does not broadcast to x %v", dst.Shape(), xs)
		}
		if xe == 1 {
			continue
		}
		keep := de == xe
		if n := len(axes); n > 0 && axes[n-1].keep == keep {
			axes[n-1].ext *= xe
			continue
		}
		axes = append(axes, sumAxis{ext: xe, keep: keep})
	}
	s := 1
	for i := len(axes) - 1; i >= 0; i-- {
		axes[i].stride = s
		s *= axes[i].ext
	}
	return axes
}

// offsets lists x's offset of every index combination of axes, the last
// axis fastest.
func offsets(axes []sumAxis) []int {
	out := []int{0}
	for _, a := range axes {
		next := make([]int, 0, len(out)*a.ext)
		for _, o := range out {
			for i := range a.ext {
				next = append(next, o+i*a.stride)
			}
		}
		out = next
	}
	return out
}

// offsetOf is x's offset of combination i of axes (last axis fastest).
func offsetOf(axes []sumAxis, i int) int {
	o := 0
	for k := len(axes) - 1; k >= 0; k-- {
		o += (i % axes[k].ext) * axes[k].stride
		i /= axes[k].ext
	}
	return o
}

// SumTo sums x over the axes broadcasting would stretch from dst's shape.
// After merging, the innermost axis is either kept (each dst element is a
// column: rows of x are added as vectors) or summed (each dst element sums
// contiguous runs). The sums run in float64.
func (be *Backend) SumTo(dst, x *engine.Tensor) {
	engine.CheckF32("SumTo", dst, x)
	axes := sumToAxes(dst, x)
	xs, ys := buf(x), buf(dst)
	if len(ys) == 0 {
		return
	}
	if len(axes) == 0 { // x holds one element
		ys[0] = xs[0]
		return
	}
	var kept, summed []sumAxis
	for _, a := range axes[:len(axes)-1] {
		if a.keep {
			kept = append(kept, a)
		} else {
			summed = append(summed, a)
		}
	}
	inner := axes[len(axes)-1]
	sumOffs := offsets(summed) // [Π summed extents]
	if !inner.keep {
		// dst element e sums runs of inner.ext values at base + sumOffs.
		run := inner.ext
		be.each(len(ys), len(sumOffs)*run, func(e int) {
			base := offsetOf(kept, e)
			var s float64
			for _, o := range sumOffs {
				for _, v := range xs[base+o : base+o+run] {
					s += float64(v)
				}
			}
			ys[e] = float32(s)
		})
		return
	}
	// dst is [outer, L]: each outer index adds len(sumOffs) rows of L
	// values. Columns are split into chunks so a bias [C] still spreads
	// over the workers.
	l := inner.ext
	chunk := min(l, max(64, l/(4*be.workers)))
	nc := (l + chunk - 1) / chunk
	outer := len(ys) / l
	be.parallel(outer*nc, len(sumOffs)*chunk, func(lo, hi int) {
		acc := make([]float64, chunk)
		for t := lo; t < hi; t++ {
			o, c := t/nc, t%nc
			l0, l1 := c*chunk, min(c*chunk+chunk, l)
			acc := acc[:l1-l0]
			clear(acc)
			base := offsetOf(kept, o) + l0
			for _, so := range sumOffs {
				row := xs[base+so : base+so+len(acc)]
				for j, v := range row {
					acc[j] += float64(v)
				}
			}
			out := ys[o*l+l0 : o*l+l1]
			for j, v := range acc {
				out[j] = float32(v)
			}
		}
	})
}

// Split is Concat's inverse: x [N, Ca+Cb, ...] into a [N, Ca, ...] and
// b [N, Cb, ...]; either may be nil.
func (be *Backend) Split(a, b, x *engine.Tensor) {
	const op = "Split"
	engine.CheckF32(op, a, b, x)
	if x.Rank() < 2 {
		engine.Fail(op, "x %v needs rank >= 2", x.Shape())
	}
	n := x.Dim(0)
	rest := x.Numel() / max(n*x.Dim(1), 1) // elements per channel
	ca, cb := -1, -1
	if a != nil {
		ca = a.Dim(1)
	}
	if b != nil {
		cb = b.Dim(1)
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
		engine.Fail(op, "a %v and b %v do not split x %v along axis 1", shapeOf(a), shapeOf(b), x.Shape())
	}
	for _, part := range []struct {
		t *engine.Tensor
		c int
	}{{a, ca}, {b, cb}} {
		want := x.Shape().Clone()
		want[1] = part.c
		engine.CheckShape(op, "part", part.t, want)
	}
	xs := buf(x) // [N, Ca+Cb, rest]
	na, nb := ca*rest, cb*rest
	var as, bs []float32
	if a != nil {
		as = buf(a) // [N, Ca, rest]
	}
	if b != nil {
		bs = buf(b) // [N, Cb, rest]
	}
	be.each(n, 2*(na+nb), func(i int) {
		in := xs[i*(na+nb) : (i+1)*(na+nb)]
		if as != nil {
			copy(as[i*na:(i+1)*na], in[:na])
		}
		if bs != nil {
			copy(bs[i*nb:(i+1)*nb], in[na:])
		}
	})
}

func shapeOf(t *engine.Tensor) any {
	if t == nil {
		return "nil"
	}
	return t.Shape()
}

// Upsample2xBackward sums each 2x2 block: dy [N, C, 2H, 2W] → dx [N, C, H, W].
func (be *Backend) Upsample2xBackward(dx, dy *engine.Tensor) {
	engine.CheckUpsample2x(dy, dx)
	w := dx.Dim(3)
	xs, ys := buf(dx), buf(dy)
	be.each(dx.Dim(0)*dx.Dim(1)*dx.Dim(2), 8*w, func(r int) {
		// Input row r gathers output rows 2r and 2r+1.
		top := ys[2*r*2*w : (2*r+1)*2*w]
		bot := ys[(2*r+1)*2*w : (2*r+2)*2*w]
		out := xs[r*w : (r+1)*w] // [W]
		for i := range out {
			out[i] = (top[2*i] + top[2*i+1]) + (bot[2*i] + bot[2*i+1])
		}
	})
}

// UnaryBackward: dx = dy ⊙ f'(x), each derivative evaluated in float64.
func (be *Backend) UnaryBackward(dx, dy, x *engine.Tensor, op engine.UnaryOp) {
	n := engine.CheckUnary(dx, x)
	engine.CheckF32("UnaryBackward", dy)
	engine.CheckShape("UnaryBackward", "dy", dy, x.Shape())
	var f func(v float64) float64
	switch op {
	case engine.SiLU:
		f = siluDeriv
	case engine.GELU:
		f = geluDeriv
	case engine.QuickGELU:
		f = func(v float64) float64 {
			// d/dx x·σ(1.702x), the product rounded as the forward does.
			z := float64(1.702 * float32(v))
			s := 1 / (1 + math.Exp(-z))
			return s + z*s*(1-s)
		}
	case engine.ReLU:
		f = func(v float64) float64 {
			if v > 0 {
				return 1
			}
			return 0
		}
	case engine.Tanh:
		f = func(v float64) float64 {
			t := math.Tanh(v)
			return 1 - t*t
		}
	case engine.Exp:
		f = math.Exp
	default:
		panic(fmt.Sprintf("cpu: UnaryBackward: unknown op %d", op))
	}
	xs, gs, ds := buf(x), buf(dy), buf(dx) // [n]
	be.parallel(n, 20, func(lo, hi int) {
		in, g, out := xs[lo:hi], gs[lo:hi], ds[lo:hi]
		for i, v := range in {
			out[i] = float32(float64(g[i]) * f(float64(v)))
		}
	})
}

// siluDeriv is d/dz z·σ(z) = σ(z)·(1 + z·(1 - σ(z))).
func siluDeriv(z float64) float64 {
	s := 1 / (1 + math.Exp(-z))
	return s * (1 + z*(1-s))
}

// geluDeriv is d/dx x·Φ(x) = Φ(x) + x·φ(x).
func geluDeriv(x float64) float64 {
	const invSqrt2Pi = 0.3989422804014327
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)*invSqrt2Pi
}

// GEGLUBackward: for x = [value | gate] and dy [rows, F],
// d value = dy·gelu(gate), d gate = dy·value·gelu'(gate).
func (be *Backend) GEGLUBackward(dx, dy, x *engine.Tensor) {
	rows, f := engine.CheckGEGLU(dy, x)
	engine.CheckF32("GEGLUBackward", dx)
	engine.CheckShape("GEGLUBackward", "dx", dx, x.Shape())
	xs, gs, ds := buf(x), buf(dy), buf(dx)
	be.each(rows, 40*f, func(r int) {
		value := xs[2*r*f : 2*r*f+f]
		gate := xs[2*r*f+f : 2*r*f+2*f]
		g := gs[r*f : r*f+f]
		dv := ds[2*r*f : 2*r*f+f]     // [F]
		dg := ds[2*r*f+f : 2*r*f+2*f] // [F]
		for i, gt := range gate {
			gi, z := float64(g[i]), float64(gt)
			dv[i] = float32(gi * geluExact(z))
			dg[i] = float32(gi * float64(value[i]) * geluDeriv(z))
		}
	})
}

// SoftmaxBackward: dx = y ⊙ (dy - Σ_row dy ⊙ y), the row sum in float64.
func (be *Backend) SoftmaxBackward(dx, dy, y *engine.Tensor) {
	d := engine.CheckSoftmax(dy, y)
	engine.CheckF32("SoftmaxBackward", dx)
	engine.CheckShape("SoftmaxBackward", "dx", dx, y.Shape())
	ys, gs, ds := buf(y), buf(dy), buf(dx)
	be.each(d.Rows, 6*d.Cols, func(r int) {
		yr := ys[r*d.Cols : (r+1)*d.Cols]
		gr := gs[r*d.Cols : (r+1)*d.Cols]
		out := ds[r*d.Cols : (r+1)*d.Cols] // [cols]
		var s float64
		for i, v := range yr {
			s += float64(v) * float64(gr[i])
		}
		s32 := float32(s)
		for i, v := range yr {
			out[i] = v * (gr[i] - s32)
		}
	})
}

// AdamW updates param in place (see engine.GradOps.AdamW); each element's
// step is computed in float64 and rounded once.
func (be *Backend) AdamW(param, grad, m, v *engine.Tensor, p engine.AdamWParams) {
	const op = "AdamW"
	engine.CheckF32(op, param, grad, m, v)
	for _, t := range []*engine.Tensor{grad, m, v} {
		engine.CheckShape(op, "state", t, param.Shape())
	}
	if p.Step < 1 {
		engine.Fail(op, "step %d, want >= 1", p.Step)
	}
	scale := float64(p.GradScale)
	if scale == 0 {
		scale = 1
	}
	b1, b2 := float64(p.Beta1), float64(p.Beta2)
	lr, wd, eps := float64(p.LR), float64(p.WeightDecay), float64(p.Eps)
	bc1 := 1 - math.Pow(b1, float64(p.Step))
	bc2 := 1 - math.Pow(b2, float64(p.Step))
	ps, gs, ms, vs := buf(param), buf(grad), buf(m), buf(v)
	be.parallel(len(ps), 20, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := float64(gs[i]) * scale
			mi := b1*float64(ms[i]) + (1-b1)*g
			vi := b2*float64(vs[i]) + (1-b2)*g*g
			pi := float64(ps[i])
			ps[i] = float32(pi - lr*wd*pi - lr*(mi/bc1)/(math.Sqrt(vi/bc2)+eps))
			ms[i], vs[i] = float32(mi), float32(vi)
		}
	})
}
