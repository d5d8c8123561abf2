// Nearest-neighbour x2 upsampling: x [N*C, H, W] -> y [N*C, 2H, 2W].
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
uniform uint u_n, u_H, u_W;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint ow = 2u * u_W, oh = 2u * u_H;
	uint ox = i % ow, oy = (i / ow) % oh, nc = i / (ow * oh);
	y[i] = x[(nc * u_H + oy / 2u) * u_W + ox / 2u];
}
