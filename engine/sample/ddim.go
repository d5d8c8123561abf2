package sample

import (
	"fmt"

	"glimmer/engine"
)

// ddim is DDIMScheduler (Song et al. 2021) with eta 0: deterministic steps
// between "leading" training timesteps, ᾱ of the step after the last taken
// as ᾱ_0 (set_alpha_to_one false), no clipping of the x₀ prediction.
type ddim struct {
	stepper
	tr    *train
	pred  Prediction
	ts    []int // training timesteps, descending
	ratio int   // distance between consecutive timesteps
}

func newDDIM(tr *train, steps int, pred Prediction) (*ddim, error) {
	// "leading": t_i = (steps-1-i)·(T // steps) + steps_offset.
	ratio := tr.steps / steps
	ts := make([]int, steps)
	for i := range ts {
		ts[i] = (steps-1-i)*ratio + tr.offset
	}
	if ts[0] >= tr.steps {
		// diffusers fails here too (index out of range): with T=1000 and
		// offset 1 only steps=1000 does this.
		return nil, fmt.Errorf("sample: ddim with %d steps would start at timestep %d, past the last training timestep %d", steps, ts[0], tr.steps-1)
	}
	s := &ddim{stepper: stepper{name: "ddim", steps: steps}, tr: tr, pred: pred, ts: ts, ratio: ratio}
	s.rule = s.params
	return s, nil
}

func (s *ddim) Timesteps() []float32 {
	out := make([]float32, len(s.ts))
	for i, t := range s.ts {
		out[i] = float32(t)
	}
	return out
}

func (s *ddim) InitNoiseSigma() float32       { return 1 }
func (s *ddim) InputDivisor(step int) float32 { return 1 }

func (s *ddim) params(step int) engine.StepParams {
	ac := s.tr.alphasCumprod
	t := s.ts[step]
	aT := ac[t]
	aPrev := ac[0] // final_alpha_cumprod
	if prev := t - s.ratio; prev >= 0 {
		aPrev = ac[prev]
	}
	return engine.StepParams{
		Rule:      engine.StepDDIM,
		VPred:     s.pred == VPrediction,
		SqrtA:     sqrt32(aT),
		SqrtB:     sqrt32(1 - aT),
		SqrtAPrev: sqrt32(aPrev),
		// Direction coefficient sqrt(1 - ᾱ_prev - σ_t²) with σ_t = eta·… = 0.
		Dir: sqrt32(1 - aPrev - 0),
	}
}
