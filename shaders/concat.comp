// Concatenation along axis 1: per outer index n, a's Ia elements then b's
// Ib elements.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Abuf { float a[]; };
layout(std430, binding = 2) readonly buffer Bbuf { float b[]; };
uniform uint u_n, u_Ia, u_Ib;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint row = u_Ia + u_Ib;
	uint n = i / row, r = i % row;
	y[i] = r < u_Ia ? a[n * u_Ia + r] : b[n * u_Ib + (r - u_Ia)];
}
