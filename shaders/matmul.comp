// MatMul: C[b] = alpha * op(A[b]) x op(B[b or 0]) + bias (+ residual).
// Defines: TRANS_A, TRANS_B, B_F16, HAS_BIAS, BIAS_F16, HAS_RES and
// RES_BINDING (the residual's binding), GEGLU (C[b] [M, N/2] = value *
// gelu(gate) of the product's column pairs 2j, 2j+1), and the core's tile
// (TILE or BM/BN, BK, SPLITK). With SPLITK > 1, binding 0 is the scratch
// buffer [SPLITK, batch, M, N] of raw partial sums (no alpha, no bias, no
// residual, no GEGLU); gemm_splitk.comp finishes them.
#include "common.glsl"

#ifndef GEGLU
#define GEGLU 0
#endif
// A thread's columns come in aligned fours, so each pair is whole in one
// thread: the core hands them to storePair.
#define STORE_PAIRS (GEGLU != 0 && SPLITK == 1)

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
// Operands whose contiguous extent is a multiple of 4 (K4: K, N4: N) load
// 4 neighbours at once through a vec4 (F32) or uvec2 (F16) view of their
// buffer; the rows then start on whole vec4s, so a vec4 is wholly inside
// or wholly past the matrix.
#define A_FETCH4 (TRANS_A == 0 && K4 != 0)
#define B_FETCH4 (TRANS_B == 0 && N4 != 0)
// F16 weights read k-contiguous (x·Wᵀ) take four halves from two words
// even where K is not a multiple of 4.
#define B_KFETCH4 (TRANS_B != 0 && (B_F16 != 0 || K4 != 0))

#if A_FETCH4
layout(std430, binding = 1) readonly buffer Abuf4 { vec4 a4[]; };
#endif
#if K4 != 0 || N4 != 0
#if B_F16
layout(std430, binding = 2) readonly buffer Bbuf2 { uvec2 b_h2[]; };
vec4 b4_at(uint i) { // B[i..i+3], i a multiple of 4
	uvec2 w = b_h2[i >> 2];
	return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
}
#else
layout(std430, binding = 2) readonly buffer Bbuf4 { vec4 b4[]; };
vec4 b4_at(uint i) { return b4[i >> 2]; }
#endif
#endif
#if SPLITK > 1
uniform uint u_partStride; // elements per partial: batch * M * N
#endif

float loadA(uint m, uint k);
float loadB(uint k, uint n);
void storeC(uint m, uint n, float acc);
void storePair(uint m, uint n, float value, float gate);
vec4 loadA4(uint m, uint k);
vec4 loadB4(uint k, uint n);
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

#if A_FETCH4
vec4 loadA4(uint m, uint k) {
	if (k >= u_K) return vec4(0.0);
	return a4[(g_batch * u_M * u_K + m * u_K + k) >> 2]; // [B, M, K]
}
#endif

#if B_FETCH4
vec4 loadB4(uint k, uint n) {
	if (!g_interior && (k >= u_K || n >= u_N)) return vec4(0.0);
	return b4_at(g_batch * u_strideB + k * u_N + n); // [Bb, K, N]
}
#endif

#if B_KFETCH4
vec4 loadB4k(uint k, uint n) {
	uint i = g_batch * u_strideB + n * u_K + k; // [Bb, N, K]
#if K4
	if (k >= u_K) return vec4(0.0);
	return b4_at(i);
#else
	if ((i & 1u) == 0u && k + 3u < u_K) {
		uint h = i >> 1;
		return vec4(unpackHalf2x16(b_h[h]), unpackHalf2x16(b_h[h + 1u]));
	}
	vec4 v = vec4(0.0);
	for (uint j = 0u; j < 4u; j++)
		if (k + j < u_K) v[j] = b_at(i + j);
	return v;
#endif
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

#if STORE_PAIRS
// Columns n (even) and n+1 of the product: GEGLU's value and gate.
void storePair(uint m, uint n, float value, float gate) {
	float v = u_alpha * value, g = u_alpha * gate;
#if HAS_BIAS
	v += bias_at(n);
	g += bias_at(n + 1u);
#endif
	c[(g_batch * u_M + m) * (u_N / 2u) + n / 2u] = v * gelu(g);
}
#endif

void main() { gemm_tile(); }
