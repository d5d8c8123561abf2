package sample

import "glimmer/engine/rng"

// eulerSchedule is the per-run table shared by euler and euler_a:
// "linspace" timesteps and the σ of each, with a final σ of 0.
type eulerSchedule struct {
	ts     []float32 // timesteps, descending
	sigmas []float32 // len(ts)+1, ending in 0
	init   float32   // max σ
}

func newEulerSchedule(tr *train, steps int, karras bool) eulerSchedule {
	// np.linspace(0, T-1, steps, dtype=float32)[::-1]
	lin := linspace(0, float64(tr.steps-1), steps)
	ts := make([]float32, steps)
	sig := make([]float64, steps)
	for i := range ts {
		ts[i] = float32(lin[steps-1-i])
		sig[i] = interp(float64(ts[i]), tr.sigmas)
	}
	if karras {
		ls := logSigmas(tr.sigmas)
		sig = karrasSigmas(sig[steps-1], sig[0], steps)
		for i, sg := range sig {
			ts[i] = float32(sigmaToT(sg, ls))
		}
	}
	s := eulerSchedule{ts: ts, sigmas: make([]float32, steps+1)}
	for i, v := range sig {
		s.sigmas[i] = float32(v)
	}
	for _, v := range s.sigmas {
		s.init = max(s.init, v)
	}
	return s
}

func (e *eulerSchedule) Timesteps() []float32    { return append([]float32(nil), e.ts...) }
func (e *eulerSchedule) InitNoiseSigma() float32 { return e.init }

// InputDivisor is sqrt(σ² + 1): scale_model_input divides by it.
func (e *eulerSchedule) InputDivisor(step int) float32 {
	sg := e.sigmas[step]
	return sqrt32(float32(sg*sg) + 1)
}

// denoised is the x₀ prediction of the Euler schedulers at noise level σ.
func denoised(pred Prediction, sigma, m, x float32) float32 {
	if pred == VPrediction {
		// model_output * (-σ / sqrt(σ²+1)) + sample / (σ²+1)
		c2 := float32(sigma*sigma) + 1
		c1 := -sigma / sqrt32(c2)
		return float32(m*c1) + x/c2
	}
	return x - float32(sigma*m)
}

// euler is EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 without
// churn): x ← x + (x - x̂₀)/σ · (σ_next - σ).
type euler struct {
	stepper
	eulerSchedule
	pred Prediction
}

func newEuler(tr *train, steps int, karras bool, pred Prediction) *euler {
	return &euler{stepper: stepper{name: "euler", steps: steps}, eulerSchedule: newEulerSchedule(tr, steps, karras), pred: pred}
}

func (s *euler) Step(step int, modelOut, x []float32) error {
	if err := s.begin(step, modelOut, x); err != nil {
		return err
	}
	defer s.end()
	sigma := s.sigmas[step] // σ̂ = σ·(γ+1) with γ = 0
	dt := s.sigmas[step+1] - sigma
	for i, m := range modelOut {
		xi := x[i]
		d := (xi - denoised(s.pred, sigma, m, xi)) / sigma
		x[i] = xi + float32(d*dt)
	}
	return nil
}

// eulerAncestral is EulerAncestralDiscreteScheduler: an Euler step down to
// σ_down, then fresh noise of size σ_up, with σ_up² + σ_down² = σ_next².
type eulerAncestral struct {
	stepper
	eulerSchedule
	pred  Prediction
	gen   *rng.Generator
	noise []float32
}

func newEulerAncestral(tr *train, steps int, pred Prediction, gen *rng.Generator) *eulerAncestral {
	return &eulerAncestral{
		stepper:       stepper{name: "euler_a", steps: steps},
		eulerSchedule: newEulerSchedule(tr, steps, false),
		pred:          pred,
		gen:           gen,
	}
}

func (s *eulerAncestral) Step(step int, modelOut, x []float32) error {
	if err := s.begin(step, modelOut, x); err != nil {
		return err
	}
	defer s.end()
	from, to := s.sigmas[step], s.sigmas[step+1]
	from2, to2 := from*from, to*to
	up := sqrt32(float32(to2*(from2-to2)) / from2)
	down := sqrt32(to2 - float32(up*up))
	dt := down - from
	if len(s.noise) != len(x) {
		s.noise = make([]float32, len(x))
	}
	// The reference draws the noise after the deterministic part, with the
	// shape of the model output; the draw is the same either way since
	// nothing else uses the generator in between.
	s.gen.RandnInto(s.noise)
	for i, m := range modelOut {
		xi := x[i]
		d := (xi - denoised(s.pred, from, m, xi)) / from
		v := xi + float32(d*dt)
		x[i] = v + float32(s.noise[i]*up)
	}
	return nil
}
