// MatMul: C[b] = alpha * op(A[b]) x op(B[b or 0]) + bias.
// Defines: TRANS_A, TRANS_B, B_F16, HAS_BIAS, BIAS_F16.
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

uniform uint u_M, u_N, u_K;
uniform uint u_strideB; // elements between B matrices; 0 when B is shared
uniform float u_alpha;

#define A_KCONTIG (TRANS_A == 0)
#define B_NCONTIG (TRANS_B == 0)
#define B_FETCH4 0


float loadA(uint m, uint k);
float loadB(uint k, uint n);
void storeC(uint m, uint n, float acc);

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

void storeC(uint m, uint n, float acc) {
	float v = u_alpha * acc;
#if HAS_BIAS
	v += bias_at(n);
#endif
	c[(g_batch * u_M + m) * u_N + n] = v;
}

void main() { gemm_tile(); }
