package sample

import "glimmer/engine"

// dpmpp2m is DPMSolverMultistepScheduler with algorithm_type "dpmsolver++",
// solver_order 2, solver_type "midpoint", lower_order_final and final σ 0
// (Lu et al. 2022, DPM-Solver++(2M)): the model output is turned into an x₀
// prediction, the first and the last step are first order, the others use
// the previous x₀ prediction too.
type dpmpp2m struct {
	stepper
	pred   Prediction
	ts     []int
	sigmas []float32 // len(ts)+1, ending in 0
}

func newDPMPP2M(tr *train, steps int, karras bool, pred Prediction) *dpmpp2m {
	s := &dpmpp2m{stepper: stepper{name: "dpmpp_2m", steps: steps}, pred: pred}
	T := tr.steps
	s.ts = make([]int, steps)
	s.sigmas = make([]float32, steps+1)
	if karras {
		// σ from σ_min = σ(0) to σ_max = σ(T-1) in Karras spacing; the
		// timestep of each is its fractional training timestep (log-σ
		// interpolation), rounded half to even.
		ls := logSigmas(tr.sigmas)
		ks := karrasSigmas(float64(tr.sigmas[0]), float64(tr.sigmas[T-1]), steps)
		for i, sg := range ks {
			s.ts[i] = int(roundHalfEven(sigmaToT(sg, ls)))
			s.sigmas[i] = float32(sg)
		}
	} else {
		// np.linspace(0, T-1, steps+1).round()[::-1][:-1]; σ read off the
		// table (interpolating at integer points is exact).
		lin := linspace(0, float64(T-1), steps+1)
		for i := range s.ts {
			t := int(roundHalfEven(lin[steps-i]))
			s.ts[i] = t
			s.sigmas[i] = tr.sigmas[t]
		}
	}
	s.rule = s.params
	return s
}

func (s *dpmpp2m) Timesteps() []float32 {
	out := make([]float32, len(s.ts))
	for i, t := range s.ts {
		out[i] = float32(t)
	}
	return out
}

func (s *dpmpp2m) InitNoiseSigma() float32       { return 1 }
func (s *dpmpp2m) InputDivisor(step int) float32 { return 1 }

// alphaSigma maps σ (in the variance-exploding parameterisation) to
// α_t = 1/sqrt(σ²+1) and σ_t = σ·α_t, and λ = log α_t - log σ_t.
func alphaSigma(sigma float32) (alpha, sigmaT, lambda float32) {
	alpha = 1 / sqrt32(float32(sigma*sigma)+1)
	sigmaT = sigma * alpha
	lambda = log32(alpha) - log32(sigmaT)
	return
}

// params: convert_model_output turns the model output into the x̂₀
// prediction at σ_s = σ[step]; the first and the last step are first order
// (DPM-Solver++ 1 = DDIM in x₀ form), the others second order with the
// midpoint D1 = (x̂₀ − x̂₀_prev)/r0, r0 = h_prev/h.
func (s *dpmpp2m) params(step int) engine.StepParams {
	p := engine.StepParams{Rule: engine.StepDPM1, VPred: s.pred == VPrediction}
	aS, sS, lamS := alphaSigma(s.sigmas[step])
	p.AlphaS, p.SigmaS = aS, sS
	aT, sT, lamT := alphaSigma(s.sigmas[step+1])
	h := lamT - lamS
	// With σ_next = 0: λ_t = +Inf, exp(-h) = 0, and x ← x̂₀.
	p.CX = sT / sS
	p.CD = aT * (exp32(-h) - 1)
	if step == 0 || step == s.steps-1 {
		return p
	}
	_, _, lamPrev := alphaSigma(s.sigmas[step-1])
	r0 := (lamS - lamPrev) / h
	p.Rule = engine.StepDPM2
	p.Inv = 1 / r0
	p.Half = 0.5 * p.CD
	return p
}
