// Conv2DBackwardWeight: the gradient of Conv2D with respect to its weight,
// as an implicit GEMM with no im2col buffer:
//   dW[oc, (c, ky, kx)] = sum over k = (n, oy, ox) of dY[n, oc, oy*OW+ox]
//                         * X[n, c, oy*SH - PH + ky, ox*SW - PW + kx],
// zero outside the image. M = OC, N = C*KH*KW, and the deep K = N*OH*OW
// is split (split-K): work-group slice g_batch sums k in
// [g_batch*u_K, (g_batch+1)*u_K) into its own [OC, C*KH*KW] partial, and
// the REDUCE variant adds the u_splits partials in a fixed order, so the
// result is deterministic (no float atomics). With one split the GEMM
// writes dW directly.
// Defines: REDUCE (the summing pass; TILE and BK only without it).
#include "common.glsl"

#if REDUCE
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DWbuf { float dw[]; };
layout(std430, binding = 1) readonly buffer Pbuf { float part[]; };
uniform uint u_n, u_splits;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	float s = 0.0;
	for (uint j = 0u; j < u_splits; j++) s += part[j * u_n + i]; // partials [splits, OC*C*KH*KW]
	dw[i] = s;
}
#else
layout(std430, binding = 0) writeonly buffer DWbuf { float dw[]; }; // dW or the partials
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
layout(std430, binding = 2) readonly buffer DYbuf { float dy[]; };

uniform uint u_M, u_N, u_K; // OC, C*KH*KW, k per split (a multiple of BK)
uniform uint u_Ktot;        // N*OH*OW
uniform int u_C, u_H, u_W;  // input channels and extent
uniform int u_KH, u_KW, u_OHW, u_OW;
uniform int u_SH, u_SW, u_PH, u_PW;

#define A_KCONTIG 1
#define B_NCONTIG 0
#define B_FETCH4 0

float loadA(uint m, uint k);
float loadB(uint k, uint n);
void storeC(uint m, uint n, float acc);

#include "gemm_core.glsl"

// A[oc, (n, p)] = dY[n, oc, p]: dY [N, OC, OH*OW].
float loadA(uint m, uint k) {
	uint kg = g_batch * u_K + k;
	if (kg >= u_Ktot) return 0.0;
	uint n = kg / uint(u_OHW);
	uint p = kg - n * uint(u_OHW);
	return dy[(n * u_M + m) * uint(u_OHW) + p];
}

// B[(n, oy, ox), (c, ky, kx)] = X[n, c, oy*SH - PH + ky, ox*SW - PW + kx].
float loadB(uint k, uint col) {
	uint kg = g_batch * u_K + k;
	if (kg >= u_Ktot) return 0.0;
	int kk = int(kg);
	int n = kk / u_OHW;
	int p = kk - n * u_OHW;
	int oy = p / u_OW;
	int ox = p - oy * u_OW;
	int khw = u_KH * u_KW;
	int cc = int(col);
	int c = cc / khw;
	int r = cc - c * khw;
	int ky = r / u_KW;
	int kx = r - ky * u_KW;
	int iy = oy * u_SH - u_PH + ky;
	int ix = ox * u_SW - u_PW + kx;
	if (iy < 0 || iy >= u_H || ix < 0 || ix >= u_W) return 0.0;
	return x[((n * u_C + c) * u_H + iy) * u_W + ix]; // X [N, C, H, W]
}

void storeC(uint m, uint n, float acc) {
	dw[(g_batch * u_M + m) * u_N + n] = acc; // [splits, OC, C*KH*KW]
}

void main() { gemm_tile(); }
#endif
