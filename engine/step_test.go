package engine

import (
	"math"
	"testing"
)

// passThrough is a DDIM step that returns the model output itself
// (x̂₀ = (0 − (−1)·m)/1 = m from zero latents, then 1·x̂₀ + 0·m), so
// Apply's guidance shows in the latents exactly.
var passThrough = StepParams{Rule: StepDDIM, SqrtA: 1, SqrtB: -1, SqrtAPrev: 1, Dir: 0}

func TestStepGuidance(t *testing.T) {
	u := []float32{1, -2, 0.5, 3}
	c := []float32{2, -2, -0.5, 3.25}
	p := passThrough
	p.Guidance = 7.5
	x := make([]float32, 4)
	next := make([]float32, 8)
	p.NextDiv = 2
	p.Apply(x, append(u, c...), nil, nil, next)
	// u + 7.5·(c − u), each step exact in float32 here.
	want := []float32{8.5, -2, -7, 4.875}
	for i := range want {
		if math.Float32bits(x[i]) != math.Float32bits(want[i]) {
			t.Errorf("latent %d = %v, want %v", i, x[i], want[i])
		}
		for r := range 2 {
			if got := next[r*4+i]; got != want[i]/2 {
				t.Errorf("next row %d, %d = %v, want %v", r, i, got, want[i]/2)
			}
		}
	}
	// Without guidance the one row is the model output.
	x = make([]float32, 4)
	passThrough.Apply(x, c, nil, nil, nil)
	for i := range c {
		if x[i] != c[i] {
			t.Errorf("unguided latent %d = %v, want %v", i, x[i], c[i])
		}
	}
}

// TestStepRounding checks that Apply rounds each product to float32
// before the difference that follows, as the reference does, rather than
// fusing them (Go may fuse x*y + z on some CPUs unless told not to): DDIM's
// v-prediction x̂₀ = SqrtA·x − SqrtB·m with SqrtA = x = 1 + 2⁻²³,
// SqrtB = 1, m = 1 − 2⁻²³.
func TestStepRounding(t *testing.T) {
	e := float32(math.Ldexp(1, -23))
	xv, m := 1+e, 1-e
	p := StepParams{Rule: StepDDIM, VPred: true, SqrtA: xv, SqrtB: 1, SqrtAPrev: 1, Dir: 0}
	x := []float32{xv}
	p.Apply(x, []float32{m}, nil, nil, nil)
	// x·x = 1 + 2⁻²² + 2⁻⁴⁶ rounds to 1 + 2⁻²²; minus m = 1 − 2⁻²³ gives
	// 3·2⁻²³ exactly. A fused multiply-add would keep the 2⁻⁴⁶.
	want := 3 * e
	if x[0] != want {
		t.Errorf("x̂₀ = %g, want %g (each product rounded)", x[0], want)
	}
}
