package train

import (
	"fmt"
	"math"

	"glimmer/engine"
	"glimmer/engine/autograd"
)

// param is one trainable tensor with its AdamW state.
type param struct {
	name string
	t    *engine.Tensor // the tape tensor (F32 master weights)
	m, v *engine.Tensor // first and second moments on the real backend, t's shape
}

// optimizer is AdamW over a set of parameters with global-norm gradient
// clipping, as torch.nn.utils.clip_grad_norm_ followed by
// torch.optim.AdamW.
type optimizer struct {
	tp      *autograd.Tape
	params  []param
	lr      float64
	wd      float64
	maxNorm float64                // < 0: no clipping
	steps   int                    // the schedule's length, for the learning-rate decay
	t       int                    // steps taken
	sq      map[int]*engine.Tensor // g⊙g scratch by element count
	norm    *engine.Tensor         // [1] scratch: one parameter's Σ g²
	total   *engine.Tensor         // [1]: Σ g² over every parameter
}

// newOptimizer marks ts as parameters of tp and zeroes their moments.
func newOptimizer(tp *autograd.Tape, names []string, ts []*engine.Tensor, lr, wd, maxNorm float64, steps int) *optimizer {
	o := &optimizer{tp: tp, lr: lr, wd: wd, maxNorm: maxNorm, steps: steps, sq: map[int]*engine.Tensor{}}
	b := tp.Backend()
	o.norm = b.New(engine.F32, 1)  // [1]
	o.total = b.New(engine.F32, 1) // [1]
	for i, t := range ts {
		tp.Param(t)
		p := param{name: names[i], t: t,
			m: b.New(engine.F32, t.Shape()...), // t's shape
			v: b.New(engine.F32, t.Shape()...), // t's shape
		}
		zero := make([]float32, t.Numel())
		b.Write(p.m, zero)
		b.Write(p.v, zero)
		o.params = append(o.params, p)
		if o.sq[t.Numel()] == nil {
			o.sq[t.Numel()] = b.New(engine.F32, t.Numel()) // [numel]
		}
	}
	return o
}

// count is the number of trainable values.
func (o *optimizer) count() int {
	n := 0
	for _, p := range o.params {
		n += p.t.Numel()
	}
	return n
}

// rate is the learning rate at step t (1-based): a linear warm-up over the
// first 2% of the steps (at least 1), then a cosine decay to a tenth.
func (o *optimizer) rate(t int) float64 {
	warm := max(o.steps/50, 1)
	if t <= warm {
		return o.lr * float64(t) / float64(warm)
	}
	f := float64(t-warm) / float64(max(o.steps-warm, 1))
	return o.lr * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*min(f, 1))))
}

// apply takes one AdamW step with the gradients Backward left and returns
// the gradient norm before clipping. A non-finite norm skips the step
// (the parameters are left as they were) and is reported as an error.
func (o *optimizer) apply() (float64, error) {
	b := o.tp.Backend()
	// Σ g² of every parameter is summed on the device into one value, so
	// the step waits for the device once instead of once per parameter.
	first := true
	for _, p := range o.params {
		g := o.tp.Grad(p.t)
		if g == nil {
			continue
		}
		sq := o.sq[g.Numel()]                // [numel]
		flat := g.Reshape(g.Numel())         // [numel]
		b.Binary(sq, flat, flat, engine.Mul) // [numel]
		b.SumTo(o.norm, sq)                  // [1]
		if first {
			b.Scale(o.total, o.norm, 1, 0) // [1]
			first = false
		} else {
			b.Binary(o.total, o.total, o.norm, engine.Add) // [1]
		}
	}
	var sum float64
	if !first {
		v, err := b.Read(o.total)
		if err != nil {
			return 0, fmt.Errorf("train: %w", err)
		}
		sum = float64(v[0])
	}
	norm := math.Sqrt(sum)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("train: the gradient norm is %g; the step was skipped", norm)
	}
	scale := 1.0
	if o.maxNorm > 0 && norm > o.maxNorm {
		scale = o.maxNorm / (norm + 1e-6)
	}
	o.t++
	lr := o.rate(o.t)
	for _, p := range o.params {
		g := o.tp.Grad(p.t)
		if g == nil {
			continue
		}
		b.AdamW(o.tp.Phys(p.t), g, p.m, p.v, engine.AdamWParams{
			LR: float32(lr), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: float32(o.wd),
			Step: o.t, GradScale: float32(scale),
		})
	}
	return norm, nil
}

func (o *optimizer) free() {
	b := o.tp.Backend()
	for _, p := range o.params {
		b.Free(p.m)
		b.Free(p.v)
	}
	for _, t := range o.sq {
		b.Free(t)
	}
	b.Free(o.norm)
	b.Free(o.total)
}
