// Elementwise activation; in place allowed. Defines: OP (0 SiLU, 1 GELU,
// 2 QuickGELU, 3 ReLU, 4 Tanh, 5 Exp).
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
#elif OP == 2
	y[i] = quick_gelu(v);
#elif OP == 3
	y[i] = max(v, 0.0);
#elif OP == 4
	y[i] = tanh_safe(v);
#else
	y[i] = exp(v);
#endif
}
