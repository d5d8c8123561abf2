// Attention backward, pass 2 of 3 (attention_backward.glsl explains the
// scheme): dQ = scale·dS K. A work group owns BR queries of one (batch,
// head) and streams the keys: per key tile it recomputes the scores and
// dP = dO Vᵀ, forms dS = P ∘ (dP − D) from the stats pass's L and D,
// stores dS in shared memory and multiplies it by the tile's keys, chunk
// by chunk of the head, into registers.
#include "attention_backward.glsl"

layout(std430, binding = 0) writeonly buffer DQbuf { float dq[]; };
layout(std430, binding = 1) readonly buffer Qbuf { float q_in[]; };
layout(std430, binding = 2) readonly buffer Kbuf { float k_in[]; };
layout(std430, binding = 3) readonly buffer Vbuf { float v_in[]; };
layout(std430, binding = 4) readonly buffer DObuf { float do_in[]; };
layout(std430, binding = 5) readonly buffer Sbuf { float stats[]; }; // [B, H, Nq, 2]

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return; // the whole group: barriers stay uniform
	g_lid = gl_LocalInvocationIndex;
	g_tx = g_lid % 16u;
	g_ty = g_lid / 16u;
	g_row3 = g_lid / 4u;
	uint qblocks = (u_Nq + BR - 1u) / BR;
	uint qb = gid % qblocks, bh = gid / qblocks;
	uint h = bh % u_H, b = bh / u_H;
	g_width = u_H * HEAD_DIM;
	uint q0 = qb * BR;
	uint qbase = b * u_Nq * g_width + h * HEAD_DIM; // q, dO, dQ [B, Nq, H*D]
	uint kbase = b * u_Nk * g_width + h * HEAD_DIM; // k, v [B, Nk, H*D]
	float zscale = u_scale * LOG2E;

	float L[TR], D[TR];
	for (uint i = 0u; i < TR; i++) {
		uint qi = q0 + g_ty + 16u * i;
		uint o = ((b * u_H + h) * u_Nq + min(qi, u_Nq - 1u)) * 2u;
		L[i] = stats[o];
		D[i] = stats[o + 1u];
	}
	vec4 acc[NCH]; // dQ row q0 + g_row3, dims 16*ch + 4*(lid%4) + (0..3)
	for (uint ch = 0u; ch < NCH; ch++) acc[ch] = vec4(0.0);
	uint kend = u_Nk;
#if CAUSAL
	kend = min(u_Nk, q0 + BR); // no later key is seen by the group's queries
#endif
	for (uint k0 = 0u; k0 < kend; k0 += BC) {
		float s[TR][TC], dp[TR][TC];
		for (uint i = 0u; i < TR; i++)
			for (uint j = 0u; j < TC; j++) {
				s[i][j] = 0.0;
				dp[i][j] = 0.0;
			}
		for (uint ch = 0u; ch < NCH; ch++) {
			LOAD_CHUNK(q_in, qbase, q0, u_Nq, BR, ch, OA)
			LOAD_CHUNK(do_in, qbase, q0, u_Nq, BR, ch, OB)
			LOAD_CHUNK(k_in, kbase, k0, u_Nk, BC, ch, SA)
			LOAD_CHUNK(v_in, kbase, k0, u_Nk, BC, ch, SB)
			memoryBarrierShared();
			barrier();
			chunkProducts(s, dp);
			barrier(); // read before the next chunk (or T) overwrites it
		}
		for (uint i = 0u; i < TR; i++) {
			uint qi = q0 + g_ty + 16u * i;
			for (uint j = 0u; j < TC; j++) {
				uint key = k0 + g_tx + 16u * j;
				bool seen = key < u_Nk && qi < u_Nq;
#if CAUSAL
				seen = seen && key <= qi;
#endif
				float p = seen ? exp2(s[i][j] * zscale - L[i]) : 0.0;
				s[i][j] = p * (dp[i][j] - D[i]); // dS
			}
		}
		storeT(s);
		for (uint ch = 0u; ch < NCH; ch++) {
			LOAD_CHUNK(k_in, kbase, k0, u_Nk, BC, ch, SA)
			memoryBarrierShared();
			barrier();
			tileProduct(acc[ch]);
			barrier(); // T and SA are read before they are overwritten
		}
	}

	uint qi = q0 + g_row3;
	if (g_row3 < BR && qi < u_Nq) {
		for (uint ch = 0u; ch < NCH; ch++) {
			for (uint c = 0u; c < 4u; c++) {
				uint d = 16u * ch + 4u * (g_lid % 4u) + c;
				if (d < HEAD_DIM) dq[qbase + qi * g_width + d] = u_scale * acc[ch][c];
			}
		}
	}
}
