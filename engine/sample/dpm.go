package sample

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
	prevX0 []float32 // x₀ prediction of the previous step
	x0     []float32
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

func (s *dpmpp2m) Step(step int, modelOut, x []float32) error {
	if err := s.begin(step, modelOut, x); err != nil {
		return err
	}
	defer s.end()
	n := len(x)
	if len(s.x0) != n {
		s.x0 = make([]float32, n)
		s.prevX0 = make([]float32, n)
	} else {
		s.x0, s.prevX0 = s.prevX0, s.x0
	}
	// convert_model_output: the x₀ prediction at σ_s = σ[step].
	aS, sS, lamS := alphaSigma(s.sigmas[step])
	for i, m := range modelOut {
		if s.pred == VPrediction {
			s.x0[i] = float32(aS*x[i]) - float32(sS*m)
		} else {
			s.x0[i] = (x[i] - float32(sS*m)) / aS
		}
	}
	aT, sT, lamT := alphaSigma(s.sigmas[step+1])
	h := lamT - lamS
	// With σ_next = 0: λ_t = +Inf, exp(-h) = 0, and x ← x₀.
	cx := sT / sS
	cd := aT * (exp32(-h) - 1)
	if step == 0 || step == s.steps-1 {
		// First order (DPM-Solver++ 1 = DDIM in x₀ form).
		for i, xi := range x {
			x[i] = float32(cx*xi) - float32(cd*s.x0[i])
		}
		return nil
	}
	// Second order, midpoint: D1 = (m0 - m1)/r0 with r0 = h_prev/h.
	_, _, lamPrev := alphaSigma(s.sigmas[step-1])
	r0 := (lamS - lamPrev) / h
	inv := 1 / r0
	half := 0.5 * cd
	for i, xi := range x {
		m0 := s.x0[i]
		d1 := float32(inv * (m0 - s.prevX0[i]))
		x[i] = float32(cx*xi) - float32(cd*m0) - float32(half*d1)
	}
	return nil
}
