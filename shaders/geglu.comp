// GEGLU: x [rows, 2F] -> y [rows, F] = value * gelu(gate), value the first
// half of each row and gate the second.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
uniform uint u_n, u_F;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint row = i / u_F, j = i % u_F;
	uint base = row * 2u * u_F;
	y[i] = x[base + j] * gelu(x[base + u_F + j]);
}
