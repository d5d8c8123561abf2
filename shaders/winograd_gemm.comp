// A 3x3 convolution, stride 1, padding 1, by Winograd's minimal filtering
// (Lavin & Gray 2016): F(2x2, 3x3) cuts the output into 2x2 tiles, each
// computed from its 4x4 input patch d as Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,
// so 16 products in the transformed domain replace 36 per tile; F(4x4,
// 3x3) takes 36 from a 6x6 patch where 144 would be direct. Over channels
// this is one GEMM per transformed position ξ = (i, j):
//
//   M[ξ] [OC, T] = U[ξ] [OC, C] · V[ξ] [C, T]
//
// U comes from winograd_filter.comp, V from winograd_input.comp (both
// padded to whole vec4s: C to CP, the chunk's tiles to TP), and
// winograd_output.comp turns M back into the output. This shader runs
// the GEMMs of one chunk of output channels (OCC rows of U, every
// position) and tiles through gemm_core.glsl, one batch entry per
// position.
//
// Defines: the core's tile (TILE or BM/BN, BK, SPLITK). Binding 0 is
// M [SPLITK, ξ, OCC, TP]: with SPLITK > 1 raw partial sums, added in
// order by the output transform.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Mbuf { float mo[]; };
layout(std430, binding = 1) readonly buffer Ubuf { vec4 u4[]; }; // U [ξ, OCC, CP]
layout(std430, binding = 2) readonly buffer Vbuf { vec4 v4[]; }; // V [ξ, CP, TP]

uniform uint u_M, u_N, u_K; // OCC, TP, CP
uniform uint u_partStride; // ξ * OCC * TP

#define A_KCONTIG 1
#define A_FETCH4 1
#define B_NCONTIG 1
#define B_FETCH4 1

float loadA(uint m, uint k);
vec4 loadA4(uint m, uint k);
float loadB(uint k, uint n);
vec4 loadB4(uint k, uint n);
void storeC(uint m, uint n, float acc);

#include "gemm_core.glsl"

// k and n arrive as multiples of 4, and CP and TP are, so a vec4 never
// straddles the end of a row.
vec4 loadA4(uint m, uint k) {
	if (k >= u_K) return vec4(0.0);
	return u4[((g_batch * u_M + m) * u_K + k) >> 2];
}

float loadA(uint m, uint k) { return loadA4(m, k & ~3u)[k & 3u]; }

vec4 loadB4(uint k, uint n) {
	if (k >= u_K || n >= u_N) return vec4(0.0);
	return v4[((g_batch * u_K + k) * u_N + n) >> 2];
}

float loadB(uint k, uint n) { return loadB4(k, n & ~3u)[n & 3u]; }

void storeC(uint m, uint n, float acc) {
	mo[g_split * u_partStride + (g_batch * u_M + m) * u_N + n] = acc;
}

void main() { gemm_tile(); }
