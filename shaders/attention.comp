// Multi-head attention, softmax(q kᵀ * scale) v, flash style: the score
// matrix is never stored. One work group holds 64 queries of one (batch,
// head); each thread owns one query, its running max, normaliser and output
// row. Keys and values stream through shared memory KT at a time; each
// tile's scores rescale the running output once (online softmax).
// Defines: HEAD_DIM, KT (keys per tile), CAUSAL.
#include "common.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Obuf { float o_out[]; };
layout(std430, binding = 1) readonly buffer Qbuf { float q_in[]; };
layout(std430, binding = 2) readonly buffer Kbuf { float k_in[]; };
layout(std430, binding = 3) readonly buffer Vbuf { float v_in[]; };

uniform uint u_Nq, u_Nk, u_H;
uniform float u_scale;

shared float Ks[KT][HEAD_DIM];
shared float Vs[KT][HEAD_DIM];

const float LOG2E = 1.4426950408889634;
const float NEG = -1.0e30; // finite "minus infinity": NEG - NEG is 0, not NaN

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint qblocks = (u_Nq + 63u) / 64u;
	uint qb = gid % qblocks;
	uint h = (gid / qblocks) % u_H;
	uint b = gid / (qblocks * u_H);
	uint width = u_H * HEAD_DIM;
	uint qi = qb * 64u + lid;
	bool valid = qi < u_Nq;

	float q[HEAD_DIM];
	float o[HEAD_DIM];
	uint qbase = (b * u_Nq + min(qi, u_Nq - 1u)) * width + h * HEAD_DIM; // q [B, Nq, H*D]
	for (uint d = 0u; d < HEAD_DIM; d++) {
		q[d] = q_in[qbase + d] * (u_scale * LOG2E); // scores in log2 units: exp2 below
		o[d] = 0.0;
	}
	float m = NEG, l = 0.0;

	uint kend = u_Nk;
#if CAUSAL
	kend = min(u_Nk, qb * 64u + 64u); // the same for the whole group
#endif
	for (uint k0 = 0u; k0 < kend; k0 += KT) {
		for (uint e = lid; e < KT * HEAD_DIM; e += 64u) {
			uint j = e / HEAD_DIM, d = e % HEAD_DIM;
			uint key = k0 + j;
			uint src = (b * u_Nk + key) * width + h * HEAD_DIM + d; // k, v [B, Nk, H*D]
			Ks[j][d] = key < u_Nk ? k_in[src] : 0.0;
			Vs[j][d] = key < u_Nk ? v_in[src] : 0.0;
		}
		memoryBarrierShared();
		barrier();

		float s[KT];
		float mt = m;
		for (uint j = 0u; j < KT; j++) {
			uint key = k0 + j;
			bool seen = key < u_Nk;
#if CAUSAL
			seen = seen && key <= qi;
#endif
			float dot = 0.0;
			for (uint d = 0u; d < HEAD_DIM; d++) dot += q[d] * Ks[j][d];
			s[j] = seen ? dot : NEG;
			mt = max(mt, s[j]);
		}
		float corr = exp2(m - mt);
		l *= corr;
		for (uint d = 0u; d < HEAD_DIM; d++) o[d] *= corr;
		for (uint j = 0u; j < KT; j++) {
			float p = s[j] > 0.5 * NEG ? exp2(s[j] - mt) : 0.0;
			l += p;
			for (uint d = 0u; d < HEAD_DIM; d++) o[d] += p * Vs[j][d];
		}
		m = mt;
		barrier(); // the tile is consumed before the next overwrites it
	}
	if (!valid) return;
	float inv = 1.0 / l;
	uint obase = (b * u_Nq + qi) * width + h * HEAD_DIM;
	for (uint d = 0u; d < HEAD_DIM; d++) o_out[obase + d] = o[d] * inv;
}
