// Package conformance holds every engine backend to one float64 reference.
// A backend's test calls Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func() engine.Backend { return cpu.New() })
//	}
//
// Each op runs on random inputs of awkward sizes (not multiples of tile
// sizes, plus cases that cross a 128x128x8 GEMM tile) and its output is
// compared with a naive float64 implementation by normalised mean squared
// error, NMSE = Σ(out - ref)² / Σ ref², against a bound per op. Outputs are
// filled with NaN before each op, so an element the backend never writes
// fails, as does any NaN or Inf it produces. Inputs come from math/rand/v2
// seeded by the case's name, so a failure reproduces exactly.
//
// Bench times the same ops at sizes taken from Stable Diffusion 1.5.
package conformance

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"

	"glimmer/engine"
)

// u is float32's unit roundoff, 2⁻²⁴: the relative error of one rounding.
const u = 1.0 / (1 << 24)

// NMSE bounds, one per kind of op. For float32 arithmetic, n roundings of
// independent sign give an NMSE of about n·u²/3 ≈ 1.2e-15·n, so the bounds
// say how many roundings (or how large an approximation) an op may carry.
const (
	// Pure data movement must be exact: any difference is a bug.
	nmseCopy = 0
	// Binary, Scale: one or two roundings per element, ≈ 2e-15; a bound
	// of 1e-13 leaves room for a fused multiply-add taken differently.
	nmseElementwise = 1e-13
	// MatMul, Conv2D: float32 sums of K products. A running sum collects
	// about K roundings, NMSE ≈ K·u²/6 ≈ 3e-13 at the suite's largest K
	// (513); 1e-10 allows any summation order, F16 operands (rounded the
	// same in the reference) and the alpha/bias epilogue, yet an error in
	// a single term of a 513-term dot product exceeds it.
	nmseGEMM = 1e-10
	// GroupNorm, LayerNorm: statistics over up to ~2000 values, then a
	// few roundings per element. A float32 single-pass variance on the
	// suite's unit-scale data stays near 1e-12; 1e-10 accepts it and
	// rejects a wrong group, channel or biased/unbiased variance.
	nmseNorm = 1e-10
	// Softmax and Attention: exp with a few ulp (GLSL allows 3 + 2|x|),
	// D-term dot products and an Nk-term weighted sum: ≈ 1e-12.
	nmseSoftmax = 1e-10
	// SiLU, QuickGELU, Tanh: exp and a division, a few ulp each: ≈ 1e-14;
	// 1e-11 leaves room for GLSL's exp. (ReLU is exact: nmseElementwise.)
	nmseSigmoid = 1e-11
	// GELU, GEGLU: a GPU erf is usually an approximation with ~1e-7
	// absolute error (Abramowitz-Stegun 7.1.26 has 1.5e-7); on N(0,1)
	// inputs that is NMSE ≈ 1e-13..1e-10, so 1e-9.
	nmseGELU = 1e-9
	// TimestepEmbedding: the float32 steps (exponent, exp, t·freq) are
	// part of the definition and a backend reproduces them exactly (IEEE
	// float32 on the host, or correctly rounded in the shader), leaving
	// the final rounding of sin and cos: ≈ 1e-15. Arguments reach 999 rad,
	// so a frequency a few ulp off (GLSL's exp allows 3) or an argument
	// kept in float64 moves sin and cos by ~1e-4 and gives NMSE ~1e-10,
	// which 1e-12 rejects.
	nmseTimestep = 1e-12
)

// Run runs the whole suite against backends made by newBackend. It makes
// one backend, shares it between the cases (a GL context is expensive),
// and closes it at the end. Cases run one after another.
func Run(t *testing.T, newBackend func() engine.Backend) {
	be := newBackend()
	defer func() {
		if err := be.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	t.Logf("backend: %s", be.Name())
	s := &suite{be: be}
	t.Run("Memory", s.testMemory)
	t.Run("MatMul", s.testMatMul)
	t.Run("MatMulGEGLU", s.testMatMulGEGLU)
	t.Run("Conv2D", s.testConv2D)
	t.Run("Residual", s.testResidual)
	t.Run("GroupNorm", s.testGroupNorm)
	t.Run("GroupNormShift", s.testGroupNormShift)
	t.Run("LayerNorm", s.testLayerNorm)
	t.Run("Softmax", s.testSoftmax)
	t.Run("Attention", s.testAttention)
	t.Run("Unary", s.testUnary)
	t.Run("GEGLU", s.testGEGLU)
	t.Run("Binary", s.testBinary)
	t.Run("Scale", s.testScale)
	t.Run("Upsample2x", s.testUpsample2x)
	t.Run("Concat", s.testConcat)
	t.Run("Transpose", s.testTranspose)
	t.Run("TimestepEmbedding", s.testTimestep)
	t.Run("SampleStep", s.testSampleStep)
	t.Run("InPlace", s.testInPlace)
	t.Run("Views", s.testViews)
}

// RunAttention runs only the Attention cases, for a backend that holds
// several variants of its attention kernel to the reference.
func RunAttention(t *testing.T, newBackend func() engine.Backend) {
	runOne(t, newBackend, "Attention", (*suite).testAttention)
}

// RunSampleStep runs only the SampleStep cases, for a backend that holds
// a variant of its sampler step to the host's.
func RunSampleStep(t *testing.T, newBackend func() engine.Backend) {
	runOne(t, newBackend, "SampleStep", (*suite).testSampleStep)
}

func runOne(t *testing.T, newBackend func() engine.Backend, name string, cases func(*suite, *testing.T)) {
	be := newBackend()
	defer func() {
		if err := be.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	s := &suite{be: be}
	t.Run(name, func(t *testing.T) { cases(s, t) })
}

// suite is the state Run shares between cases: just the backend.
type suite struct {
	be engine.Backend
}

// tcase is one case: a subtest, its random source and the tensors to free
// when it ends.
type tcase struct {
	*testing.T
	be   engine.Backend
	rng  *rand.Rand
	live []*engine.Tensor
}

// run runs body as subtest name of t. The case's random numbers are seeded
// from op and name, so they are the same on every backend and every run.
func (s *suite) run(t *testing.T, op, name string, body func(c *tcase)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%s", op, name)
		c := &tcase{T: t, be: s.be, rng: rand.New(rand.NewPCG(h.Sum64(), 0x676c696d6d6572))}
		defer func() {
			for _, x := range c.live {
				s.be.Free(x)
			}
		}()
		body(c)
	})
}

// alloc makes a tensor the case frees when it ends.
func (c *tcase) alloc(dtype engine.DType, shape ...int) *engine.Tensor {
	x := c.be.New(dtype, shape...)
	c.live = append(c.live, x)
	return x
}

// stored returns v as a tensor of dtype stores it: rounded to half
// precision for F16.
func stored(dtype engine.DType, v float32) float64 {
	if dtype == engine.F16 {
		return float64(float16.Fromfloat32(v).Float32())
	}
	return float64(v)
}

// from uploads vals into a new tensor and returns it with the values as
// the backend holds them, which is what the reference computes with.
func (c *tcase) from(dtype engine.DType, vals []float32, shape ...int) (*engine.Tensor, []float64) {
	x := c.alloc(dtype, shape...)
	c.be.Write(x, vals)
	ref := make([]float64, len(vals))
	for i, v := range vals {
		ref[i] = stored(dtype, v)
	}
	return x, ref
}

// randn uploads N(0,1) values.
func (c *tcase) randn(dtype engine.DType, shape ...int) (*engine.Tensor, []float64) {
	return c.randnScaled(dtype, 1, 0, shape...)
}

// randnScaled uploads N(mean, sd²) values.
func (c *tcase) randnScaled(dtype engine.DType, sd, mean float64, shape ...int) (*engine.Tensor, []float64) {
	return c.from(dtype, c.normals(engine.Shape(shape).Numel(), sd, mean), shape...)
}

func (c *tcase) normals(n int, sd, mean float64) []float32 {
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(c.rng.NormFloat64()*sd + mean)
	}
	return vals
}

// out makes an F32 destination filled with NaN, so that any element the
// op fails to write shows up.
func (c *tcase) out(shape ...int) *engine.Tensor {
	x := c.alloc(engine.F32, shape...)
	poison(c.be, x)
	return x
}

func poison(be engine.Backend, x *engine.Tensor) {
	nan := make([]float32, x.Numel())
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	be.Write(x, nan)
}

// expect reads got back and compares it with want: every element finite
// and NMSE at most bound.
func (c *tcase) expect(got *engine.Tensor, want []float64, bound float64) {
	c.Helper()
	vals, err := c.be.Read(got)
	if err != nil {
		c.Fatalf("Read: %v", err)
	}
	if len(vals) != len(want) {
		c.Fatalf("read %d values, reference has %d", len(vals), len(want))
	}
	var errSum, refSum, maxErr float64
	worst := 0
	for i, v := range vals {
		g := float64(v)
		if math.IsNaN(g) || math.IsInf(g, 0) {
			c.Fatalf("%v: element %d of %d is %v (want %.6g); NaN means unwritten if the op filled no other value", got, i, len(vals), g, want[i])
		}
		d := g - want[i]
		errSum += d * d
		refSum += want[i] * want[i]
		if math.Abs(d) > maxErr {
			maxErr, worst = math.Abs(d), i
		}
	}
	nmse := errSum
	if refSum > 0 {
		nmse = errSum / refSum
	}
	if nmse > bound || (bound == 0 && errSum != 0) {
		c.Errorf("%v: NMSE %.3g > bound %.3g; max |err| %.3g at element %d (got %.8g, want %.8g)",
			got, nmse, bound, maxErr, worst, vals[worst], want[worst])
		return
	}
	c.Logf("NMSE %.3g (bound %.3g), max |err| %.3g", nmse, bound, maxErr)
}

// dtypeName is a case-name suffix for an operand's dtype.
func dtypeName(d engine.DType) string {
	if d == engine.F16 {
		return "_f16"
	}
	return ""
}
