// LayerNorm over the last axis: one work group per row; two passes.
// Defines: AFFINE_F16.
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

uniform uint u_cols;
uniform float u_eps;

void main() {
	uint row = group_id();
	if (row >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint base = row * u_cols;
	float s = 0.0;
	for (uint i = lid; i < u_cols; i += 256u) s += x[base + i];
	float mean = reduce_sum(s, 0u) / float(u_cols);
	float v = 0.0;
	for (uint i = lid; i < u_cols; i += 256u) {
		float d = x[base + i] - mean;
		v += d * d;
	}
	float rstd = inversesqrt(reduce_sum(v, 1u) / float(u_cols) + u_eps);
	for (uint i = lid; i < u_cols; i += 256u)
		y[base + i] = (x[base + i] - mean) * rstd * gamma_at(i) + beta_at(i);
}
