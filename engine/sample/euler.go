package sample

import (
	"glimmer/engine"
	"glimmer/engine/rng"
)

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

// x0Params sets the Euler rule's x̂₀ at noise level σ: x − σ·m for ε,
// m·(−σ/√(σ²+1)) + x/(σ²+1) for v.
func x0Params(p *engine.StepParams, sigma float32) {
	p.Sigma = sigma
	if p.VPred {
		p.VDiv = float32(sigma*sigma) + 1
		p.VOut = -sigma / sqrt32(p.VDiv)
	}
}

// euler is EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 without
// churn): x ← x + (x - x̂₀)/σ · (σ_next - σ).
type euler struct {
	stepper
	eulerSchedule
	pred Prediction
}

func newEuler(tr *train, steps int, karras bool, pred Prediction) *euler {
	s := &euler{stepper: stepper{name: "euler", steps: steps}, eulerSchedule: newEulerSchedule(tr, steps, karras), pred: pred}
	s.rule = s.params
	return s
}

func (s *euler) params(step int) engine.StepParams {
	p := engine.StepParams{Rule: engine.StepEuler, VPred: s.pred == VPrediction}
	sigma := s.sigmas[step] // σ̂ = σ·(γ+1) with γ = 0
	x0Params(&p, sigma)
	p.Dt = s.sigmas[step+1] - sigma
	return p
}

// eulerAncestral is EulerAncestralDiscreteScheduler: an Euler step down to
// σ_down, then fresh noise of size σ_up, with σ_up² + σ_down² = σ_next².
type eulerAncestral struct {
	stepper
	eulerSchedule
	pred Prediction
}

func newEulerAncestral(tr *train, steps int, pred Prediction, gen *rng.Generator) *eulerAncestral {
	s := &eulerAncestral{
		stepper:       stepper{name: "euler_a", steps: steps, gen: gen},
		eulerSchedule: newEulerSchedule(tr, steps, false),
		pred:          pred,
	}
	s.rule = s.params
	return s
}

func (s *eulerAncestral) params(step int) engine.StepParams {
	p := engine.StepParams{Rule: engine.StepEuler, VPred: s.pred == VPrediction, Ancestral: true}
	from, to := s.sigmas[step], s.sigmas[step+1]
	from2, to2 := from*from, to*to
	p.Up = sqrt32(float32(to2*(from2-to2)) / from2)
	down := sqrt32(to2 - float32(p.Up*p.Up))
	x0Params(&p, from)
	p.Dt = down - from
	return p
}
