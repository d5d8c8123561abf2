// AdamW, one step in place (torch.optim.AdamW):
//   g = grad * gscale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
//   p -= lr * (wd * p + (m / bc1) / (sqrt(v / bc2) + eps))
// with the bias corrections bc1 = 1 - b1^t, bc2 = 1 - b2^t from the host.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Pbuf { float param[]; };
layout(std430, binding = 1) readonly buffer Gbuf { float grad[]; };
layout(std430, binding = 2) buffer Mbuf { float m1[]; };
layout(std430, binding = 3) buffer Vbuf { float m2[]; };
uniform uint u_n;
uniform float u_lr, u_b1, u_b2, u_eps, u_wd, u_bc1, u_bc2, u_gscale;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	float g = grad[i] * u_gscale;
	float m = u_b1 * m1[i] + (1.0 - u_b1) * g;
	float v = u_b2 * m2[i] + (1.0 - u_b2) * (g * g);
	m1[i] = m;
	m2[i] = v;
	float p = param[i];
	param[i] = p - u_lr * (u_wd * p + (m / u_bc1) / (sqrt(v / u_bc2) + u_eps));
}
