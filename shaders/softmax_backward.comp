// SoftmaxBackward over the last axis: dx = y * (dy - Σ dy*y), from the
// forward output y. One work group per row.
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DXbuf { float dx[]; };
layout(std430, binding = 1) readonly buffer DYbuf { float dy[]; };
layout(std430, binding = 2) readonly buffer Ybuf { float y[]; };
uniform uint u_cols;

void main() {
	uint row = group_id();
	if (row >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint base = row * u_cols;
	float s = 0.0;
	for (uint i = lid; i < u_cols; i += 256u) s += dy[base + i] * y[base + i];
	s = reduce_sum(s, 0u);
	for (uint i = lid; i < u_cols; i += 256u) dx[base + i] = y[base + i] * (dy[base + i] - s);
}
