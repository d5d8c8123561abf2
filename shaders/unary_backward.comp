// UnaryBackward: dx = dy * f'(x) for the activation f, from the forward
// input x. Defines: OP (0 SiLU, 1 GELU, 2 QuickGELU, 3 ReLU, 4 Tanh,
// 5 Exp), as unary.comp.
#include "common.glsl"
#include "grad.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DXbuf { float dx[]; };
layout(std430, binding = 1) readonly buffer DYbuf { float dy[]; };
layout(std430, binding = 2) readonly buffer Xbuf { float x[]; };
uniform uint u_n;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	float v = x[i];
#if OP == 0
	float s = sigmoid(v);
	float d = s * (1.0 + v * (1.0 - s));
#elif OP == 1
	float d = gelu_grad(v);
#elif OP == 2
	float s = sigmoid(1.702 * v);
	float d = s + 1.702 * v * s * (1.0 - s);
#elif OP == 3
	float d = v > 0.0 ? 1.0 : 0.0;
#elif OP == 4
	float t = tanh_safe(v);
	float d = 1.0 - t * t;
#else
	float d = exp(v);
#endif
	dx[i] = dy[i] * d;
}
