// Elementwise activation; in place allowed. Defines: OP (0 SiLU, 1 GELU,
// 2 QuickGELU).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
uniform uint u_n;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	float v = x[i];
#if OP == 0
	y[i] = silu(v);
#elif OP == 1
	y[i] = gelu(v);
#else
	y[i] = quick_gelu(v);
#endif
}
