// Batched transpose of the last two axes: x [B, R, C] -> y [B, C, R],
// through a 32x32 shared tile so reads and writes are both coalesced.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
uniform uint u_R, u_C;

shared float tile[32][33];

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint tc = (u_C + 31u) / 32u, tr = (u_R + 31u) / 32u;
	uint c0 = (gid % tc) * 32u, r0 = ((gid / tc) % tr) * 32u, b = gid / (tc * tr);
	uint lid = gl_LocalInvocationID.x;
	uint lx = lid % 32u, ly = lid / 32u; // 32 x 8 threads, 4 rows each
	for (uint k = 0u; k < 32u; k += 8u) {
		uint r = r0 + ly + k, c = c0 + lx;
		if (r < u_R && c < u_C) tile[ly + k][lx] = x[(b * u_R + r) * u_C + c];
	}
	memoryBarrierShared();
	barrier();
	for (uint k = 0u; k < 32u; k += 8u) {
		uint c = c0 + ly + k, r = r0 + lx;
		if (r < u_R && c < u_C) y[(b * u_C + c) * u_R + r] = tile[lx][ly + k];
	}
}
