// Winograd's filter transform (see winograd_gemm.comp), F(2x2, 3x3) or
// F(4x4, 3x3) by WINO_M (the output tile's side, 2 or 4):
//
//   U[ξ][o][c] = (G g Gᵀ)[i][j],  ξ = (WINO_M + 2)·i + j,  g = W[oc0 + o][c]
//
// for the chunk of OCC output channels from oc0. One invocation per
// (o, c), c up to CP (C rounded up to 4; the padding is zero so the GEMM
// reads whole vec4s).
//
//   F(2x2, 3x3): G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]
//   F(4x4, 3x3): G' = [1 0 0; 1 1 1; 1 -1 1; 1 2 4; 1 -2 4; 0 0 1], whose
//     rows are G's (Lavin & Gray) divided by ¼, -⅙, -⅙, 1/24, 1/24, 1:
//     integer taps keep U' exact where G's sixths would round; the output
//     transform multiplies the scales back in.
// Defines: W_F16, WINO_M.
#include "common.glsl"

#define WA (WINO_M + 2) // the input tile's side

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ubuf { float u[]; }; // U [WA², OCC, CP]
#if W_F16
layout(std430, binding = 1) readonly buffer Wbuf { uint w_h[]; };
float w_at(uint i) { return half_at(w_h[i >> 1], i); }
#else
layout(std430, binding = 1) readonly buffer Wbuf { float w_f[]; };
float w_at(uint i) { return w_f[i]; }
#endif

uniform uint u_C, u_CP;
uniform uint u_oc0, u_OCC; // the chunk's first output channel and its count
uniform uint u_n;          // OCC * CP

// gcomb combines three filter taps by row r of G (or G').
float gcomb(uint r, float g0, float g1, float g2) {
#if WINO_M == 2
	if (r == 0u) return g0;
	if (r == 3u) return g2;
	if (r == 1u) return ((g0 + g1) + g2) * 0.5;
	return ((g0 - g1) + g2) * 0.5;
#else
	switch (r) {
	case 0u: return g0;
	case 1u: return (g0 + g1) + g2;
	case 2u: return (g0 - g1) + g2;
	case 3u: return (g0 + 2.0 * g1) + 4.0 * g2;
	case 4u: return (g0 - 2.0 * g1) + 4.0 * g2;
	default: return g2;
	}
#endif
}

void main() {
	uint idx = group_id() * 256u + gl_LocalInvocationID.x;
	if (idx >= u_n) return;
	uint c = idx % u_CP, o = idx / u_CP;
	float g[9];
	for (uint e = 0u; e < 9u; e++) g[e] = c < u_C ? w_at(((u_oc0 + o) * u_C + c) * 9u + e) : 0.0;
	for (uint i = 0u; i < uint(WA); i++) {
		float h0 = gcomb(i, g[0], g[3], g[6]); // G's row i down each filter column
		float h1 = gcomb(i, g[1], g[4], g[7]);
		float h2 = gcomb(i, g[2], g[5], g[8]);
		for (uint j = 0u; j < uint(WA); j++) u[((uint(WA) * i + j) * u_OCC + o) * u_CP + c] = gcomb(j, h0, h1, h2);
	}
}
