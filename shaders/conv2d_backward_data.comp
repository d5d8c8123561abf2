// Conv2DBackwardData: the gradient of Conv2D with respect to its input, as
// an implicit GEMM (the transposed convolution), with no col2im buffer:
// for image g_batch,
//   dX[c, y*W+x] = sum over k = (oc, ky, kx) of Wᵀ[c, k] * dY[oc, oy, ox],
//   oy = (y + PH - ky) / SH, ox = (x + PW - kx) / SW,
// a term only where both divisions are exact and land inside dY.
// M = C, N = H*W, K = OC*KH*KW. Defines: W_F16.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer DXbuf { float dx[]; };
layout(std430, binding = 1) readonly buffer DYbuf { float dy[]; };
#if W_F16
layout(std430, binding = 2) readonly buffer Wbuf { uint w_h[]; };
float w_at(uint i) { return half_at(w_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Wbuf { float w_f[]; };
float w_at(uint i) { return w_f[i]; }
#endif

uniform uint u_M, u_N, u_K;     // C, H*W, OC*KH*KW
uniform int u_C, u_W;           // input channels, input width
uniform int u_OC, u_OH, u_OW;   // output channels and extent (dY's)
uniform int u_KH, u_KW;
uniform int u_SH, u_SW, u_PH, u_PW;

#define A_KCONTIG 1
#define B_NCONTIG 1
#define B_FETCH4 1

float loadA(uint m, uint k);
float loadB(uint k, uint n);
vec4 loadB4(uint k, uint n);
void storeC(uint m, uint n, float acc);

#include "gemm_core.glsl"

// A[c, (oc, r)] = W[oc, c, r], r = ky*KW + kx: W [OC, C, KH*KW].
float loadA(uint m, uint k) {
	uint khw = uint(u_KH * u_KW);
	uint oc = k / khw;
	uint r = k - oc * khw;
	return w_at((oc * uint(u_C) + m) * khw + r);
}

// dY[oc, oy, ox] for input pixel (y, x) and tap (ky, kx), or 0.
float dyTap(int plane, int y, int x, int ky, int kx) {
	int ty = y + u_PH - ky, tx = x + u_PW - kx;
	if (ty < 0 || tx < 0) return 0.0;
	int oy = ty / u_SH, ox = tx / u_SW;
	if (oy * u_SH != ty || ox * u_SW != tx || oy >= u_OH || ox >= u_OW) return 0.0;
	return dy[(plane + oy) * u_OW + ox];
}

// loadB4 decomposes k = (oc, ky, kx) and n = (y, x) once for four
// neighbouring input pixels.
vec4 loadB4(uint k, uint n) {
	vec4 v = vec4(0.0);
	if (k >= u_K) return v;
	int kk = int(k);
	int khw = u_KH * u_KW;
	int oc = kk / khw;
	int r = kk - oc * khw;
	int ky = r / u_KW;
	int kx = r - ky * u_KW;
	int nn = int(n);
	int y = nn / u_W;
	int x = nn - y * u_W;
	int plane = (int(g_batch) * u_OC + oc) * u_OH; // dY [N, OC, OH, OW]
	for (int j = 0; j < 4; j++) {
		if (nn + j >= int(u_N)) break;
		v[j] = dyTap(plane, y, x, ky, kx);
		if (++x == u_W) {
			x = 0;
			y++;
		}
	}
	return v;
}

float loadB(uint k, uint n) {
	int kk = int(k), nn = int(n);
	int khw = u_KH * u_KW;
	int oc = kk / khw;
	int r = kk - oc * khw;
	int ky = r / u_KW;
	int kx = r - ky * u_KW;
	int y = nn / u_W;
	int x = nn - y * u_W;
	return dyTap((int(g_batch) * u_OC + oc) * u_OH, y, x, ky, kx);
}

void storeC(uint m, uint n, float acc) {
	dx[(g_batch * u_M + m) * u_N + n] = acc; // dX [N, C, H*W]
}

void main() { gemm_tile(); }
