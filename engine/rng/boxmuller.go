package rng

import "math"

// This file reproduces, lane by lane, the float32 arithmetic of PyTorch's
// AVX2 Box-Muller kernel (normal_fill_16_AVX2 in
// aten/src/ATen/native/cpu/DistributionTemplates.h) and of the Cephes-derived
// log256_ps and sincos256_ps it calls (aten/src/ATen/native/cpu/avx_mathfun.h,
// after Julien Pommier's sse_mathfun). Those are polynomial approximations,
// not the C library's logf/sinf/cosf, so their results differ from correctly
// rounded ones in the last bits; to reproduce torch.randn bit for bit the
// same polynomials must be evaluated with the same roundings.
//
// PyTorch builds that file with GCC for the AVX2 capability (-mavx2 -mfma).
// GCC's intrinsics are plain vector arithmetic to the compiler, and C++ is
// compiled with -ffp-contract=fast, so a multiplication whose only use is an
// addition is fused into one FMA (a single rounding). The fma32 calls below
// mark exactly those places; every other product is rounded on its own.

// Cephes constants, as float32 (the header stores them in float arrays).
const (
	cephesSQRTHF = float32(0.707106781186547524)
	logP0        = float32(7.0376836292e-2)
	logP1        = float32(-1.1514610310e-1)
	logP2        = float32(1.1676998740e-1)
	logP3        = float32(-1.2420140846e-1)
	logP4        = float32(+1.4249322787e-1)
	logP5        = float32(-1.6668057665e-1)
	logP6        = float32(+2.0000714765e-1)
	logP7        = float32(-2.4999993993e-1)
	logP8        = float32(+3.3333331174e-1)
	logQ1        = float32(-2.12194440e-4)
	logQ2        = float32(0.693359375)

	minusDP1 = float32(-0.78515625)
	minusDP2 = float32(-2.4187564849853515625e-4)
	minusDP3 = float32(-3.77489497744594108e-8)
	sinP0    = float32(-1.9515295891e-4)
	sinP1    = float32(8.3321608736e-3)
	sinP2    = float32(-1.6666654611e-1)
	cosP0    = float32(2.443315711809948e-005)
	cosP1    = float32(-1.388731625493765e-003)
	cosP2    = float32(4.166664568298827e-002)
	fourOPi  = float32(1.27323954473516) // 4/π

	// _mm256_set1_ps(2.0f * c10::pi<double>): 2π computed in double, then
	// rounded to float32.
	twoPi32 = float32(2 * math.Pi)
)

// cephesLog is log256_ps for one lane. x is in (0, 1] in our use.
func cephesLog(x float32) float32 {
	if !(x > 0) {
		return float32(math.NaN()) // log256_ps ORs NaN into lanes with x <= 0
	}
	const minNormPos = 0x00800000
	if math.Float32bits(x) < minNormPos { // max with the smallest normal
		x = math.Float32frombits(minNormPos)
	}
	bits := math.Float32bits(x)
	e := float32(int32(bits>>23)-0x7f) + 1
	// Keep the mantissa, force the exponent of 0.5: x in [0.5, 1).
	x = math.Float32frombits(bits&^0x7f800000 | math.Float32bits(0.5))

	var tmp float32 // x where x < SQRTHF, +0 elsewhere
	if x < cephesSQRTHF {
		tmp = x
		e -= 1
	}
	x = x - 1
	x = x + tmp

	z := mul32(x, x)
	y := fma32(logP0, x, logP1)
	y = fma32(y, x, logP2)
	y = fma32(y, x, logP3)
	y = fma32(y, x, logP4)
	y = fma32(y, x, logP5)
	y = fma32(y, x, logP6)
	y = fma32(y, x, logP7)
	y = fma32(y, x, logP8)
	y = mul32(y, x)
	// y*z + e*q1: GCC fuses the first product it meets (y*z); e*q1 is
	// rounded on its own.
	y = fma32(y, z, mul32(e, logQ1))
	// y - z*0.5: z*0.5 is exact, so fused or not gives the same result.
	y = y - mul32(z, 0.5)
	x = x + y
	// e*q2 is exact (q2 has 9 significant bits, e is a small integer).
	x = x + e*logQ2
	return x
}

// cephesSinCos is sincos256_ps for one lane.
func cephesSinCos(x float32) (sin, cos float32) {
	signSin := math.Float32bits(x) & 0x80000000
	x = math.Float32frombits(math.Float32bits(x) &^ 0x80000000)
	y := mul32(x, fourOPi)
	j := int32(y) // cvttps: truncation
	j = (j + 1) &^ 1
	y = float32(j)
	swapSignSin := uint32(j&4) << 29
	polyMask := j&2 == 0

	// Extended precision modular arithmetic: x = ((x - y*DP1) - y*DP2) - y*DP3,
	// each product fused into its addition.
	x = fma32(y, minusDP1, x)
	x = fma32(y, minusDP2, x)
	x = fma32(y, minusDP3, x)

	signCos := uint32(^(j-2)&4) << 29
	signSin ^= swapSignSin

	z := mul32(x, x)
	yc := fma32(cosP0, z, cosP1)
	yc = fma32(yc, z, cosP2)
	yc = mul32(yc, z)
	yc = fma32(yc, z, -mul32(z, 0.5)) // yc*z - z*0.5, the product fused
	yc = yc + 1

	ys := fma32(sinP0, z, sinP1)
	ys = fma32(ys, z, sinP2)
	ys = mul32(ys, z)
	ys = fma32(ys, x, x)

	// Blend exactly as the vector code does (with its additions of zero).
	var ysin1, ysin2 float32
	if polyMask {
		ysin2 = ys
	} else {
		ysin1 = yc
	}
	ys = ys - ysin2
	yc = yc - ysin1
	s := ysin1 + ysin2
	c := yc + ys
	sin = math.Float32frombits(math.Float32bits(s) ^ signSin)
	cos = math.Float32frombits(math.Float32bits(c) ^ signCos)
	return sin, cos
}

// boxMuller16 turns 16 uniforms in [0, 1) into 16 standard normals in place,
// pairing lanes j and j+8 as normal_fill_16_AVX2 does (mean 0, std 1).
func boxMuller16(d []float32) {
	_ = d[15]
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := sqrt32(mul32(-2, cephesLog(u1)))
		theta := mul32(twoPi32, u2)
		s, c := cephesSinCos(theta)
		// n*std + mean with std 1 and mean 0 (one FMA): n + 0.
		d[j] = mul32(radius, c) + 0
		d[j+8] = mul32(radius, s) + 0
	}
}
