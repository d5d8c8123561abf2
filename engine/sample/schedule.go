package sample

import (
	"fmt"
	"math"

	"glimmer/engine/internal/f32"
)

// This file holds the noise-schedule arithmetic shared by the samplers,
// written to round where diffusers (on PyTorch and NumPy) rounds:
//
//   - the training tables (betas, ᾱ, σ) are float32 torch tensors;
//   - the per-run timestep and σ tables are computed in float64 NumPy and
//     then cast to float32;
//   - the step arithmetic is float32 torch ops on 0-dim tensors and on the
//     latents.

// train holds the training-time noise schedule.
type train struct {
	steps         int       // number of training timesteps (1000)
	offset        int       // steps_offset of "leading" spacing
	alphasCumprod []float32 // ᾱ_t, t = 0..steps-1
	sigmas        []float32 // σ_t = sqrt((1-ᾱ_t)/ᾱ_t), ascending in t
}

// Check refuses a schedule no sampler can run: its steps outside
// 2..100000, its betas outside 0 < start <= end < 1. The messages name
// the fields as diffusers' scheduler configs do, which model checks
// with it.
func (c TrainConfig) Check() error {
	if c.Steps < 2 || c.Steps > 100000 {
		return fmt.Errorf("num_train_timesteps %d is out of range (2..100000; SD's is 1000)", c.Steps)
	}
	if !(c.BetaStart > 0 && c.BetaEnd >= c.BetaStart && c.BetaEnd < 1) {
		return fmt.Errorf("beta_start %v and beta_end %v must satisfy 0 < start <= end < 1, so are out of range (SD's are 0.00085 and 0.012)", c.BetaStart, c.BetaEnd)
	}
	return nil
}

func newTrain(c TrainConfig) (*train, error) {
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	if c.StepsOffset < 0 || c.StepsOffset >= c.Steps {
		return nil, fmt.Errorf("sample: steps offset %d is out of range", c.StepsOffset)
	}
	betas := scaledLinearBetas(c.BetaStart, c.BetaEnd, c.Steps)
	if c.Linear {
		betas = linearBetas(c.BetaStart, c.BetaEnd, c.Steps)
	}
	ac := make([]float32, c.Steps)
	// torch.cumprod on a float32 CPU tensor accumulates in double and rounds
	// each partial product to float (cumprod_cpu_kernel, at::acc_type<float,
	// false> is double).
	acc := 1.0
	for i, b := range betas {
		acc *= float64(1 - b) // alphas = 1.0 - betas, a float32 tensor
		ac[i] = float32(acc)
	}
	sig := make([]float32, c.Steps)
	for i, a := range ac {
		// ((1 - ᾱ) / ᾱ) ** 0.5, element-wise float32 (pow 0.5 is sqrt).
		sig[i] = sqrt32((1 - a) / a)
	}
	return &train{steps: c.Steps, offset: c.StepsOffset, alphasCumprod: ac, sigmas: sig}, nil
}

// scaledLinearBetas is
// torch.linspace(start**0.5, end**0.5, n, dtype=torch.float32) ** 2.
func scaledLinearBetas(start, end float64, n int) []float32 {
	b := linspace32(float32(math.Sqrt(start)), float32(math.Sqrt(end)), n)
	for i, v := range b {
		b[i] = v * v
	}
	return b
}

// linearBetas is torch.linspace(start, end, n, dtype=torch.float32).
func linearBetas(start, end float64, n int) []float32 {
	return linspace32(float32(start), float32(end), n)
}

// linspace32 is torch.linspace(s, e, n) of float32 on the CPU.
//
// torch's CPU linspace (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp)
// works in the output type: step = (end - start) / (n - 1) in float32, the
// first half counted up from start (start + step*i) and the second half down
// from end (end - step*(n-1-i)). That kernel is compiled for AVX2/AVX-512
// with FMA contraction, so each value is one fused multiply-add; the golden
// table from PyTorch 2.11 confirms it bit for bit (scaledLinearBetas).
func linspace32(s, e float32, n int) []float32 {
	step := (e - s) / float32(n-1)
	half := n / 2
	b := make([]float32, n)
	for i := range b {
		if i < half {
			b[i] = fma32(step, float32(i), s)
		} else {
			b[i] = fma32(-step, float32(n-1-i), e)
		}
	}
	return b
}

// linspace is numpy.linspace(start, stop, n) in float64: i*step + start with
// step = (stop-start)/(n-1), and the last value set to stop exactly. n == 1
// gives [start].
func linspace(start, stop float64, n int) []float64 {
	y := make([]float64, n)
	if n == 1 {
		y[0] = start
		return y
	}
	step := (stop - start) / float64(n-1)
	for i := range y {
		y[i] = float64(float64(i)*step) + start
	}
	y[n-1] = stop
	return y
}

// interp is numpy.interp(x, arange(len(fp)), fp) for x within [0, len-1],
// computed in float64 as NumPy's arr_interp does:
// slope*(x - xp[j]) + fp[j] with slope = (fp[j+1]-fp[j]) / (xp[j+1]-xp[j]).
func interp(x float64, fp []float32) float64 {
	n := len(fp)
	switch {
	case x <= 0:
		return float64(fp[0])
	case x >= float64(n-1):
		return float64(fp[n-1])
	}
	j := int(math.Floor(x))
	if float64(j) == x {
		return float64(fp[j])
	}
	slope := (float64(fp[j+1]) - float64(fp[j])) / 1
	return float64(slope*(x-float64(j))) + float64(fp[j])
}

// karrasSigmas is diffusers' _convert_to_karras (Karras et al. 2022, eq. 5,
// ρ = 7): (σmax^(1/ρ) + ramp·(σmin^(1/ρ) - σmax^(1/ρ)))^ρ for
// ramp = linspace(0, 1, n), in float64.
func karrasSigmas(sigmaMin, sigmaMax float64, n int) []float64 {
	const rho = 7.0
	ramp := linspace(0, 1, n)
	minInv := math.Pow(sigmaMin, 1/rho)
	maxInv := math.Pow(sigmaMax, 1/rho)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = pow7(maxInv + float64(r*(minInv-maxInv)))
	}
	return out
}

// pow7 returns x**7 correctly rounded in nearly all cases (NumPy calls the C
// library's pow, which is; math.Pow can be off by an ulp or two). The power
// is computed in double-double arithmetic and rounded once.
func pow7(x float64) float64 {
	mul := func(ah, al, bh, bl float64) (float64, float64) {
		p := ah * bh
		e := math.FMA(ah, bh, -p)
		e += ah*bl + al*bh
		h := p + e
		return h, e - (h - p)
	}
	x2h, x2l := mul(x, 0, x, 0)
	x4h, x4l := mul(x2h, x2l, x2h, x2l)
	x6h, x6l := mul(x4h, x4l, x2h, x2l)
	h, l := mul(x6h, x6l, x, 0)
	return h + l
}

// logSigmas is np.log of the float32 σ table, as diffusers' _sigma_to_t
// sees it: NumPy's own float32 log (npLog32), not the correctly rounded one.
func logSigmas(sig []float32) []float32 {
	out := make([]float32, len(sig))
	for i, s := range sig {
		out[i] = npLog32(s)
	}
	return out
}

// sigmaToT is diffusers' _sigma_to_t: the fractional training timestep whose
// log σ matches, by linear interpolation in log σ between neighbours.
func sigmaToT(sigma float64, logSig []float32) float64 {
	logSigma := math.Log(math.Max(sigma, 1e-10))
	// low_idx: the last index whose log σ is <= log_sigma (the argmax of the
	// running count of such indices), at most len-2.
	low := 0
	count, best := 0, 0
	for i, ls := range logSig {
		if logSigma-float64(ls) >= 0 {
			count++
			if count > best {
				best, low = count, i
			}
		}
	}
	if low > len(logSig)-2 {
		low = len(logSig) - 2
	}
	lo, hi := logSig[low], logSig[low+1]
	// (low - log_sigma) is float64; (low - high) is a float32 difference.
	w := (float64(lo) - logSigma) / float64(lo-hi)
	w = math.Min(math.Max(w, 0), 1)
	return float64((1-w)*float64(low)) + float64(w*float64(low+1))
}

// roundHalfEven is numpy.round for float64 (ties to even).
func roundHalfEven(x float64) float64 { return math.RoundToEven(x) }

// fma32 is a*b+c rounded once, as x86's VFMADD (see f32.FMA).
func fma32(a, b, c float32) float32 { return f32.FMA(a, b, c) }

// sqrt32, log32 and exp32 are the correctly rounded float32 functions. The
// reference's float32 torch.sqrt/log/exp on the CPU go through MKL's VML in
// "high accuracy" mode, which on the reference machine is 1 ulp off the
// correctly rounded result for about 0.6% (sqrt), 0.1% (log) and 1% (exp)
// of inputs. MKL is closed and CPU-specific, so that cannot be reproduced;
// where it happens a schedule coefficient differs by 1 ulp (see the package
// documentation).
func sqrt32(x float32) float32 { return f32.Sqrt(x) }
func log32(x float32) float32  { return float32(math.Log(float64(x))) }
func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }

// npLog32 is NumPy's SIMD float32 log (simd_log_FLOAT in
// numpy/_core/src/umath/loops_exponent_log.dispatch.c.src, the AVX-512F and
// AVX2+FMA3 kernels), which np.log uses for float32 arrays on x86-64: the
// mantissa is normalised to [√½, √2), log(1+y) is a ratio of two degree-5
// polynomials evaluated with FMAs, and e·ln2 is added with one more FMA.
// Its error is up to ~4 ulp, and diffusers' _sigma_to_t sees exactly these
// values. x must be positive and normal (σ values are).
func npLog32(x float32) float32 {
	const (
		loge2  = float32(0.693147180559945309417232121458176568)
		sqrt12 = float32(0.707106781186547524400844362104849039)
		p1     = float32(9.999999999999998702752e-01)
		p2     = float32(2.112677543073053063722e+00)
		p3     = float32(1.480000633576506585156e+00)
		p4     = float32(3.808837741388407920751e-01)
		p5     = float32(2.589979117907922693523e-02)
		q0     = float32(1.0)
		q1     = float32(2.612677543073109236779e+00)
		q2     = float32(2.453006071784736363091e+00)
		q3     = float32(9.864942958519418960339e-01)
		q4     = float32(1.546476374983906719538e-01)
		q5     = float32(5.875095403124574342950e-03)
	)
	bits := math.Float32bits(x)
	e := float32(int32(bits>>23) - 126)                  // exponent of x as m·2^e, m in [0.5, 1)
	m := math.Float32frombits(bits&0x007fffff | 126<<23) // mantissa in [0.5, 1)
	if m <= sqrt12 {
		m = m + m
		e = e - 1
	}
	y := m - 1
	num := fma32(p5, y, p4)
	num = fma32(num, y, p3)
	num = fma32(num, y, p2)
	num = fma32(num, y, p1)
	num = fma32(num, y, 0)
	den := fma32(q5, y, q4)
	den = fma32(den, y, q3)
	den = fma32(den, y, q2)
	den = fma32(den, y, q1)
	den = fma32(den, y, q0)
	return fma32(e, loge2, num/den)
}

// AlphasCumprod is ᾱ_t for t = 0..Steps-1 of a training schedule, computed
// as the reference does; training noises latents with it:
// z_t = √ᾱ_t·z + √(1-ᾱ_t)·ε.
func AlphasCumprod(c TrainConfig) ([]float32, error) {
	tr, err := newTrain(c)
	if err != nil {
		return nil, err
	}
	return tr.alphasCumprod, nil
}
