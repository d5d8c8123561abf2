// GroupNorm: one work group per (image, group). A group's elements are
// contiguous: channels g*cpg .. g*cpg+cpg-1, each with S spatial values.
// Two passes (mean, then variance about it) for accuracy.
// Defines: AFFINE_F16, SILU, SHIFT (x + shift[n, c] is normalised,
// GroupNormParams.Shift).
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
#if AFFINE_F16
layout(std430, binding = 2) readonly buffer Gbuf { uint g_h[]; };
layout(std430, binding = 3) readonly buffer Bbuf { uint b_h[]; };
float gamma_at(uint i) { return half_at(g_h[i >> 1], i); }
float beta_at(uint i) { return half_at(b_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Gbuf { float g_f[]; };
layout(std430, binding = 3) readonly buffer Bbuf { float b_f[]; };
float gamma_at(uint i) { return g_f[i]; }
float beta_at(uint i) { return b_f[i]; }
#endif

#if SHIFT
layout(std430, binding = 4) readonly buffer Shiftbuf { float shift[]; }; // [R, C]
uniform uint u_shift0; // the first row's offset: ShiftRow * C
#endif

uniform uint u_G, u_C, u_S; // groups, channels, spatial size
uniform float u_eps;

uint g_base, g_c0; // the row's first element and first channel, n * C + g * cpg

// Element i of the row, with its shift.
float xin(uint i) {
#if SHIFT
	return x[g_base + i] + shift[u_shift0 + g_c0 + i / u_S];
#else
	return x[g_base + i];
#endif
}

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint cpg = u_C / u_G;
	uint n = gid / u_G, g = gid % u_G;
	uint len = cpg * u_S;
	g_c0 = n * u_C + g * cpg;
	uint base = g_c0 * u_S;
	g_base = base;

	float s = 0.0;
	for (uint i = lid; i < len; i += 256u) s += xin(i);
	float mean = reduce_sum(s, 0u) / float(len);
	float v = 0.0;
	for (uint i = lid; i < len; i += 256u) {
		float d = xin(i) - mean;
		v += d * d;
	}
	float rstd = inversesqrt(reduce_sum(v, 1u) / float(len) + u_eps);
	for (uint i = lid; i < len; i += 256u) {
		uint c = g * cpg + i / u_S;
		float o = (xin(i) - mean) * rstd * gamma_at(c) + beta_at(c);
#if SILU
		o = silu(o);
#endif
		y[base + i] = o;
	}
}
