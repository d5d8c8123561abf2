// Package rng is a normal random generator that reproduces, bit for bit,
// PyTorch's CPU generator: for a seed s,
//
//	g := rng.New(s)
//	a := g.Randn(n)
//	b := g.Randn(m)
//
// gives the same float32 values as
//
//	g = torch.Generator("cpu").manual_seed(s)
//	a = torch.randn(n, generator=g)  # dtype float32
//	b = torch.randn(m, generator=g)
//
// on an x86-64 CPU with AVX2 (what diffusers' and ComfyUI's "CPU seed"
// means to users). The shape of a tensor does not matter, only its element
// count: randn((1, 4, 64, 64)) is Randn(16384) in row-major order.
//
// How torch draws float32 normals (PyTorch 2.x,
// aten/src/ATen/native/cpu/DistributionTemplates.h, normal_kernel):
//
//   - The engine is mt19937 (aten/src/ATen/core/MT19937RNGEngine.h) seeded
//     with the low 32 bits of the seed (CPUGeneratorImpl.cpp).
//   - A float32 uniform takes one 32-bit draw: (r & (2^24-1)) * 2^-24
//     (aten/src/ATen/core/TransformationHelper.h, uniform_real).
//   - Contiguous float32 tensors of 16 or more elements: every element is
//     first filled with a uniform, then each block of 16 is transformed in
//     place by Box-Muller, lanes j and j+8 (j < 8) forming a pair:
//     u1 = 1 - d[j], u2 = d[j+8], r = sqrt(-2 log u1), θ = 2π u2,
//     d[j] = r cos θ, d[j+8] = r sin θ. When the count is not a multiple of
//     16, 16 fresh uniforms are drawn into the last 16 elements (overwriting
//     part of the last full block) and that block is transformed again.
//     With AVX2 this is normal_fill_AVX2 / normal_fill_16_AVX2, computed in
//     float32 with the Cephes polynomials of avx_mathfun.h (see
//     boxmuller.go). AVX-512 machines use the same AVX2 kernel: normal_stub
//     is registered with REGISTER_NO_AVX512_DISPATCH in
//     aten/src/ATen/native/cpu/DistributionKernels.cpp; the golden data,
//     recorded on an AVX-512 Xeon, matches this emulation bit for bit,
//     while the same draws under ATEN_CPU_CAPABILITY=default (the scalar
//     normal_fill with libm's logf/cosf/sinf, what builds without AVX2 such
//     as ARM run) differ in the last bits. That variant is not reproduced.
//   - Fewer than 16 elements: each element comes from
//     at::normal_distribution<double> (aten/src/ATen/core/DistributionsHelper.h):
//     two 53-bit double uniforms from two 64-bit draws (each the
//     concatenation of two 32-bit outputs, first one high),
//     r = sqrt(-2 log1p(-u2)), θ = 2π u1, result r cos θ, and r sin θ is
//     cached in the generator and returned by the next such draw. The cache
//     survives between calls (only these small draws use it) and is cleared
//     by seeding.
package rng

import "math"

// Generator is a torch-compatible CPU random generator. It is not safe for
// concurrent use.
type Generator struct {
	mt   mt19937
	seed uint64

	// Second value of the last double-precision Box-Muller pair, waiting to
	// be returned (torch's next_double_normal_sample).
	nextNormal    float64
	hasNextNormal bool
}

// New returns a generator in the state of
// torch.Generator("cpu").manual_seed(seed). A negative Python seed s
// corresponds to uint64(s): torch reinterprets it as its two's complement
// (unpack_uint64 in torch/csrc/Generator.cpp).
func New(seed uint64) *Generator {
	g := &Generator{seed: seed}
	g.mt.seed(seed)
	return g
}

// Seed returns the seed the generator was created with.
func (g *Generator) Seed() uint64 { return g.seed }

// Clone returns an independent copy of the generator's current state.
func (g *Generator) Clone() *Generator {
	c := *g
	return &c
}

// Uint32 returns the next 32-bit output of the engine (torch's random()).
func (g *Generator) Uint32() uint32 { return g.mt.uint32() }

// Uint64 returns two 32-bit outputs joined, the first in the high half
// (torch's random64()).
func (g *Generator) Uint64() uint64 {
	hi := g.mt.uint32()
	lo := g.mt.uint32()
	return uint64(hi)<<32 | uint64(lo)
}

// uniform32 is at::uniform_real_distribution<float>(0, 1): 24 random bits.
func (g *Generator) uniform32() float32 {
	return float32(g.mt.uint32()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniform64 is at::uniform_real_distribution<double>(0, 1): 53 random bits.
func (g *Generator) uniform64() float64 {
	return float64(g.Uint64()&(1<<53-1)) * (1.0 / (1 << 53))
}

// normal64 is at::normal_distribution<double>(0, 1) with its cache.
func (g *Generator) normal64() float64 {
	if g.hasNextNormal {
		g.hasNextNormal = false
		return g.nextNormal
	}
	u1 := g.uniform64()
	u2 := g.uniform64()
	r := math.Sqrt(-2 * math.Log1p(-u2))
	theta := 2 * math.Pi * u1
	g.nextNormal = r * math.Sin(theta)
	g.hasNextNormal = true
	return r * math.Cos(theta)
}

// Randn returns n standard normal float32 values, the same as
// torch.randn(n, generator=g, dtype=torch.float32) would, and advances the
// generator as torch does. n <= 0 returns an empty slice and draws nothing.
func (g *Generator) Randn(n int) []float32 {
	if n <= 0 {
		return []float32{}
	}
	d := make([]float32, n)
	g.RandnInto(d)
	return d
}

// RandnInto fills dst as Randn(len(dst)) would.
func (g *Generator) RandnInto(dst []float32) {
	n := len(dst)
	if n < 16 {
		for i := range dst {
			// mean + std*x in double, then rounded to float32.
			dst[i] = float32(g.normal64()*1 + 0)
		}
		return
	}
	for i := range dst {
		dst[i] = g.uniform32()
	}
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16(dst[i : i+16])
	}
	if n%16 != 0 {
		tail := dst[n-16:]
		for i := range tail {
			tail[i] = g.uniform32()
		}
		boxMuller16(tail)
	}
}
