package conformance

import (
	"math"
	"testing"
)

// The references are the suite's oracle, so they are checked here against
// values worked out by hand or taken from the definitions' known constants.

func near(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12*max(1, math.Abs(want[i])) {
			t.Errorf("%s[%d] = %.15g, want %.15g", what, i, got[i], want[i])
		}
	}
}

func TestRefActivations(t *testing.T) {
	near(t, "gelu", []float64{refGELU(1), refGELU(-1), refGELU(0)},
		[]float64{0.8413447460685429, -0.15865525393145707, 0}) // x·Φ(x), Φ(1) = 0.841344746…
	near(t, "silu", []float64{refSiLU(1), refSiLU(-2)},
		[]float64{1 / (1 + math.Exp(-1)), -2 / (1 + math.Exp(2))})
	near(t, "quick_gelu", []float64{refQuickGELU(1)}, []float64{1 / (1 + math.Exp(-1.702))})
	near(t, "relu", []float64{refReLU(-2), refReLU(0), refReLU(1.5)}, []float64{0, 0, 1.5})
	// GEGLU: value 2 times gelu(gate 1); value -3 times gelu(gate -1).
	near(t, "geglu", refGEGLU([]float64{2, -3, 1, -1}, 2), []float64{2 * 0.8413447460685429, -3 * -0.15865525393145707})
}

func TestRefMatMul(t *testing.T) {
	a := []float64{1, 2, 3, 4}   // [[1 2] [3 4]]
	b := []float64{5, 6, 7, 8}   // [[5 6] [7 8]]
	bias := []float64{0.5, -0.5} // added per column
	near(t, "NN", refMatMul(a, b, bias, 1, 2, 2, 2, false, false, true, 1), []float64{19.5, 21.5, 43.5, 49.5})
	near(t, "TN", refMatMul(a, b, nil, 1, 2, 2, 2, true, false, true, 1), []float64{26, 30, 38, 44})
	near(t, "NT", refMatMul(a, b, nil, 1, 2, 2, 2, false, true, true, 2), []float64{34, 46, 78, 106})
	// Two batches sharing b: the second a is the identity.
	a2 := append(append([]float64(nil), a...), 1, 0, 0, 1)
	near(t, "shared", refMatMul(a2, b, nil, 2, 2, 2, 2, false, false, true, 1), []float64{19, 22, 43, 50, 5, 6, 7, 8})
}

func TestRefConv2D(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9} // [1, 1, 3, 3]
	ones := []float64{1, 1, 1, 1, 1, 1, 1, 1, 1}
	// 3x3 box sum with zero padding 1.
	s := convShape{n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}
	near(t, "box", refConv2D(x, ones, []float64{10}, s), []float64{
		10 + 12, 10 + 21, 10 + 16,
		10 + 27, 10 + 45, 10 + 33,
		10 + 24, 10 + 39, 10 + 28,
	})
	// Stride 2, padding 1: the corners' windows.
	s.sh, s.sw = 2, 2
	near(t, "stride2", refConv2D(x, ones, nil, s), []float64{12, 16, 24, 28})
	// Cross-correlation, not convolution: the kernel is not flipped.
	s = convShape{n: 1, c: 1, h: 1, w: 3, oc: 1, kh: 1, kw: 2, sh: 1, sw: 1}
	near(t, "unflipped", refConv2D([]float64{1, 2, 3}, []float64{1, 10}, nil, s), []float64{21, 32})
}

func TestRefNorms(t *testing.T) {
	// [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
	z := 1.5 / math.Sqrt(1.25)
	near(t, "groupnorm", refGroupNorm([]float64{1, 2, 3, 4}, []float64{1, 2}, []float64{0, 1}, 1, 2, 2, 1, 0, false),
		[]float64{-z, -z / 3, 2*z/3 + 1, 2*z + 1})
	// Two groups of one channel each normalise separately.
	near(t, "groupnorm2", refGroupNorm([]float64{1, 3, 10, 20}, []float64{1, 1}, []float64{0, 0}, 1, 2, 2, 2, 0, false),
		[]float64{-1, 1, -1, 1})
	near(t, "layernorm", refLayerNorm([]float64{1, 3, 5, 5}, []float64{1, 1}, []float64{0, 0}, 2, 0), []float64{-1, 1, 0, 0})
	near(t, "softmax", refSoftmax([]float64{0, math.Log(3), 1000, 1000}, 2), []float64{0.25, 0.75, 0.5, 0.5})
}

func TestRefAttention(t *testing.T) {
	// One head of dim 1; keys 0 and 0 score equally, so the output is the
	// mean of the values; causal query 0 sees only value 0.
	q := []float64{1, 2}
	k := []float64{0, 0}
	v := []float64{4, 8}
	near(t, "mean", refAttention(q, k, v, 1, 2, 2, 1, 1, 1, false), []float64{6, 6})
	near(t, "causal", refAttention(q, k, v, 1, 2, 2, 1, 1, 1, true), []float64{4, 6})
	// Two heads of dim 1 interleaved in the features: head 1 sees a key
	// that scores ln 3 higher on its second token.
	q2 := []float64{1, 1}
	k2 := []float64{0, 0, 0, math.Log(3)}
	v2 := []float64{1, 10, 3, 20}
	near(t, "heads", refAttention(q2, k2, v2, 1, 1, 2, 2, 1, 1, false), []float64{2, 0.25*10 + 0.75*20})
}

func TestRefBroadcast(t *testing.T) {
	add := func(x, y float64) float64 { return x + y }
	// [2, 1] + [3] → [2, 3].
	near(t, "add", refBroadcast([]float64{10, 20}, []int{2, 1}, []float64{1, 2, 3}, []int{3}, []int{2, 3}, add),
		[]float64{11, 12, 13, 21, 22, 23})
	near(t, "layout", refUpsample2x([]float64{1, 2}, 1, 1, 2), []float64{1, 1, 2, 2, 1, 1, 2, 2})
	near(t, "concat", refConcat([]float64{1, 2}, []float64{3, 4, 5, 6}, 2, 1, 2, 1), []float64{1, 3, 4, 2, 5, 6})
	near(t, "transpose", refTranspose([]float64{1, 2, 3, 4, 5, 6}, 1, 2, 3), []float64{1, 4, 2, 5, 3, 6})
}

func TestRefTimestep(t *testing.T) {
	// dim 5 (odd), t = 1, shift 0: half 2, exponents [0, -ln(10000)/2],
	// so freq [1, 0.01] up to float32 rounding, then a zero pad.
	f := float64(float32(math.Exp(float64(float32(float32(-math.Log(10000)) / 2)))))
	near(t, "sin_cos", refTimestep([]float64{1}, 5, false, 0, 10000),
		[]float64{math.Sin(1), math.Sin(f), math.Cos(1), math.Cos(f), 0})
	near(t, "flip", refTimestep([]float64{1}, 5, true, 0, 10000),
		[]float64{math.Cos(1), math.Cos(f), math.Sin(1), math.Sin(f), 0})
	// shift 1 divides by half - 1 = 1: freq [1, 1e-4].
	f = float64(float32(math.Exp(float64(float32(-math.Log(10000))))))
	near(t, "shift", refTimestep([]float64{2}, 4, false, 1, 10000),
		[]float64{math.Sin(2), math.Sin(float64(float32(2 * f))), math.Cos(2), math.Cos(float64(float32(2 * f)))})
	if math.Abs(f-1e-4) > 1e-11 {
		t.Errorf("freq %g, want 1e-4", f)
	}
}
