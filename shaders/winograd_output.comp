// Winograd's output transform (see winograd_gemm.comp), F(2x2, 3x3) or
// F(4x4, 3x3) by WINO_M (the output tile's side, 2 or 4): for each output
// tile of the chunk (tiles t0 .. t0+TC-1, output channels oc0 ..
// oc0+OCC-1), Y = Aᵀ m A from its (WINO_M+2)² products m[ξ]
// (M [ξ, OCC, TP], or SPLITK partial sums of it, added here in order),
// then the bias and the residual, written where the tile lies inside the
// output (an extent that is not a multiple of WINO_M leaves a partial
// last tile).
//
//   F(2x2, 3x3): Aᵀ = [1 1 1 0; 0 1 -1 -1]
//   F(4x4, 3x3): Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
//                      0 1 -1 8 -8 1], after m[i][j] is scaled by
//                s_i·s_j, s = (¼, -⅙, -⅙, 1/24, 1/24, 1): the scales the
//                filter transform's integer G' left out.
// Defines: WINO_M, SPLITK, HAS_BIAS, BIAS_F16, HAS_RES and RES_BINDING
// (as conv2d.comp), and OUTV: WINO_M where the output's width is a
// multiple of it, so a tile's rows are written (and the residual read) as
// whole vec2s or vec4s, else 1 (the backend's default;
// GLIMMER_GL_WINO_OUTV=0 keeps every store scalar).
#include "common.glsl"

#define WA (WINO_M + 2) // the input tile's side

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Mbuf { float mi[]; };
#if HAS_BIAS
#if BIAS_F16
layout(std430, binding = 2) readonly buffer Biasbuf { uint bias_h[]; };
float bias_at(uint i) { return half_at(bias_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Biasbuf { float bias_f[]; };
float bias_at(uint i) { return bias_f[i]; }
#endif
#endif
#if HAS_RES
layout(std430, binding = RES_BINDING) readonly buffer Resbuf { float res[]; };
#endif
#ifndef OUTV
#define OUTV 1
#endif
#if OUTV == 4
#define VT vec4
#elif OUTV == 2
#define VT vec2
#endif
#if OUTV > 1
layout(std430, binding = 0) writeonly buffer YbufV { VT yv[]; };
#if HAS_RES
layout(std430, binding = RES_BINDING) readonly buffer ResbufV { VT resv[]; };
#endif
#endif

uniform uint u_OC;          // output channels
uniform uint u_oc0, u_OCC;  // the chunk's first output channel and its count
uniform uint u_TW, u_TT;    // tiles per row, tiles per image
uniform uint u_H, u_W;      // output extent
uniform uint u_t0, u_TC, u_TP;
uniform uint u_n;           // TC x OCC: the invocations that work

#if WINO_M == 4
const float S[6] = float[](0.25, -1.0 / 6.0, -1.0 / 6.0, 1.0 / 24.0, 1.0 / 24.0, 1.0);
#endif

// at applies Aᵀ to the WA values p[o], p[o + s], ..., leaving WINO_M
// results at p[o], p[o + s], ...
void at(inout float p[WA * WA], int o, int s) {
#if WINO_M == 2
	float a = p[o], b = p[o + s], c = p[o + 2 * s], d = p[o + 3 * s];
	p[o] = a + b + c;
	p[o + s] = b - c - d;
#else
	float a = p[o], b = p[o + s], c = p[o + 2 * s], d = p[o + 3 * s], e = p[o + 4 * s], f = p[o + 5 * s];
	float bc = b + c, bmc = b - c, de = d + e, dme = d - e;
	p[o] = a + bc + de;
	p[o + s] = bmc + 2.0 * dme;
	p[o + 2 * s] = bc + 4.0 * de;
	p[o + 3 * s] = bmc + 8.0 * dme + f;
#endif
}

void main() {
	uint idx = group_id() * 256u + gl_LocalInvocationID.x;
	if (idx >= u_n) return;
	uint tl = idx % u_TC, o = idx / u_TC, oc = u_oc0 + o;
	uint t = u_t0 + tl, img = t / u_TT, tt = t - img * u_TT;
	uint ty = tt / u_TW, tx = tt - ty * u_TW;

	uint total = uint(WA * WA) * u_OCC * u_TP;
	float m[WA * WA]; // m[i·WA + j] = M[ξ = i·WA + j]
	for (int e = 0; e < WA * WA; e++) {
		uint at0 = (uint(e) * u_OCC + o) * u_TP + tl;
		float v = 0.0;
		for (uint s = 0u; s < uint(SPLITK); s++) v += mi[s * total + at0];
#if WINO_M == 4
		v *= S[e / WA] * S[e % WA];
#endif
		m[e] = v;
	}
	for (int q = 0; q < WA; q++) at(m, q, WA);     // down each column: Aᵀ m
	for (int r = 0; r < WINO_M; r++) at(m, r * WA, 1); // across the rows left: (Aᵀ m) A
#if HAS_BIAS
	float bias = bias_at(oc);
#endif
	for (uint dy = 0u; dy < uint(WINO_M); dy++) {
		uint oy = uint(WINO_M) * ty + dy;
		if (oy >= u_H) break;
#if OUTV > 1
		// The row's WINO_M outputs lie inside the output (its width is a
		// multiple of WINO_M) and start on a whole VT.
		uint oi = ((img * u_OC + oc) * u_H + oy) * u_W + uint(WINO_M) * tx;
		VT v;
		for (int dx = 0; dx < WINO_M; dx++) v[dx] = m[dy * uint(WA) + uint(dx)];
#if HAS_BIAS
		v += bias;
#endif
#if HAS_RES
		v += resv[oi / uint(OUTV)];
#endif
		yv[oi / uint(OUTV)] = v; // Y [N, OC, H, W]
		continue;
#endif
		for (uint dx = 0u; dx < uint(WINO_M); dx++) {
			uint ox = uint(WINO_M) * tx + dx;
			if (ox >= u_W) break;
			uint oi = ((img * u_OC + oc) * u_H + oy) * u_W + ox;
			float v = m[dy * uint(WA) + dx];
#if HAS_BIAS
			v += bias;
#endif
#if HAS_RES
			v += res[oi];
#endif
			y[oi] = v; // Y [N, OC, H, W]
		}
	}
}
