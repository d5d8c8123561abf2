// A 3x3 convolution, stride 1, padding 1, by Winograd's minimal filtering
// F(2x2, 3x3) (Lavin & Gray 2016): the output is cut into 2x2 tiles, each
// computed from its 4x4 input patch d as Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,
// so the 16 products of the transformed domain replace 36 per tile. Over
// channels this is 16 GEMMs (one per transformed position ξ = (i, j)):
//
//   M[ξ] [OC, T] = U[ξ] [OC, C] · V[ξ] [C, T],
//   U[ξ][oc][c] = (G g[oc][c] Gᵀ)[i][j],  V[ξ][c][t] = (Bᵀ d[c][t] B)[i][j]
//
// for T tiles (images x tile rows x tile columns). This shader runs them
// through gemm_core.glsl, one batch entry per ξ, forming U from the
// weights and V from the input as it loads them (neither is stored); the
// output transform (winograd_output.comp) reads M back.
//
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G  = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]
//
// Defines: W_F16 and the core's tile (TILE or BM/BN, BK, SPLITK). Binding
// 0 is M [16, OC, T], or with SPLITK > 1 the scratch of raw partial sums
// [SPLITK, 16, OC, T] that gemm_splitk.comp adds into M.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Mbuf { float mo[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
#if W_F16
layout(std430, binding = 2) readonly buffer Wbuf { uint w_h[]; };
float w_at(uint i) { return half_at(w_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Wbuf { float w_f[]; };
float w_at(uint i) { return w_f[i]; }
#endif

uniform uint u_M, u_N, u_K; // OC, T, C
uniform int u_H, u_W;       // input (and output) extent
uniform int u_TW, u_TT;     // tiles per row, tiles per image
#if SPLITK > 1
uniform uint u_partStride; // elements per partial: 16 * OC * T
#endif

#define A_KCONTIG 1
#define B_NCONTIG 1
#define B_FETCH4 1

float loadA(uint m, uint k);
float loadB(uint k, uint n);
vec4 loadB4(uint k, uint n);
void storeC(uint m, uint n, float acc);

#include "gemm_core.glsl"

// Row i of Bᵀ has two non-zero entries, +-1: S0[i] at R0[i], S1[i] at R1[i].
const int R0[4] = int[](0, 1, 1, 1);
const int R1[4] = int[](2, 2, 2, 3);
const float S0[4] = float[](1.0, 1.0, -1.0, 1.0);
const float S1[4] = float[](-1.0, 1.0, 1.0, -1.0);

// gcomb combines three filter taps by row i of G.
float gcomb(uint i, float g0, float g1, float g2) {
	if (i == 0u) return g0;
	if (i == 3u) return g2;
	if (i == 1u) return ((g0 + g1) + g2) * 0.5;
	return ((g0 - g1) + g2) * 0.5;
}

// loadA: U[ξ][m][k], from the 3x3 filter of output channel m, input
// channel k (W [OC, C, 3, 3]).
float loadA(uint m, uint k) {
	uint i = g_batch / 4u, j = g_batch % 4u;
	uint base = (m * u_K + k) * 9u;
	float h[3]; // G's row i applied down each filter column
	for (uint b = 0u; b < 3u; b++) h[b] = gcomb(i, w_at(base + b), w_at(base + 3u + b), w_at(base + 6u + b));
	return gcomb(j, h[0], h[1], h[2]);
}

float din(int plane, int iy, int ix) {
	return (iy >= 0 && iy < u_H && ix >= 0 && ix < u_W) ? x[plane + iy * u_W + ix] : 0.0;
}

// vtile: V[ξ] of the 4x4 patch whose top-left input pixel is (y0, x0).
float vtile(int plane, int y0, int x0) {
	uint i = g_batch / 4u, j = g_batch % 4u;
	int ya = y0 + R0[i], yb = y0 + R1[i], xa = x0 + R0[j], xb = x0 + R1[j];
	float a = S0[j] * din(plane, ya, xa) + S1[j] * din(plane, ya, xb);
	float b = S0[j] * din(plane, yb, xa) + S1[j] * din(plane, yb, xb);
	return S0[i] * a + S1[i] * b;
}

// loadB4: V[ξ][k][n..n+3], zero past the tiles; tile n is (image, tile
// row, tile column), decomposed once for the four.
vec4 loadB4(uint k, uint n) {
	vec4 v = vec4(0.0);
	if (k >= u_K) return v;
	int nn = int(n);
	int img = nn / u_TT;
	int r = nn - img * u_TT;
	int ty = r / u_TW;
	int tx = r - ty * u_TW;
	for (int j = 0; j < 4; j++) {
		if (nn + j >= int(u_N)) break;
		int plane = (img * int(u_K) + int(k)) * u_H * u_W;
		v[j] = vtile(plane, 2 * ty - 1, 2 * tx - 1);
		if (++tx == u_TW) {
			tx = 0;
			if (++ty * u_TW == u_TT) {
				ty = 0;
				img++;
			}
		}
	}
	return v;
}

float loadB(uint k, uint n) { return loadB4(k, n).x; }

void storeC(uint m, uint n, float acc) {
#if SPLITK > 1
	mo[g_split * u_partStride + (g_batch * u_M + m) * u_N + n] = acc;
#else
	mo[(g_batch * u_M + m) * u_N + n] = acc; // M [16, OC, T]
#endif
}

void main() { gemm_tile(); }
