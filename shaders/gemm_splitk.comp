// Finishes a split-K GEMM (matmul.comp or conv2d.comp with SPLITK > 1):
// dst[i] = alpha * sum over s of part[s * u_n + i] + bias[(i / u_bdiv) %
// u_bmod] (+ res[i]), the partial sums added in a fixed order
// (deterministic).
// MatMul's bias runs along the last axis (bdiv 1, bmod N), Conv2D's
// along the channel (bdiv OH*OW, bmod OC). Defines: SPLITK, HAS_BIAS,
// BIAS_F16, HAS_RES and RES_BINDING (the residual, dst's shape, possibly
// dst itself), GEGLU (MatMul's: the partials' columns are (value, gate)
// pairs, dst[i] = value · gelu(gate) of the pair at 2i, 2i+1, and u_n
// counts dst's elements, half a partial's), V4 (u_n a multiple of 4: each
// invocation finishes 4 neighbouring elements through vec4 loads and
// stores, each element's partials still added in the same order).
#include "common.glsl"

#ifndef GEGLU
#define GEGLU 0
#endif

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Pbuf { float part[]; };
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

uniform uint u_n; // elements of dst
uniform float u_alpha;
uniform uint u_bdiv, u_bmod;

// The sum of element i's partials, scaled, with its bias.
float finish(uint i, uint stride) {
	float s = 0.0;
	for (uint k = 0u; k < uint(SPLITK); k++) s += part[k * stride + i];
	s *= u_alpha;
#if HAS_BIAS
	s += bias_at((i / u_bdiv) % u_bmod);
#endif
	return s;
}

#if V4
layout(std430, binding = 0) writeonly buffer Ybuf4 { vec4 y4[]; };
layout(std430, binding = 1) readonly buffer Pbuf4 { vec4 part4[]; };
#if HAS_RES
layout(std430, binding = RES_BINDING) readonly buffer Resbuf4 { vec4 res4[]; };
#endif

// finish for elements i..i+3 (i a multiple of 4, and stride one).
vec4 finish4(uint i, uint stride) {
	vec4 s = vec4(0.0);
	for (uint k = 0u; k < uint(SPLITK); k++) s += part4[(k * stride + i) >> 2];
	s *= u_alpha;
#if HAS_BIAS
	for (uint j = 0u; j < 4u; j++) s[j] += bias_at(((i + j) / u_bdiv) % u_bmod);
#endif
	return s;
}

void main() {
	uint i = 4u * (group_id() * 256u + gl_LocalInvocationID.x);
	if (i >= u_n) return;
#if GEGLU
	// Elements i..i+3 take the pairs at 2i .. 2i+7: values and gates
	// alternate in the two vec4s.
	vec4 a = finish4(2u * i, 2u * u_n), b = finish4(2u * i + 4u, 2u * u_n);
	y4[i >> 2] = vec4(a.x * gelu(a.y), a.z * gelu(a.w), b.x * gelu(b.y), b.z * gelu(b.w));
#else
	vec4 s = finish4(i, u_n);
#if HAS_RES
	s += res4[i >> 2];
#endif
	y4[i >> 2] = s;
#endif
}
#else
void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
#if GEGLU
	y[i] = finish(2u * i, 2u * u_n) * gelu(finish(2u * i + 1u, 2u * u_n));
#else
	float s = finish(i, u_n);
#if HAS_RES
	s += res[i];
#endif
	y[i] = s;
#endif
}
#endif
