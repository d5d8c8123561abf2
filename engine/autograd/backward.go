package autograd

import (
	"fmt"

	"glimmer/engine"
)

// Seed starts the backward pass at a tape tensor: Grad is d loss / d T,
// a tensor of the real backend with T's shape (the caller keeps it).
type Seed struct {
	T, Grad *engine.Tensor
}

// Backward propagates the seeds' gradients through the record in reverse,
// leaving d loss / d parameter in Grad(parameter). Seeds on tensors that
// other seeds' gradients also reach (a VAE's posterior mean, say) add up.
// Gradients of intermediate values are freed as soon as they are used.
func (tp *Tape) Backward(seeds ...Seed) {
	for _, s := range seeds {
		n := store(s.T).cur
		if !s.Grad.Shape().Equal(s.T.Shape()) {
			panic(fmt.Sprintf("autograd: seed gradient %v for a tensor %v", s.Grad.Shape(), s.T.Shape()))
		}
		tp.grad(n, s.T.Shape(), func(dst *engine.Tensor) { tp.b.Scale(dst, s.Grad, 1, 0) })
	}
	for i := len(tp.records) - 1; i >= 0; i-- {
		r := tp.records[i]
		if r.out.grad == nil {
			continue
		}
		r.back(r.out.grad.Reshape(r.shape...))
		tp.release(r.out.grad)
		r.out.grad = nil
	}
	tp.records = tp.records[:0]
}
