// Package sample holds the noise schedules and samplers that drive the
// denoising loop, as pure Go on host float32 slices. Each sampler
// reproduces the corresponding Hugging Face diffusers scheduler (as used by
// StableDiffusionPipeline) to the bit, given the same model outputs:
//
//	ddim      DDIMScheduler: "leading" spacing, set_alpha_to_one false,
//	          clip_sample false, eta 0
//	euler     EulerDiscreteScheduler: "linspace" spacing, linear
//	          interpolation of σ
//	euler_a   EulerAncestralDiscreteScheduler: "linspace" spacing, fresh
//	          noise every step from the run's generator
//	dpmpp_2m  DPMSolverMultistepScheduler: dpmsolver++, solver order 2,
//	          midpoint, lower_order_final, final σ zero, "linspace" spacing
//
// with the Stable Diffusion training schedule (1000 steps, "scaled_linear"
// betas 0.00085..0.012, steps_offset 1) unless configured otherwise. The
// "karras" schedule (Karras et al. 2022 σ spacing, ρ = 7) is available for
// euler and dpmpp_2m, the two that diffusers gives use_karras_sigmas; ddim
// works on discrete timesteps and euler_a has no such option in diffusers,
// so both reject it.
//
// A pipeline drives a Sampler without knowing the algorithm:
//
//	s, err := sample.New("euler_a", "default", steps, cfg, gen)
//	x := sample.InitLatents(s, gen, n)        // [B, 4, H/8, W/8] flattened
//	for i, t := range s.Timesteps() {
//		sample.ScaleInput(s, in, x, i)        // U-Net input for step i
//		eps := unet(in, t, text)              // (after guidance)
//		if err := s.Step(i, eps, x); err != nil { ... }
//	}
//
// or, keeping the latents on a device, asks Plan for each step's rule and
// runs it with engine.Ops.SampleStep (the pipeline does: guidance and the
// next step's input come in the same dispatch). Step is Plan followed by
// engine.StepParams.Apply, so both ways give the same bits.
//
// # Precision
//
// Rounding follows the reference: schedule tables are computed as diffusers
// computes them (float32 torch tensors for the training tables, with torch's
// CPU linspace and its double-accumulated cumprod; float64 NumPy for the
// per-run tables, including NumPy's own float32 log in the Karras timestep
// mapping; then float32), and every update is a sequence of float32
// operations in the reference's order. Products are written float32(a*b) so
// that Go never fuses them into an FMA (which it may do on arm64), since
// PyTorch's element-wise CPU kernels round each operation.
//
// Against diffusers on PyTorch 2.11 (testdata/mkgolden.py) the timestep and
// σ tables and the synthetic denoising chains of every sampler match to the
// bit, with one exception that cannot be removed: the reference computes
// the scalar square roots, logarithms and exponentials of a step with MKL's
// vector math library, whose float32 results are 1 ulp off the correctly
// rounded ones for roughly 0.1–1% of inputs (and depend on the CPU). This
// package uses correctly rounded values, so where MKL deviates a step
// coefficient differs by 1 ulp and the latents by about 1e-7 relative
// (of the fixtures' schedules, ddim with 8 steps is affected at its step 3;
// six entries of the 1000-entry σ table are affected too).
package sample

import (
	"fmt"
	"strings"

	"glimmer/engine"
	"glimmer/engine/rng"
)

// Prediction is what the denoising model outputs.
type Prediction string

const (
	// Epsilon: the model predicts the added noise ε (SD 1.x, SD 2.x base).
	Epsilon Prediction = "epsilon"
	// VPrediction: the model predicts v = √ᾱ·ε - √(1-ᾱ)·x₀ (SD 2.x 768).
	VPrediction Prediction = "v_prediction"
)

// TrainConfig is the noise schedule the model was trained with: betas
// from BetaStart to BetaEnd over Steps timesteps, spaced evenly in √β
// (diffusers' "scaled_linear", SD's) or, with Linear, in β ("linear"),
// and the StepsOffset that "leading" timestep spacing adds.
type TrainConfig struct {
	Steps       int
	BetaStart   float64
	BetaEnd     float64
	StepsOffset int
	Linear      bool
}

// SDTrain is the training schedule of Stable Diffusion 1.x and 2.x.
func SDTrain() TrainConfig {
	return TrainConfig{Steps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, StepsOffset: 1}
}

// ScheduleConfig configures a sampler for a model.
type ScheduleConfig struct {
	Prediction Prediction  // "" means Epsilon
	Train      TrainConfig // the zero value means SDTrain()
}

// Sampler steps latents down a noise schedule. It holds the state of one
// run (multistep history, the step counter): make a new one per image.
type Sampler interface {
	// Name is the sampler's name as given to New, e.g. "dpmpp_2m".
	Name() string
	// Timesteps are the values to feed the U-Net's time embedding, one per
	// step (float32, as the reference passes them; integer-valued for ddim
	// and dpmpp_2m).
	Timesteps() []float32
	// InitNoiseSigma scales the initial standard normal latents.
	InitNoiseSigma() float32
	// InputDivisor is c such that the U-Net input at step i is x / c
	// (element-wise float32 division); 1 for samplers that do not scale.
	InputDivisor(step int) float32
	// Step advances x, the latents before step i, in place to the latents
	// after it, given the model output for step i (after guidance). Steps
	// must be taken in order 0, 1, ..., len(Timesteps())-1; modelOut and x
	// must have the same length in every step.
	Step(step int, modelOut, x []float32) error
	// Plan is Step as data, for a device to run (engine.Ops.SampleStep):
	// step i's element-wise rule and coefficients. noise holds as many
	// values as the latents; a step that adds fresh noise (euler_a) draws
	// it there from the run's generator. Plan and Step share the step
	// counter: a run takes each step once, by one or the other.
	Plan(step int, noise []float32) (engine.StepParams, error)
}

// Names lists the sampler names New accepts.
func Names() []string { return []string{"ddim", "euler", "euler_a", "dpmpp_2m"} }

// Schedules lists the schedule names New accepts.
func Schedules() []string { return []string{"default", "karras"} }

// MaxSteps is the largest number of inference steps New accepts with the
// Stable Diffusion training schedule: as in diffusers, at most one per
// training timestep (ddim stops at 999, see New).
const MaxSteps = 1000

// New returns the named sampler for steps inference steps. name is one of
// Names(); schedule is "default" (or "") or "karras". gen is the run's
// generator; only euler_a draws from it (per-step noise, in order) and may
// be given nil otherwise.
func New(name, schedule string, steps int, cfg ScheduleConfig, gen *rng.Generator) (Sampler, error) {
	pred := cfg.Prediction
	switch pred {
	case "":
		pred = Epsilon
	case Epsilon, VPrediction:
	default:
		return nil, fmt.Errorf("sample: unknown prediction type %q (want %q or %q)", cfg.Prediction, Epsilon, VPrediction)
	}
	tc := cfg.Train
	if tc == (TrainConfig{}) {
		tc = SDTrain()
	}
	var karras bool
	switch schedule {
	case "", "default":
	case "karras":
		karras = true
	default:
		return nil, fmt.Errorf("sample: unknown schedule %q (want one of %s)", schedule, strings.Join(Schedules(), ", "))
	}
	if steps < 1 || steps > tc.Steps {
		return nil, fmt.Errorf("sample: %d steps is out of range (1..%d)", steps, tc.Steps)
	}
	tr, err := newTrain(tc)
	if err != nil {
		return nil, err
	}
	switch name {
	case "ddim":
		if karras {
			return nil, fmt.Errorf("sample: ddim does not support the karras schedule: it steps between discrete training timesteps (use euler or dpmpp_2m with karras)")
		}
		return newDDIM(tr, steps, pred)
	case "euler":
		return newEuler(tr, steps, karras, pred), nil
	case "euler_a":
		if karras {
			return nil, fmt.Errorf("sample: euler_a does not support the karras schedule (diffusers' EulerAncestralDiscreteScheduler has none; use euler or dpmpp_2m with karras)")
		}
		if gen == nil {
			return nil, fmt.Errorf("sample: euler_a needs a random generator for its per-step noise")
		}
		return newEulerAncestral(tr, steps, pred, gen), nil
	case "dpmpp_2m":
		return newDPMPP2M(tr, steps, karras, pred), nil
	}
	return nil, fmt.Errorf("sample: unknown sampler %q (want one of %s)", name, strings.Join(Names(), ", "))
}

// InitLatents draws the initial latents of a run: n standard normals from
// gen (torch.randn with the shape of the latents, in row-major order) times
// s.InitNoiseSigma(), as StableDiffusionPipeline.prepare_latents does.
func InitLatents(s Sampler, gen *rng.Generator, n int) []float32 {
	x := gen.Randn(n)
	c := s.InitNoiseSigma()
	if c != 1 {
		for i := range x {
			x[i] *= c
		}
	}
	return x
}

// ScaleInput writes the U-Net input for step i, x / s.InputDivisor(i), to
// dst (scheduler.scale_model_input). dst may be x itself.
func ScaleInput(s Sampler, dst, x []float32, step int) {
	if len(dst) != len(x) {
		panic(fmt.Sprintf("sample: ScaleInput: dst has %d elements, x %d", len(dst), len(x)))
	}
	c := s.InputDivisor(step)
	if c == 1 {
		copy(dst, x)
		return
	}
	for i, v := range x {
		dst[i] = v / c
	}
}

// UseGuidance reports whether classifier-free guidance applies at this
// scale. The reference runs the unconditional pass only when scale > 1; at
// scale 1 the conditional prediction is used as it is. The mix itself is
// engine.StepParams.Guidance.
func UseGuidance(scale float32) bool { return scale > 1 }

// stepper is what the samplers share: the step counter and the argument
// checks, Plan from a sampler's rule, and Step running Plan on the host.
type stepper struct {
	name  string
	steps int
	next  int
	size  int                              // latent length, fixed by the first step
	rule  func(step int) engine.StepParams // the sampler's step i
	gen   *rng.Generator                   // draws each step's fresh noise (euler_a), else nil
	hist  []float32                        // Step's previous x̂₀ (dpmpp_2m)
	noise []float32                        // Step's fresh noise
}

func (p *stepper) Name() string { return p.name }

// begin checks that step is the next one of a run with n latents.
func (p *stepper) begin(step, n int) error {
	if step < 0 || step >= p.steps {
		return fmt.Errorf("sample: %s: step %d out of range (%d steps)", p.name, step, p.steps)
	}
	if step != p.next {
		return fmt.Errorf("sample: %s: step %d out of order (next is %d)", p.name, step, p.next)
	}
	if n == 0 {
		return fmt.Errorf("sample: %s: no latents", p.name)
	}
	if p.size == 0 {
		p.size = n
	} else if n != p.size {
		return fmt.Errorf("sample: %s: latents changed size from %d to %d", p.name, p.size, n)
	}
	return nil
}

func (p *stepper) Plan(step int, noise []float32) (engine.StepParams, error) {
	if err := p.begin(step, len(noise)); err != nil {
		return engine.StepParams{}, err
	}
	r := p.rule(step)
	if p.gen != nil {
		// The reference draws the noise after the deterministic part, with
		// the shape of the model output, at every step (the last one's
		// scale is 0); the draw is the same either way since nothing else
		// uses the generator in between.
		p.gen.RandnInto(noise)
	}
	p.next++
	return r, nil
}

func (p *stepper) Step(step int, modelOut, x []float32) error {
	if len(modelOut) != len(x) {
		return fmt.Errorf("sample: %s: model output has %d elements, latents %d", p.name, len(modelOut), len(x))
	}
	noise, hist := p.noise, p.hist
	if len(noise) != len(x) { // the first step (Plan rejects any other size)
		noise, hist = make([]float32, len(x)), make([]float32, len(x))
	}
	r, err := p.Plan(step, noise)
	if err != nil {
		return err
	}
	p.noise, p.hist = noise, hist
	r.Apply(x, modelOut, hist, noise, nil)
	return nil
}
