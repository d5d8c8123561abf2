// Conv2D as an implicit GEMM, with no im2col buffer: for image g_batch,
// C[oc, oy*OW+ox] = sum over k = (c, ky, kx) of W[oc, k] * X[c, iy, ix],
// iy = oy*SH - PH + ky, ix = ox*SW - PW + kx (zero outside the image).
// Defines: W_F16, HAS_BIAS, BIAS_F16, HAS_RES and RES_BINDING (a residual
// added last, at that binding), CONV1X1 (a 1x1 kernel, stride 1, no
// padding: B is the input itself, [C, H*W]), KSQ and OWC (below), and the
// core's tile (TILE or BM/BN, BK, SPLITK). With SPLITK > 1, binding 0 is
// the scratch buffer [SPLITK, N, OC, OH*OW] of raw partial sums;
// gemm_splitk.comp adds them, the bias and the residual. FOLDN: the
// images run as one GEMM whose columns are (image, oy, ox), u_OHW output
// pixels an image (a multiple of 4), so small feature maps fill whole
// 128-wide tiles; g_batch is then 0.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
#if W_F16
layout(std430, binding = 2) readonly buffer Wbuf { uint w_h[]; };
float w_at(uint i) { return half_at(w_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Wbuf { float w_f[]; };
float w_at(uint i) { return w_f[i]; }
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

uniform uint u_M, u_N, u_K;   // OC, OH*OW (N*OH*OW with FOLDN), C*KH*KW
uniform int u_C, u_H, u_W;    // input channels and extent
uniform int u_KH, u_KW, u_OW; // kernel extent, output width
uniform int u_SH, u_SW, u_PH, u_PW;
#ifndef FOLDN
#define FOLDN 0
#endif
#if FOLDN && !N4
#error FOLDN needs whole vec4s of pixels (N4)
#endif
#if FOLDN
uniform uint u_OHW;
#define OHW_ u_OHW
#else
#define OHW_ u_N
#endif

// KSQ > 0: a square KSQ x KSQ kernel and OWC > 0: the output width, as
// constants, so the gather's divisions by them compile to multiplications.
#ifndef KSQ
#define KSQ 0
#endif
#ifndef OWC
#define OWC 0
#endif
#if KSQ > 0
#define KH_ KSQ
#define KW_ KSQ
#else
#define KH_ u_KH
#define KW_ u_KW
#endif
#if OWC > 0
#define OW_ OWC
#else
#define OW_ u_OW
#endif

#define A_KCONTIG 1
#define B_NCONTIG 1
#define B_FETCH4 1
// F16 weights: two words give four halves of a row. Where the row length
// (K4) or the feature map (N4, 1x1 kernels) is a multiple of 4, the rows
// start on whole vec4s and load through a vec4 (F32) or uvec2 (F16) view.
#define A_FETCH4 (W_F16 != 0 || K4 != 0)
#if K4
#if W_F16
layout(std430, binding = 2) readonly buffer Wbuf2 { uvec2 w_h2[]; };
vec4 w4_at(uint i) { // W[i..i+3], i a multiple of 4
	uvec2 h = w_h2[i >> 2];
	return vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
}
#else
layout(std430, binding = 2) readonly buffer Wbuf4 { vec4 w4[]; };
vec4 w4_at(uint i) { return w4[i >> 2]; }
#endif
#endif
#if CONV1X1 && N4
layout(std430, binding = 1) readonly buffer Xbuf4 { vec4 x4[]; };
#endif
#if SPLITK > 1
uniform uint u_partStride; // elements per partial: N * OC * OH*OW
#endif

float loadA(uint m, uint k);
float loadB(uint k, uint n);
vec4 loadB4(uint k, uint n);
vec4 loadA4(uint m, uint k);
void storeC(uint m, uint n, float acc);

#include "gemm_core.glsl"

// image splits GEMM column n into its image and its pixel (n becomes the
// pixel).
uint image(inout uint n) {
#if FOLDN
	uint img = n / u_OHW;
	n -= img * u_OHW;
	return img;
#else
	return g_batch;
#endif
}

float loadA(uint m, uint k) {
	return w_at(m * u_K + k); // W [OC, C*KH*KW]
}

#if A_FETCH4
vec4 loadA4(uint m, uint k) {
	uint i = m * u_K + k;
#if K4
	if (k >= u_K) return vec4(0.0);
	return w4_at(i);
#else
	if ((i & 1u) == 0u && k + 3u < u_K) {
		uint h = i >> 1;
		return vec4(unpackHalf2x16(w_h[h]), unpackHalf2x16(w_h[h + 1u]));
	}
	vec4 v = vec4(0.0);
	for (uint j = 0u; j < 4u; j++)
		if (k + j < u_K) v[j] = w_at(i + j);
	return v;
#endif
}
#endif

#if CONV1X1
float loadB(uint k, uint n) {
	uint img = image(n);
	return x[(img * u_K + k) * OHW_ + n]; // X [N, C, H*W]
}

vec4 loadB4(uint k, uint n) {
#if N4
	if (!g_interior && (k >= u_K || n >= u_N)) return vec4(0.0);
	uint img = image(n);
	return x4[((img * u_K + k) * OHW_ + n) >> 2];
#else
	if (k >= u_K) return vec4(0.0);
	uint base = (g_batch * u_K + k) * u_N;
	if (n + 3u < u_N) return vec4(x[base + n], x[base + n + 1u], x[base + n + 2u], x[base + n + 3u]);
	vec4 v = vec4(0.0);
	for (uint j = 0u; j < 4u; j++)
		if (n + j < u_N) v[j] = x[base + n + j];
	return v;
#endif
}
#else
// loadB4 decomposes k = (c, ky, kx) and n = (oy, ox) once for four
// neighbouring outputs; integer division dominates the loads otherwise.
vec4 loadB4(uint k, uint n) {
	vec4 v = vec4(0.0);
	if (k >= u_K) return v;
	int end = int(u_N) - int(n); // columns left in the GEMM
	uint img = image(n);
	int kk = int(k);
	int khw = KH_ * KW_;
	int c = kk / khw;
	int r = kk - c * khw;
	int ky = r / KW_;
	int kx = r - ky * KW_;
	int nn = int(n);
	int oy = nn / OW_;
	int ox = nn - oy * OW_;
	int plane = (int(img) * u_C + c) * u_H;
	for (int j = 0; j < 4; j++) {
		if (j >= end) break;
		int iy = oy * u_SH - u_PH + ky;
		int ix = ox * u_SW - u_PW + kx;
		if (iy >= 0 && iy < u_H && ix >= 0 && ix < u_W) v[j] = x[(plane + iy) * u_W + ix];
		if (++ox == OW_) {
			ox = 0;
			oy++;
		}
	}
	return v;
}

float loadB(uint k, uint n) {
	uint img = image(n);
	int kk = int(k), nn = int(n);
	int khw = KH_ * KW_;
	int c = kk / khw;
	int r = kk - c * khw;
	int ky = r / KW_;
	int kx = r - ky * KW_;
	int oy = nn / OW_;
	int ox = nn - oy * OW_;
	int iy = oy * u_SH - u_PH + ky;
	int ix = ox * u_SW - u_PW + kx;
	if (iy < 0 || iy >= u_H || ix < 0 || ix >= u_W) return 0.0;
	return x[((int(img) * u_C + c) * u_H + iy) * u_W + ix]; // X [N, C, H, W]
}
#endif

void storeC(uint m, uint n, float acc) {
	uint img = image(n);
#if SPLITK > 1
	y[g_split * u_partStride + (img * u_M + m) * OHW_ + n] = acc;
#else
	uint i = (img * u_M + m) * OHW_ + n;
#if HAS_BIAS
	acc += bias_at(m);
#endif
#if HAS_RES
	acc += res[i];
#endif
	y[i] = acc; // Y [N, OC, OH*OW]
#endif
}

void main() { gemm_tile(); }
