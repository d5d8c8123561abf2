// Split (Concat's inverse), one output at a time: for each outer index n,
// y's u_I elements are x's row n (u_row elements) from u_off on.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
uniform uint u_n, u_I, u_row, u_off;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint n = i / u_I, r = i % u_I;
	y[i] = x[n * u_row + u_off + r];
}
