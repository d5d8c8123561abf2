package engine

import "fmt"

// A sampler step is element-wise: each latent moves by a rule whose
// coefficients depend only on the step. sample.Sampler.Plan gives a step
// as StepParams; StepParams.Apply runs it on the host (the samplers' own
// Step does), and Ops.SampleStep runs the same arithmetic on a device, so
// the denoising loop keeps the latents there from the first step to the
// last.

// StepRule is the element-wise rule of one sampler step.
type StepRule uint8

const (
	// StepEuler: d = (x − x̂₀)/σ; x ← x + d·Dt, plus noise·Up when
	// Ancestral.
	StepEuler StepRule = iota
	// StepDDIM: x ← SqrtAPrev·x̂₀ + Dir·ε̂.
	StepDDIM
	// StepDPM1, first-order DPM-Solver++: x ← CX·x − CD·x̂₀; hist ← x̂₀.
	StepDPM1
	// StepDPM2, second-order midpoint DPM-Solver++: D1 = Inv·(x̂₀ − hist);
	// x ← CX·x − CD·x̂₀ − Half·D1; hist ← x̂₀.
	StepDPM2
)

func (r StepRule) String() string {
	if r > StepDPM2 {
		return fmt.Sprintf("StepRule(%d)", uint8(r))
	}
	return [...]string{"euler", "ddim", "dpm1", "dpm2"}[r]
}

// StepParams is one sampler step. Every product, sum and quotient is
// rounded to float32 in the order Apply writes it, which is the order
// diffusers' schedulers compute in; a device must not fuse them.
type StepParams struct {
	Rule  StepRule
	VPred bool // the model predicts v (else ε)
	// Guidance, when > 0, means the model output holds two rows, the
	// unconditional then the conditional prediction, mixed as
	// m = u + Guidance·(c − u); when 0 it holds the one prediction m.
	Guidance float32

	// Euler: σ of this step, the step Dt (σ_next − σ, or σ_down − σ when
	// Ancestral), the fresh noise's scale Up (Ancestral) and, for v-prediction,
	// x̂₀ = m·VOut + x/VDiv with VOut = −σ/√(σ²+1), VDiv = σ²+1 (else
	// x̂₀ = x − σ·m).
	Sigma, Dt, Up, VOut, VDiv float32
	Ancestral                 bool
	// DDIM: √ᾱ_t, √(1−ᾱ_t), √ᾱ_prev and the direction's √(1−ᾱ_prev).
	// ε: x̂₀ = (x − SqrtB·m)/SqrtA, ε̂ = m; v: x̂₀ = SqrtA·x − SqrtB·m,
	// ε̂ = SqrtA·m + SqrtB·x.
	SqrtA, SqrtB, SqrtAPrev, Dir float32
	// DPM-Solver++: α_s and σ_s of this step (ε: x̂₀ = (x − SigmaS·m)/AlphaS;
	// v: x̂₀ = AlphaS·x − SigmaS·m) and the update's CX, CD, Inv, Half.
	AlphaS, SigmaS, CX, CD, Inv, Half float32

	// NextDiv divides the new latents into every row of the next step's
	// U-Net input (scale_model_input), when the caller asks for it.
	NextDiv float32
}

// outputRows is how many rows the model output holds: 2 with guidance.
func (p StepParams) outputRows() int {
	if p.Guidance > 0 {
		return 2
	}
	return 1
}

// NeedsHist reports whether the step reads and writes the previous x̂₀.
func (p StepParams) NeedsHist() bool { return p.Rule == StepDPM1 || p.Rule == StepDPM2 }

// NeedsNoise reports whether the step adds fresh noise.
func (p StepParams) NeedsNoise() bool { return p.Rule == StepEuler && p.Ancestral }

// Apply runs the step on host slices: x (n latents) in place, given the
// model output eps (n values, or 2n with Guidance), hist (n, for the DPM
// rules, else ignored), noise (n, when NeedsNoise, else ignored), and
// writes x/NextDiv into every n-value row of next when next is not nil.
func (p StepParams) Apply(x, eps, hist, noise, next []float32) {
	n, rows := len(x), p.outputRows()
	switch {
	case n == 0:
		fail("SampleStep", "no latents")
	case len(eps) != rows*n:
		fail("SampleStep", "model output has %d values for %d latents and %d rows", len(eps), n, rows)
	case p.NeedsHist() && len(hist) != n:
		fail("SampleStep", "hist has %d values for %d latents", len(hist), n)
	case p.NeedsNoise() && len(noise) != n:
		fail("SampleStep", "noise has %d values for %d latents", len(noise), n)
	case len(next)%n != 0:
		fail("SampleStep", "next has %d values, not a multiple of %d latents", len(next), n)
	}
	for i, xi := range x {
		m := eps[i]
		if rows == 2 {
			u := m
			m = u + float32(p.Guidance*(eps[n+i]-u))
		}
		x[i] = p.update(i, xi, m, hist, noise)
	}
	for j := 0; j < len(next); j += n {
		for i, v := range x {
			next[j+i] = v / p.NextDiv
		}
	}
}

// update is the rule for latent i with value xi and model output m.
func (p StepParams) update(i int, xi, m float32, hist, noise []float32) float32 {
	switch p.Rule {
	case StepEuler:
		var x0 float32
		if p.VPred {
			x0 = float32(m*p.VOut) + xi/p.VDiv
		} else {
			x0 = xi - float32(p.Sigma*m)
		}
		d := (xi - x0) / p.Sigma
		v := xi + float32(d*p.Dt)
		if p.Ancestral {
			v += float32(noise[i] * p.Up)
		}
		return v
	case StepDDIM:
		var x0, e float32
		if p.VPred {
			x0 = float32(p.SqrtA*xi) - float32(p.SqrtB*m)
			e = float32(p.SqrtA*m) + float32(p.SqrtB*xi)
		} else {
			x0 = (xi - float32(p.SqrtB*m)) / p.SqrtA
			e = m
		}
		return float32(p.SqrtAPrev*x0) + float32(p.Dir*e)
	case StepDPM1, StepDPM2:
		var x0 float32
		if p.VPred {
			x0 = float32(p.AlphaS*xi) - float32(p.SigmaS*m)
		} else {
			x0 = (xi - float32(p.SigmaS*m)) / p.AlphaS
		}
		prev := hist[i]
		hist[i] = x0
		if p.Rule == StepDPM1 {
			return float32(p.CX*xi) - float32(p.CD*x0)
		}
		d1 := float32(p.Inv * (x0 - prev))
		return float32(p.CX*xi) - float32(p.CD*x0) - float32(p.Half*d1)
	}
	fail("SampleStep", "unknown rule %v", p.Rule)
	return 0
}

// CheckSampleStep validates Ops.SampleStep's operands and returns the
// number of latents and of next's rows (0 when next is nil).
func CheckSampleStep(x, eps, hist, noise, next *Tensor, p StepParams) (n, rows int) {
	const op = "SampleStep"
	wantF32(op, x, eps, hist, noise, next)
	s := x.Shape()
	if len(s) < 2 || s[0] != 1 {
		fail(op, "latents %v must be one image [1, ...]", s)
	}
	n = x.Numel()
	CheckShape(op, "model output", eps, append(Shape{p.outputRows()}, s[1:]...))
	if p.NeedsHist() {
		if hist == nil {
			fail(op, "rule %v needs hist", p.Rule)
		}
		CheckShape(op, "hist", hist, s)
	}
	if p.NeedsNoise() {
		if noise == nil {
			fail(op, "an ancestral step needs noise")
		}
		CheckShape(op, "noise", noise, s)
	}
	if p.Rule > StepDPM2 {
		fail(op, "unknown rule %v", p.Rule)
	}
	if next != nil {
		rows = next.Dim(0)
		CheckShape(op, "next", next, append(Shape{rows}, s[1:]...))
		if p.NextDiv == 0 {
			fail(op, "next needs a NextDiv")
		}
	}
	return n, rows
}
