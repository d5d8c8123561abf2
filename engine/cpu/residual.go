package cpu

import "glimmer/engine"

// residual is a GEMM's residual operand (MatMulParams.Residual,
// Conv2DParams.Residual), captured before the product overwrites dst: a
// residual that is dst itself is copied first.
type residual struct {
	v []float32 // nil when there is none
}

func takeResidual(dst, res *engine.Tensor) residual {
	if res == nil {
		return residual{}
	}
	r, d := buf(res), buf(dst)
	if len(r) > 0 && &r[0] == &d[0] {
		r = append([]float32(nil), r...)
	}
	return residual{v: r}
}

// add finishes dst = product + residual, one float32 addition an element
// (what a Binary Add after the product rounds to).
func (r residual) add(be *Backend, dst *engine.Tensor) {
	if r.v == nil {
		return
	}
	d := buf(dst)
	be.parallel(len(d), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d[i] += r.v[i]
		}
	})
}
