// Upsample2xBackward: dx [N*C, H, W] = the sum of each 2x2 block of
// dy [N*C, 2H, 2W]. One thread per element of dx.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DXbuf { float dx[]; };
layout(std430, binding = 1) readonly buffer DYbuf { float dy[]; };
uniform uint u_n, u_H, u_W;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint w = i % u_W, h = (i / u_W) % u_H, nc = i / (u_W * u_H);
	uint ow = 2u * u_W;
	uint o = (nc * 2u * u_H + 2u * h) * ow + 2u * w;
	dx[i] = (dy[o] + dy[o + 1u]) + (dy[o + ow] + dy[o + ow + 1u]);
}
