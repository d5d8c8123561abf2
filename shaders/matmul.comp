// MatMul: C[b] = alpha * op(A[b]) x op(B[b or 0]) + bias (+ residual).
// Defines: TRANS_A, TRANS_B, B_F16, HAS_BIAS, BIAS_F16, HAS_RES and
// RES_BINDING (the residual's binding), and the core's tile (TILE or
// BM/BN, BK, SPLITK). With SPLITK > 1, binding 0 is the scratch buffer
// [SPLITK, batch, M, N] of raw partial sums (no alpha, no bias, no
// residual); gemm_splitk.comp finishes them.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Cbuf { float c[]; };
layout(std430, binding = 1) readonly buffer Abuf { float a[]; };
#if B_F16
layout(std430, binding = 2) readonly buffer Bbuf { uint b_h[]; };
float b_at(uint i) { return half_at(b_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Bbuf { float b_f[]; };
float b_at(uint i) { return b_f[i]; }
#endif
#if HAS_BIAS
#if BIAS_F16
layout(std430, binding = 3) readonly buffer Biasbuf { uint bias_h[]; };
float bias_at(uint i) { return half_at(bias_h[i >> 1], i); }
#else
layout(std430, binding = 3) readonly buffer Biasbuf { float bias_f[]; };
float bias_at(uint i) { return bias_f[i]; }
#endif
#endif

#if HAS_RES
// The residual (dst's shape, possibly dst itself: each element is read
// before the same invocation writes it).
layout(std430, binding = RES_BINDING) readonly buffer Resbuf { float res[]; };
#endif

uniform uint u_M, u_N, u_K;
uniform uint u_strideB; // elements between B matrices; 0 when B is shared
uniform float u_alpha;

#define A_KCONTIG (TRANS_A == 0)
#define B_NCONTIG (TRANS_B == 0)
#define B_FETCH4 0
// F16 weights read k-contiguous (x·Wᵀ): two words give four halves.
#define B_KFETCH4 (TRANS_B != 0 && B_F16 != 0)
#if SPLITK > 1
uniform uint u_partStride; // elements per partial: batch * M * N
#endif

float loadA(uint m, uint k);
float loadB(uint k, uint n);
void storeC(uint m, uint n, float acc);
vec4 loadB4k(uint k, uint n);

#include "gemm_core.glsl"

float loadA(uint m, uint k) {
	uint base = g_batch * u_M * u_K; // [B, M, K] or [B, K, M]
#if TRANS_A
	return a[base + k * u_M + m];
#else
	return a[base + m * u_K + k];
#endif
}

float loadB(uint k, uint n) {
	uint base = g_batch * u_strideB; // [Bb, K, N] or [Bb, N, K]
#if TRANS_B
	return b_at(base + n * u_K + k);
#else
	return b_at(base + k * u_N + n);
#endif
}

#if B_KFETCH4
vec4 loadB4k(uint k, uint n) {
	uint i = g_batch * u_strideB + n * u_K + k; // [Bb, N, K]
	if ((i & 1u) == 0u && k + 3u < u_K) {
		uint h = i >> 1;
		return vec4(unpackHalf2x16(b_h[h]), unpackHalf2x16(b_h[h + 1u]));
	}
	vec4 v = vec4(0.0);
	for (uint j = 0u; j < 4u; j++)
		if (k + j < u_K) v[j] = b_at(i + j);
	return v;
}
#endif

void storeC(uint m, uint n, float acc) {
#if SPLITK > 1
	c[g_split * u_partStride + (g_batch * u_M + m) * u_N + n] = acc;
#else
	uint i = (g_batch * u_M + m) * u_N + n;
	float v = u_alpha * acc;
#if HAS_BIAS
	v += bias_at(n);
#endif
#if HAS_RES
	v += res[i];
#endif
	c[i] = v;
#endif
}

void main() { gemm_tile(); }
