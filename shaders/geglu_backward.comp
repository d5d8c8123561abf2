// GEGLUBackward: x [rows, 2F] = [value | gate], y = value * gelu(gate);
// from dy [rows, F]: dvalue = dy * gelu(gate), dgate = dy * value *
// gelu'(gate). One thread per element of dy writes both halves.
#include "common.glsl"
#include "grad.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DXbuf { float dx[]; };
layout(std430, binding = 1) readonly buffer DYbuf { float dy[]; };
layout(std430, binding = 2) readonly buffer Xbuf { float x[]; };
uniform uint u_n, u_F;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint row = i / u_F, j = i % u_F;
	uint base = row * 2u * u_F;
	float v = x[base + j], g = x[base + u_F + j], d = dy[i];
	dx[base + j] = d * gelu(g);
	dx[base + u_F + j] = d * v * gelu_grad(g);
}
