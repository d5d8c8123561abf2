package cpu

import "glimmer/engine"

// SampleStep runs p.Apply on the tensors' storage.
func (be *Backend) SampleStep(x, eps, hist, noise, next *engine.Tensor, p engine.StepParams) {
	engine.CheckSampleStep(x, eps, hist, noise, next, p)
	p.Apply(buf(x), buf(eps), slice(hist), slice(noise), slice(next))
}

// slice is t's storage, or nil for a nil t.
func slice(t *engine.Tensor) []float32 {
	if t == nil {
		return nil
	}
	return buf(t)
}
