// Attention backward, pass 1 of 3 (attention_backward.glsl explains the
// scheme): for each query row, L = log2 Σ_j exp2(z_j) with z = scale·
// log2(e)·q·k (masked keys left out) and D = Σ_j P_j (dO·v_j), which is
// Σ_d dO_d O_d without O. A work group owns BR queries of one (batch,
// head) and streams the keys; each thread keeps an online maximum, sum
// and P-weighted dP sum over its own key columns, and the 16 threads of
// a row combine theirs at the end.
// Output: stats [B, H, Nq, 2] = (L, D).
#include "attention_backward.glsl"

layout(std430, binding = 0) writeonly buffer Sbuf { float stats[]; };
layout(std430, binding = 1) readonly buffer Qbuf { float q_in[]; };
layout(std430, binding = 2) readonly buffer Kbuf { float k_in[]; };
layout(std430, binding = 3) readonly buffer Vbuf { float v_in[]; };
layout(std430, binding = 4) readonly buffer DObuf { float do_in[]; };

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return; // the whole group: barriers stay uniform
	g_lid = gl_LocalInvocationIndex;
	g_tx = g_lid % 16u;
	g_ty = g_lid / 16u;
	uint qblocks = (u_Nq + BR - 1u) / BR;
	uint qb = gid % qblocks, bh = gid / qblocks;
	uint h = bh % u_H, b = bh / u_H;
	g_width = u_H * HEAD_DIM;
	uint q0 = qb * BR;
	uint qbase = b * u_Nq * g_width + h * HEAD_DIM; // q, dO [B, Nq, H*D]
	uint kbase = b * u_Nk * g_width + h * HEAD_DIM; // k, v [B, Nk, H*D]
	float zscale = u_scale * LOG2E;

	float m[TR], l[TR], a[TR];
	for (uint i = 0u; i < TR; i++) {
		m[i] = NEG;
		l[i] = 0.0;
		a[i] = 0.0;
	}
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
			barrier(); // read before the next chunk overwrites it
		}
		for (uint i = 0u; i < TR; i++) {
			uint qi = q0 + g_ty + 16u * i;
			float mx = m[i];
			for (uint j = 0u; j < TC; j++) {
				uint key = k0 + g_tx + 16u * j;
				bool seen = key < u_Nk;
#if CAUSAL
				seen = seen && key <= qi;
#endif
				s[i][j] = seen ? s[i][j] * zscale : NEG;
				mx = max(mx, s[i][j]);
			}
			float corr = exp2(m[i] - mx);
			l[i] *= corr;
			a[i] *= corr;
			for (uint j = 0u; j < TC; j++) {
				float pj = s[i][j] > 0.5 * NEG ? exp2(s[i][j] - mx) : 0.0;
				l[i] += pj;
				a[i] += pj * dp[i][j];
			}
			m[i] = mx;
		}
	}

	// Combine the 16 threads of each row.
	for (uint i = 0u; i < TR; i++) sh[(g_ty + 16u * i) * 16u + g_tx] = vec4(m[i], l[i], a[i], 0.0);
	memoryBarrierShared();
	barrier();
	if (g_tx == 0u) {
		for (uint i = 0u; i < TR; i++) {
			uint r = g_ty + 16u * i;
			uint qi = q0 + r;
			if (qi >= u_Nq) continue;
			float mx = NEG;
			for (uint x = 0u; x < 16u; x++) mx = max(mx, sh[r * 16u + x].x);
			float ls = 0.0, as = 0.0;
			for (uint x = 0u; x < 16u; x++) {
				vec4 t = sh[r * 16u + x];
				float c = exp2(t.x - mx);
				ls += t.y * c;
				as += t.z * c;
			}
			uint o = ((b * u_H + h) * u_Nq + qi) * 2u; // stats [B, H, Nq, 2]
			stats[o] = mx + log2(ls);
			stats[o + 1u] = as / ls;
		}
	}
}
