package sample

import (
	"math"
	"strings"
	"testing"

	"glimmer/engine/rng"
)

func TestNewRejectsBadInput(t *testing.T) {
	g := rng.New(1)
	cases := []struct {
		name, sched string
		steps       int
		cfg         ScheduleConfig
		gen         *rng.Generator
		want        string
	}{
		{"heun", "", 10, ScheduleConfig{}, g, "unknown sampler"},
		{"", "", 10, ScheduleConfig{}, g, "unknown sampler"},
		{"euler", "exponential", 10, ScheduleConfig{}, g, "unknown schedule"},
		{"ddim", "karras", 10, ScheduleConfig{}, g, "ddim does not support the karras schedule"},
		{"euler_a", "karras", 10, ScheduleConfig{}, g, "euler_a does not support the karras schedule"},
		{"euler_a", "", 10, ScheduleConfig{}, nil, "needs a random generator"},
		{"euler", "", 0, ScheduleConfig{}, g, "out of range"},
		{"euler", "", -5, ScheduleConfig{}, g, "out of range"},
		{"dpmpp_2m", "", 1001, ScheduleConfig{}, g, "out of range"},
		{"ddim", "", 1000, ScheduleConfig{}, g, "past the last training timestep"},
		{"euler", "", 10, ScheduleConfig{Prediction: "sample"}, g, "unknown prediction type"},
		{"euler", "", 10, ScheduleConfig{Train: TrainConfig{Steps: 1000, BetaStart: 0.02, BetaEnd: 0.01}}, g, "out of range"},
		{"euler", "", 10, ScheduleConfig{Train: TrainConfig{Steps: 1, BetaStart: 0.001, BetaEnd: 0.01}}, g, "out of range"},
		{"euler", "", 10, ScheduleConfig{Train: TrainConfig{Steps: 1000, BetaStart: math.NaN(), BetaEnd: 0.01}}, g, "out of range"},
	}
	for _, c := range cases {
		s, err := New(c.name, c.sched, c.steps, c.cfg, c.gen)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q, %d, %+v): %v, %v; want an error containing %q", c.name, c.sched, c.steps, c.cfg, s, err, c.want)
		}
	}
	// Every listed name and schedule is accepted (where the pair exists).
	for _, n := range Names() {
		for _, sc := range append(Schedules(), "") {
			_, err := New(n, sc, 10, ScheduleConfig{}, g)
			if err != nil && !strings.Contains(err.Error(), "karras") {
				t.Errorf("New(%q, %q): %v", n, sc, err)
			}
		}
	}
}

func TestStepRejectsMisuse(t *testing.T) {
	for _, name := range Names() {
		s, err := New(name, "", 3, ScheduleConfig{}, rng.New(2))
		if err != nil {
			t.Fatal(err)
		}
		x, m := make([]float32, 8), make([]float32, 8)
		if err := s.Step(1, m, x); err == nil {
			t.Errorf("%s: step 1 before step 0 accepted", name)
		}
		if err := s.Step(0, m[:7], x); err == nil {
			t.Errorf("%s: mismatched lengths accepted", name)
		}
		if err := s.Step(0, nil, nil); err == nil {
			t.Errorf("%s: empty latents accepted", name)
		}
		for i := 0; i < 3; i++ {
			if err := s.Step(i, m, x); err != nil {
				t.Fatalf("%s: step %d: %v", name, i, err)
			}
			if i == 0 {
				if err := s.Step(1, make([]float32, 9), make([]float32, 9)); err == nil {
					t.Errorf("%s: latents changing size accepted", name)
				}
			}
		}
		if err := s.Step(3, m, x); err == nil {
			t.Errorf("%s: a step past the last accepted", name)
		}
		if s.Name() != name {
			t.Errorf("Name() = %q, want %q", s.Name(), name)
		}
	}
}

// Spot values of the schedules that are easy to derive by hand.
func TestScheduleSpotValues(t *testing.T) {
	// DDIM "leading", 8 steps: (7-i)·(1000//8) + steps_offset.
	s, _ := New("ddim", "", 8, ScheduleConfig{}, nil)
	want := []float32{876, 751, 626, 501, 376, 251, 126, 1}
	if got := s.Timesteps(); !equal32(got, want) {
		t.Errorf("ddim 8 timesteps %v, want %v", got, want)
	}
	if s.InitNoiseSigma() != 1 || s.InputDivisor(3) != 1 {
		t.Error("ddim must neither scale the noise nor the input")
	}
	// Euler "linspace", 8 steps: 999·(7-i)/7, starting at σ(999) ≈ 14.6146
	// (sqrt((1-ᾱ)/ᾱ) with ᾱ_999 ≈ 0.0046; tolerance 1e-4 for the 4
	// decimals quoted).
	e, _ := New("euler", "", 8, ScheduleConfig{}, nil)
	ts := e.Timesteps()
	for i, v := range ts {
		if want := float32(999 * float64(7-i) / 7); v != want {
			t.Errorf("euler 8 timestep %d = %v, want %v", i, v, want)
		}
	}
	if sg := e.InitNoiseSigma(); math.Abs(float64(sg)-14.6146) > 1e-4 {
		t.Errorf("euler init sigma %v, want 14.6146", sg)
	}
	if c := e.InputDivisor(0); math.Abs(float64(c)-math.Sqrt(14.6146*14.6146+1)) > 1e-3 {
		t.Errorf("euler input divisor %v", c)
	}
	if c := e.InputDivisor(7); c < 1 || c > 1.01 {
		t.Errorf("euler last input divisor %v, want just above 1", c)
	}
	// DPM-Solver++ "linspace", 10 steps: round(999·(10-i)/10), i.e. the
	// rounding of 999, 899.1, 799.2, 699.3, 599.4, 499.5, ...
	d, _ := New("dpmpp_2m", "", 10, ScheduleConfig{}, nil)
	wantD := []float32{999, 899, 799, 699, 599, 500, 400, 300, 200, 100}
	if got := d.Timesteps(); !equal32(got, wantD) {
		t.Errorf("dpmpp_2m 10 timesteps %v, want %v", got, wantD)
	}
	// Karras: the σ run from σ_max to σ_min, so the timesteps from 999
	// down to 0, and the schedule ends at σ = 0.
	k, _ := New("dpmpp_2m", "karras", 12, ScheduleConfig{}, nil)
	kt := k.Timesteps()
	if kt[0] != 999 || kt[len(kt)-1] != 0 {
		t.Errorf("dpmpp_2m karras timesteps %v, want 999 .. 0", kt)
	}
	ks := k.(*dpmpp2m).sigmas
	if ks[len(ks)-1] != 0 || math.Abs(float64(ks[0])-14.6146) > 1e-4 || math.Abs(float64(ks[len(ks)-2])-0.0292) > 1e-4 {
		t.Errorf("dpmpp_2m karras sigmas %v", ks)
	}
}

func equal32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The training tables against a float64 evaluation of their definition:
// β = linspace(√β₀, √β₁, 1000)², ᾱ_t = Π(1-β). The float32 tables round β
// and each 1-β (6e-8 relative each); through the product of up to 1000
// factors that measured 9.3e-7 relative on ᾱ; 3e-6 allows for it. σ is
// checked against sqrt((1-ᾱ)/ᾱ) of the table's own ᾱ (1-ᾱ cancels
// catastrophically near t = 0, so comparing with the float64 σ would
// measure ᾱ's error 1000-fold): within 2 ulp (a rounded quotient and a
// rounded square root).
func TestTrainTablesMatchFloat64Definition(t *testing.T) {
	tr, err := newTrain(SDTrain())
	if err != nil {
		t.Fatal(err)
	}
	b0, b1 := math.Sqrt(0.00085), math.Sqrt(0.012)
	ac := 1.0
	worst := 0.0
	for i := 0; i < 1000; i++ {
		r := b0 + float64(i)*(b1-b0)/999
		ac *= 1 - r*r
		worst = math.Max(worst, math.Abs(float64(tr.alphasCumprod[i])/ac-1))
		a := float64(tr.alphasCumprod[i])
		if d := ulpDiff(tr.sigmas[i], float32(math.Sqrt((1-a)/a))); d > 2 {
			t.Errorf("σ[%d] = %v, %d ulp from sqrt((1-ᾱ)/ᾱ)", i, tr.sigmas[i], d)
		}
	}
	if worst > 3e-6 {
		t.Errorf("ᾱ off its definition by %.3g relative", worst)
	}
}

// Karras σ against the formula in float64 (ρ = 7), endpoints σ(999) and
// σ(0); the float32 σ are correctly rounded values of nearly exact float64
// results, so 1e-6 relative.
func TestKarrasSigmasMatchFormula(t *testing.T) {
	tr, _ := newTrain(SDTrain())
	for _, n := range []int{2, 7, 12, 30} {
		s, _ := New("dpmpp_2m", "karras", n, ScheduleConfig{}, nil)
		sig := s.(*dpmpp2m).sigmas
		lo, hi := math.Pow(float64(tr.sigmas[0]), 1/7.0), math.Pow(float64(tr.sigmas[999]), 1/7.0)
		for i := 0; i < n; i++ {
			want := math.Pow(hi+float64(i)/float64(n-1)*(lo-hi), 7)
			if math.Abs(float64(sig[i])/want-1) > 1e-6 {
				t.Errorf("n=%d σ[%d] = %v, want %v", n, i, sig[i], want)
			}
		}
	}
}

func TestPow7(t *testing.T) {
	for _, x := range []float64{0, 1, 0.6036, 1.4672, 1.2, 0.9999999999} {
		want := x * x * x * x * x * x * x
		if got := pow7(x); math.Abs(got-want) > 4e-16*math.Max(want, 1e-300) {
			t.Errorf("pow7(%v) = %v, want %v", x, got, want)
		}
	}
}

func TestUseGuidance(t *testing.T) {
	if UseGuidance(1) || !UseGuidance(1.5) || UseGuidance(0.5) {
		t.Error("UseGuidance: the reference guides only when scale > 1")
	}
}

func TestInitLatentsAndScaleInput(t *testing.T) {
	for _, name := range Names() {
		s, _ := New(name, "", 10, ScheduleConfig{}, rng.New(0))
		x := InitLatents(s, rng.New(42), 64)
		n := rng.New(42).Randn(64)
		for i := range x {
			if x[i] != n[i]*s.InitNoiseSigma() {
				t.Fatalf("%s: latent %d = %v, want %v·%v", name, i, x[i], n[i], s.InitNoiseSigma())
			}
		}
		in := make([]float32, 64)
		ScaleInput(s, in, x, 0)
		c := s.InputDivisor(0)
		for i := range in {
			if in[i] != x[i]/c {
				t.Fatalf("%s: input %d = %v, want %v/%v", name, i, in[i], x[i], c)
			}
		}
		// Unit-variance model input at the first step (c = sqrt(σ²+1)).
		if name == "euler" || name == "euler_a" {
			sg := s.InitNoiseSigma()
			if math.Abs(float64(c)-math.Sqrt(float64(sg)*float64(sg)+1)) > 1e-5 {
				t.Errorf("%s: divisor %v for σ %v", name, c, sg)
			}
		}
	}
}

// TestLinearBetas: diffusers' "linear" schedule is torch.linspace(start,
// end, n) in float32, the same kernel as scaled_linear's before its
// squares (whose golden table pins it bit for bit): its ends exact, every
// value within one float32 rounding of the float64 line, and ᾱ apart from
// scaled_linear's for the same ends.
func TestLinearBetas(t *testing.T) {
	const start, end, n = 0.0001, 0.02, 1000
	b := linearBetas(start, end, n)
	if b[0] != float32(start) || b[n-1] != float32(end) {
		t.Errorf("ends %v, %v; want %v, %v", b[0], b[n-1], float32(start), float32(end))
	}
	for i, v := range b {
		want := start + (end-start)*float64(i)/(n-1)
		// The step and the FMA each round once in float32: 2^-23 of the
		// larger of the value and the end, twice.
		if d := math.Abs(float64(v) - want); d > 2*end*0x1p-23 {
			t.Fatalf("beta %d = %v, want %v (off by %.3g)", i, v, want, d)
		}
	}
	lin, err := AlphasCumprod(TrainConfig{Steps: n, BetaStart: start, BetaEnd: end, StepsOffset: 1, Linear: true})
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := AlphasCumprod(TrainConfig{Steps: n, BetaStart: start, BetaEnd: end, StepsOffset: 1})
	if err != nil {
		t.Fatal(err)
	}
	// ᾱ at t = 999 in float64: Π(1 − β_t) over the two lines.
	wantLin, wantScaled := 1.0, 1.0
	for i := range n {
		x := float64(i) / (n - 1)
		wantLin *= 1 - (start + (end-start)*x)
		r := math.Sqrt(start) + (math.Sqrt(end)-math.Sqrt(start))*x
		wantScaled *= 1 - r*r
	}
	// A float32 ᾱ near 4e-5 after 1000 float32 betas and float64
	// products: relative error within 1e-4.
	if math.Abs(float64(lin[n-1])/wantLin-1) > 1e-4 || math.Abs(float64(scaled[n-1])/wantScaled-1) > 1e-4 {
		t.Errorf("ᾱ_999: linear %v (want %v), scaled_linear %v (want %v)", lin[n-1], wantLin, scaled[n-1], wantScaled)
	}
}
