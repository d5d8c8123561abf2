// GroupNorm for groups too large for one work group (groupnorm.comp),
// pass 1 of 2: the statistics of one chunk of a group. Work group
// row * u_P + p reads elements [p * u_chunk, min(u_len, (p + 1) * u_chunk))
// of row (image n, group g) = n * G + g, whose u_len = cpg * S elements
// are contiguous, and writes the chunk's mean and its sum of squared
// deviations about that mean (two passes over the chunk, for accuracy).
// groupnorm_apply.comp combines the chunks of a row (Chan et al.'s
// pairwise update) and normalises. Defines: SHIFT (x + shift[n, c],
// GroupNormParams.Shift).
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Pbuf { vec2 part[]; }; // [rows, P] (mean, M2)
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };

uniform uint u_len, u_chunk, u_P;
#if SHIFT
layout(std430, binding = 2) readonly buffer Shiftbuf { float shift[]; }; // [R, C]
uniform uint u_S;      // spatial size
uniform uint u_shift0; // the first row's offset: ShiftRow * C
#endif

// Element i of x [N, C, S], with its shift: shift[n, c] is shift[u_shift0 + i / S].
float xin(uint i) {
#if SHIFT
	return x[i] + shift[u_shift0 + i / u_S];
#else
	return x[i];
#endif
}

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint row = gid / u_P, p = gid % u_P;
	uint begin = row * u_len + p * u_chunk;
	uint end = row * u_len + min(u_len, (p + 1u) * u_chunk);

	float s = 0.0;
	for (uint i = begin + lid; i < end; i += 256u) s += xin(i);
	float mean = reduce_sum(s, 0u) / float(end - begin);
	float v = 0.0;
	for (uint i = begin + lid; i < end; i += 256u) {
		float d = xin(i) - mean;
		v += d * d;
	}
	float m2 = reduce_sum(v, 1u);
	if (lid == 0u) part[gid] = vec2(mean, m2);
}
