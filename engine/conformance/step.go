package conformance

import (
	"fmt"
	"testing"

	"glimmer/engine"
	"glimmer/engine/rng"
	"glimmer/engine/sample"
)

// testSampleStep runs every sampler's steps through the backend's
// SampleStep and through StepParams.Apply on the host, and wants the same
// bits: the float32 arithmetic is the step's definition (the samplers'
// golden tests hold Apply to diffusers' schedulers), so no tolerance. The
// plans come from the samplers themselves, so every rule meets its real
// coefficients: Euler with and without noise, DDIM, both DPM-Solver++
// orders, ε and v prediction, with and without guidance. The next step's
// input and the latents start as NaN or stale values, so an unwritten
// element fails.
func (s *suite) testSampleStep(t *testing.T) {
	shapes := [][]int{{1, 4, 5, 7}, {1, 4, 16, 17}} // 140 and 1088 latents: partial work groups
	for _, name := range sample.Names() {
		for _, pred := range []sample.Prediction{sample.Epsilon, sample.VPrediction} {
			for gi, guidance := range []float32{0, 7.5} {
				shape := shapes[gi]
				s.run(t, "SampleStep", fmt.Sprintf("%s_%s_cfg%g", name, pred, guidance), func(c *tcase) {
					c.sampleSteps(name, pred, guidance, shape)
				})
			}
		}
	}
}

// sampleSteps takes a 4-step run of the named sampler on the backend and
// on the host side by side, comparing latents, x̂₀ history and the next
// input after every step.
func (c *tcase) sampleSteps(name string, pred sample.Prediction, guidance float32, shape []int) {
	const steps, rows = 4, 2
	sm, err := sample.New(name, "", steps, sample.ScheduleConfig{Prediction: pred}, rng.New(5))
	if err != nil {
		c.Fatal(err)
	}
	n := engine.Shape(shape).Numel()
	g := 1
	if guidance > 0 {
		g = 2
	}
	rest := shape[1:]
	x := c.normals(n, 3, 0)
	hist := c.normals(n, 1, 0) // stale: the first step must not read it
	xt, _ := c.from(engine.F32, x, shape...)
	ht, _ := c.from(engine.F32, hist, shape...)
	nt := c.alloc(engine.F32, shape...)
	next := c.out(append([]int{rows}, rest...)...)
	noise := make([]float32, n)
	hostNext := make([]float32, rows*n)
	for i := range steps {
		p, err := sm.Plan(i, noise)
		if err != nil {
			c.Fatal(err)
		}
		p.Guidance = guidance
		p.NextDiv = 1 + float32(i)/3
		eps := c.normals(g*n, 1, 0)
		et, _ := c.from(engine.F32, eps, append([]int{g}, rest...)...)
		var noiseT *engine.Tensor
		if p.NeedsNoise() {
			c.be.Write(nt, noise)
			noiseT = nt
		}
		poison(c.be, next)
		c.be.SampleStep(xt, et, ht, noiseT, next, p)
		p.Apply(x, eps, hist, noise, hostNext)
		c.Logf("step %d: %v", i, p.Rule)
		c.expectExact(xt, x, engine.F32)
		c.expectExact(next, hostNext, engine.F32)
		if p.NeedsHist() {
			c.expectExact(ht, hist, engine.F32)
		}
	}
}
