// Winograd F(2x2, 3x3)'s input transform (see winograd_gemm.comp):
//
//   V[ξ][c][t] = (Bᵀ d B)[i][j],  ξ = 4i + j,
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//
// where d is the 4x4 input patch of channel c whose centre 2x2 is output
// tile t (its top-left pixel at (2·ty - 1, 2·tx - 1); zero outside the
// image, which is the convolution's padding of 1). The invocations cover
// the chunk's tiles t0 .. t0+TC-1 rounded up to TP (a multiple of 4) and
// channels up to CP; the padding is written as zeros so the GEMM reads
// whole vec4s.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Vbuf { float v[]; }; // V [16, CP, TP]
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };  // X [N, C, H, W]

uniform uint u_C, u_CP;
uniform int u_H, u_W;      // input extent
uniform uint u_TW, u_TT;   // tiles per row, tiles per image
uniform uint u_t0, u_TC, u_TP;
uniform uint u_n;          // CP * TP

// Row r of Bᵀ has two non-zero entries, ±1: S0[r] at R0[r], S1[r] at R1[r].
const int R0[4] = int[](0, 1, 1, 1);
const int R1[4] = int[](2, 2, 2, 3);
const float S0[4] = float[](1.0, 1.0, -1.0, 1.0);
const float S1[4] = float[](-1.0, 1.0, 1.0, -1.0);

void main() {
	uint idx = group_id() * 256u + gl_LocalInvocationID.x;
	if (idx >= u_n) return;
	uint tl = idx % u_TP, c = idx / u_TP;
	float d[16];
	for (uint e = 0u; e < 16u; e++) d[e] = 0.0;
	if (c < u_C && tl < u_TC) {
		uint t = u_t0 + tl, img = t / u_TT, tt = t - img * u_TT;
		int ty = int(tt / u_TW), tx = int(tt % u_TW);
		int plane = int((img * u_C + c)) * u_H * u_W;
		for (int py = 0; py < 4; py++) {
			int iy = 2 * ty - 1 + py;
			for (int px = 0; px < 4; px++) {
				int ix = 2 * tx - 1 + px;
				if (iy >= 0 && iy < u_H && ix >= 0 && ix < u_W) d[py * 4 + px] = x[plane + iy * u_W + ix];
			}
		}
	}
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) {
			// Bᵀ's row j across the patch's rows R0[i] and R1[i], then row i down.
			float a = S0[j] * d[R0[i] * 4 + R0[j]] + S1[j] * d[R0[i] * 4 + R1[j]];
			float b = S0[j] * d[R1[i] * 4 + R0[j]] + S1[j] * d[R1[i] * 4 + R1[j]];
			v[((4 * i + j) * u_CP + c) * u_TP + tl] = S0[i] * a + S1[i] * b;
		}
}
