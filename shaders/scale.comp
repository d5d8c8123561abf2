// y = x * s + c elementwise; in place allowed.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
uniform uint u_n;
uniform float u_s, u_c;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	y[i] = x[i] * u_s + u_c;
}
