// Attention backward, pass 3 of 3 (attention_backward.glsl explains the
// scheme): dV = Pᵀ dO and dK = scale·dSᵀ Q. A work group owns BR keys of
// one (batch, head) and streams the queries of its split: per query tile
// it recomputes the transposed scores K Qᵀ and dPᵀ = V dOᵀ, forms Pᵀ from
// the stats pass's L, multiplies it by the tile's dO into dV, then forms
// dSᵀ = Pᵀ ∘ (dPᵀ − D) and multiplies it by the tile's queries into dK.
// With u_splits > 1 the queries are split into u_splits ranges of
// u_qchunk (a multiple of BC), and split s writes its partial sums to
// slice s of dk and dv ([splits, B, Nk, H*D]); attention_backward_reduce
// adds them in order.
#include "attention_backward.glsl"

layout(std430, binding = 0) writeonly buffer DKbuf { float dk[]; };
layout(std430, binding = 1) writeonly buffer DVbuf { float dv[]; };
layout(std430, binding = 2) readonly buffer Qbuf { float q_in[]; };
layout(std430, binding = 3) readonly buffer Kbuf { float k_in[]; };
layout(std430, binding = 4) readonly buffer Vbuf { float v_in[]; };
layout(std430, binding = 5) readonly buffer DObuf { float do_in[]; };
layout(std430, binding = 6) readonly buffer Sbuf { float stats[]; }; // [B, H, Nq, 2]

uniform uint u_B, u_qchunk;

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return; // the whole group: barriers stay uniform
	g_lid = gl_LocalInvocationIndex;
	g_tx = g_lid % 16u;
	g_ty = g_lid / 16u;
	g_row3 = g_lid / 4u;
	uint kblocks = (u_Nk + BR - 1u) / BR;
	uint kb = gid % kblocks, rest = gid / kblocks;
	uint bh = rest % (u_B * u_H), split = rest / (u_B * u_H);
	uint h = bh % u_H, b = bh / u_H;
	g_width = u_H * HEAD_DIM;
	uint k0 = kb * BR;
	uint qbase = b * u_Nq * g_width + h * HEAD_DIM; // q, dO [B, Nq, H*D]
	uint kbase = b * u_Nk * g_width + h * HEAD_DIM; // k, v, dK, dV [B, Nk, H*D]
	uint sbase = (b * u_H + h) * u_Nq * 2u;          // stats [B, H, Nq, 2]
	float zscale = u_scale * LOG2E;

	vec4 ak[NCH], av[NCH]; // dK, dV row k0 + g_row3, dims 16*ch + 4*(lid%4) + (0..3)
	for (uint ch = 0u; ch < NCH; ch++) {
		ak[ch] = vec4(0.0);
		av[ch] = vec4(0.0);
	}
	uint qstart = split * u_qchunk;
	uint qend = min(u_Nq, qstart + u_qchunk);
#if CAUSAL
	qstart = max(qstart, (k0 / BC) * BC); // no earlier query sees the group's keys
#endif
	for (uint q0 = qstart; q0 < qend; q0 += BC) {
		float s[TR][TC], dp[TR][TC];
		for (uint i = 0u; i < TR; i++)
			for (uint j = 0u; j < TC; j++) {
				s[i][j] = 0.0;
				dp[i][j] = 0.0;
			}
		for (uint ch = 0u; ch < NCH; ch++) {
			LOAD_CHUNK(k_in, kbase, k0, u_Nk, BR, ch, OA)
			LOAD_CHUNK(v_in, kbase, k0, u_Nk, BR, ch, OB)
			LOAD_CHUNK(q_in, qbase, q0, u_Nq, BC, ch, SA)
			LOAD_CHUNK(do_in, qbase, q0, u_Nq, BC, ch, SB)
			memoryBarrierShared();
			barrier();
			chunkProducts(s, dp);
			barrier(); // read before the next chunk (or T) overwrites it
		}
		float L[TC], D[TC];
		for (uint j = 0u; j < TC; j++) {
			uint qj = min(q0 + g_tx + 16u * j, u_Nq - 1u);
			L[j] = stats[sbase + 2u * qj];
			D[j] = stats[sbase + 2u * qj + 1u];
		}
		for (uint i = 0u; i < TR; i++) {
			uint key = k0 + g_ty + 16u * i;
			for (uint j = 0u; j < TC; j++) {
				uint qj = q0 + g_tx + 16u * j;
				bool seen = key < u_Nk && qj < qend;
#if CAUSAL
				seen = seen && key <= qj;
#endif
				s[i][j] = seen ? exp2(s[i][j] * zscale - L[j]) : 0.0; // Pᵀ
				dp[i][j] = s[i][j] * (dp[i][j] - D[j]);               // dSᵀ
			}
		}
		storeT(s);
		for (uint ch = 0u; ch < NCH; ch++) {
			LOAD_CHUNK(do_in, qbase, q0, u_Nq, BC, ch, SA)
			memoryBarrierShared();
			barrier();
			tileProduct(av[ch]);
			barrier(); // T and SA are read before they are overwritten
		}
		storeT(dp);
		for (uint ch = 0u; ch < NCH; ch++) {
			LOAD_CHUNK(q_in, qbase, q0, u_Nq, BC, ch, SA)
			memoryBarrierShared();
			barrier();
			tileProduct(ak[ch]);
			barrier();
		}
	}

	uint obase = split * u_B * u_Nk * g_width + kbase; // [splits, B, Nk, H*D]
	uint key = k0 + g_row3;
	if (g_row3 < BR && key < u_Nk) {
		for (uint ch = 0u; ch < NCH; ch++) {
			for (uint c = 0u; c < 4u; c++) {
				uint d = 16u * ch + 4u * (g_lid % 4u) + c;
				if (d < HEAD_DIM) {
					dk[obase + key * g_width + d] = u_scale * ak[ch][c];
					dv[obase + key * g_width + d] = av[ch][c];
				}
			}
		}
	}
}
