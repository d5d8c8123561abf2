// Winograd's input transform (see winograd_gemm.comp), F(2x2, 3x3) or
// F(4x4, 3x3) by WINO_M (the output tile's side, 2 or 4):
//
//   V[ξ][c][t] = (Bᵀ d B)[i][j],  ξ = (WINO_M + 2)·i + j,
//   F(2x2, 3x3): Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   F(4x4, 3x3): Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
//                      0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//
// where d is the (WINO_M+2)² input patch of channel c around output tile
// t (its top-left pixel at (WINO_M·ty - 1, WINO_M·tx - 1); zero outside
// the image, which is the convolution's padding of 1). The invocations
// cover the chunk's tiles t0 .. t0+TC-1 rounded up to TP (a multiple of
// 4) and channels up to CP; the padding is written as zeros so the GEMM
// reads whole vec4s.
// Defines: WINO_M.
#include "common.glsl"

#define WA (WINO_M + 2) // the input tile's side

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Vbuf { float v[]; }; // V [WA², CP, TP]
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };  // X [N, C, H, W]

uniform uint u_C, u_CP;
uniform int u_H, u_W;      // input extent
uniform uint u_TW, u_TT;   // tiles per row, tiles per image
uniform uint u_t0, u_TC, u_TP;
uniform uint u_n;          // CP * TP

// bt applies Bᵀ to the WA values p[o], p[o + s], p[o + 2s], ... in place.
void bt(inout float p[WA * WA], int o, int s) {
#if WINO_M == 2
	float a = p[o], b = p[o + s], c = p[o + 2 * s], d = p[o + 3 * s];
	p[o] = a - c;
	p[o + s] = b + c;
	p[o + 2 * s] = c - b;
	p[o + 3 * s] = b - d;
#else
	float a = p[o], b = p[o + s], c = p[o + 2 * s], d = p[o + 3 * s], e = p[o + 4 * s], f = p[o + 5 * s];
	p[o] = (4.0 * a - 5.0 * c) + e;
	p[o + s] = (d + e) - 4.0 * (b + c);
	p[o + 2 * s] = 4.0 * (b - c) + (e - d);
	p[o + 3 * s] = 2.0 * (d - b) + (e - c);
	p[o + 4 * s] = 2.0 * (b - d) + (e - c);
	p[o + 5 * s] = (4.0 * b - 5.0 * d) + f;
#endif
}

void main() {
	uint idx = group_id() * 256u + gl_LocalInvocationID.x;
	if (idx >= u_n) return;
	uint tl = idx % u_TP, c = idx / u_TP;
	float d[WA * WA];
	for (int e = 0; e < WA * WA; e++) d[e] = 0.0;
	if (c < u_C && tl < u_TC) {
		uint t = u_t0 + tl, img = t / u_TT, tt = t - img * u_TT;
		int ty = int(tt / u_TW), tx = int(tt % u_TW);
		int plane = int((img * u_C + c)) * u_H * u_W;
		for (int py = 0; py < WA; py++) {
			int iy = WINO_M * ty - 1 + py;
			for (int px = 0; px < WA; px++) {
				int ix = WINO_M * tx - 1 + px;
				if (iy >= 0 && iy < u_H && ix >= 0 && ix < u_W) d[py * WA + px] = x[plane + iy * u_W + ix];
			}
		}
	}
	for (int r = 0; r < WA; r++) bt(d, r * WA, 1); // across each row: d Bᵀ's transpose
	for (int q = 0; q < WA; q++) bt(d, q, WA);     // down each column: Bᵀ (d B)
	for (int e = 0; e < WA * WA; e++) v[(uint(e) * u_CP + c) * u_TP + tl] = d[e];
}
