// Softmax over the last axis: one work group per row. In place is allowed
// (each element is read before the group writes it).
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };

uniform uint u_cols;

void main() {
	uint row = group_id();
	if (row >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint base = row * u_cols;
	float m = -3.402823466e38;
	for (uint i = lid; i < u_cols; i += 256u) m = max(m, x[base + i]);
	m = reduce_max(m, 0u);
	float s = 0.0;
	for (uint i = lid; i < u_cols; i += 256u) s += exp(x[base + i] - m);
	float inv = 1.0 / reduce_sum(s, 1u);
	for (uint i = lid; i < u_cols; i += 256u) y[base + i] = exp(x[base + i] - m) * inv;
}
