// SumTo: y[o] = Σ_r x[koff(o) + roff(r)], the sum over the axes numpy
// broadcasting would stretch. The host collapses x's axes into up to 4
// kept axes (u_kext, u_kstr: extents and element strides, outer first,
// padded on the left with extent 1) and up to 4 reduced ones (u_rext,
// u_rstr), so the output has u_M elements, each a sum of u_R terms.
// Large reductions are split into u_S slices of u_chunk terms; each slice
// writes a partial sum that a second dispatch (the same shader on the
// partials) adds up, in a fixed order, so results are deterministic.
// Defines: MODE 0: one work group per (output, slice), its threads
// striding over the terms (x's innermost axis is reduced, so the reads
// are contiguous); partials [M, S]. MODE 1: 32 consecutive outputs per
// group, each summed by 8 threads (x's innermost axis is kept); partials
// [S, M]. NK, NR: how many of the 4 kept and reduced axes are used.
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };

uniform uint u_M, u_R, u_S, u_chunk;
uniform int u_kext[4], u_kstr[4], u_rext[4], u_rstr[4];

uint kept_offset(uint o) {
#if NK == 1
	return o * uint(u_kstr[3]); // o < M: no division
#else
	uint off = 0u;
	for (int d = 3; d >= 4 - NK; d--) {
		uint e = uint(u_kext[d]);
		off += (o % e) * uint(u_kstr[d]);
		o /= e;
	}
	return off;
#endif
}

uint reduced_offset(uint r) {
#if NR == 1
	return r * uint(u_rstr[3]); // r < R: no division
#else
	uint off = 0u;
	for (int d = 3; d >= 4 - NR; d--) {
		uint e = uint(u_rext[d]);
		off += (r % e) * uint(u_rstr[d]);
		r /= e;
	}
	return off;
#endif
}

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
#if MODE == 0
	uint o = gid / u_S, s = gid % u_S;
	uint base = kept_offset(o);
	uint r0 = s * u_chunk, r1 = min(r0 + u_chunk, u_R);
	// Four independent sums keep four loads in flight per thread.
	float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
	uint r = r0 + lid;
	for (; r + 768u < r1; r += 1024u) {
		a0 += x[base + reduced_offset(r)];
		a1 += x[base + reduced_offset(r + 256u)];
		a2 += x[base + reduced_offset(r + 512u)];
		a3 += x[base + reduced_offset(r + 768u)];
	}
	for (; r < r1; r += 256u) a0 += x[base + reduced_offset(r)];
	float acc = reduce_sum((a0 + a1) + (a2 + a3), 0u);
	if (lid == 0u) y[o * u_S + s] = acc;
#else
	// 32 consecutive outputs per group (a warp's contiguous 128 bytes of
	// a row), 8 lanes of threads taking every 8th term of the slice; the
	// lanes' sums are added in shared memory in a fixed order.
	uint col = lid % 32u, lane = lid / 32u;
	uint blocks = (u_M + 31u) / 32u;
	uint o = (gid % blocks) * 32u + col, s = gid / blocks;
	uint base = kept_offset(min(o, u_M - 1u));
	uint r0 = s * u_chunk, r1 = min(r0 + u_chunk, u_R);
	float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
	uint r = r0 + lane;
	if (o < u_M) {
		for (; r + 24u < r1; r += 32u) {
			a0 += x[base + reduced_offset(r)];
			a1 += x[base + reduced_offset(r + 8u)];
			a2 += x[base + reduced_offset(r + 16u)];
			a3 += x[base + reduced_offset(r + 24u)];
		}
		for (; r < r1; r += 8u) a0 += x[base + reduced_offset(r)];
	}
	red_buf[0][lid] = (a0 + a1) + (a2 + a3);
	memoryBarrierShared();
	barrier();
	if (lane == 0u && o < u_M) {
		float acc = 0.0;
		for (uint l = 0u; l < 8u; l++) acc += red_buf[0][l * 32u + col];
		y[s * u_M + o] = acc;
	}
#endif
}
