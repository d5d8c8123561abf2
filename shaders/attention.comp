// Multi-head attention, softmax(q kᵀ · scale) v, as tiled flash attention:
// the score matrix is never stored.
//
// A work group owns BQ = RY*TQ queries of one (batch, head) and streams the
// keys and values through shared memory BK = RX*TK keys at a time. Its
// NT = RX*RY threads form an RY x RX grid; thread (ty, tx) owns the query
// rows ty + RY*i (i < TQ) and, for them,
//   - a TQ x TK block of each key tile's scores: keys tx*TK + j, so the
//     score tile S = Q Kᵀ is a small GEMM (float4 steps along the head);
//   - the output dims tx + RX*t (t < TD): O = Σ P V accumulates in
//     registers split across the RX threads of a row, so no thread ever
//     holds a whole head row (TD is 5 at head dim 40, 16 at 512).
// Online softmax per row, in log2 units (q is pre-scaled by scale·log2 e):
// without SHUF (below), the tile's row maximum is reduced over the row's
// RX threads with a shared-memory atomicMax on an order-preserving uint
// encoding (a subgroup shuffle for that step alone measured no faster on
// the H200);
// each thread rescales its output and its share of the row sum, writes its
// probabilities to shared memory, and after a barrier every thread
// multiplies the whole P tile by its slice of V. The row sums are reduced
// once, at the end, through shared memory.
//
// Shared memory (float4 arrays, rows padded to an odd number of float4 so
// that threads reading different rows hit different banks):
//   Qs: the group's queries, whole head rows (QRES) or DC-dim chunks;
//   Ks: a key tile, DC dims at a time, key tx*TK + j at row j*RX + tx so
//       a thread's TK keys sit RX rows apart (no bank conflicts);
//   Vs: a value tile, dim tx + RX*t at float4 (t/4)*RX + tx, lane t%4, so
//       each thread reads its dims as float4s; separate (KVSEP) or sharing
//       Ks's memory VK keys at a time;
//   Ps: the probabilities of a tile, key-contiguous rows.
// With SHUF (subgroups of a multiple of RX lanes, GL_KHR_shader_subgroup
// with shuffles and clustered reductions; below), a row's RX threads are RX
// neighbouring lanes of one subgroup: the tile's row maximum and the final
// row sums are clustered reductions, and each thread keeps its
// probabilities in registers, from where the row's other threads read them
// by shuffles while they multiply by V (with PSH, through Ps instead).
// Ms (and, without PSH, Ps) are then not needed, the freed shared memory
// lets V have its own (KVSEP), and a tile takes two barriers (three with
// PSH) instead of up to seven. The backend takes it wherever the
// driver has the operations (on the H100, head dim 40 went from 2.76 to
// 2.03 ms a call with it and a grid of 4x8 score blocks, p12); SHUF=2
// emulates them through shared memory so llvmpipe can test the layout.
// Defines: HEAD_DIM, CAUSAL, RX, RY, TQ, TK (a multiple of 4), DC (head
// dims per chunk of the score product, a multiple of 4 that divides the
// head rounded up to 4), QRES, KVSEP, VK (keys per V chunk without KVSEP;
// a multiple of 4 dividing BK), and NT = RX*RY (a literal for
// local_size_x), SHUF, PF (with KVSEP and one chunk: the next tile's keys
// and values are loaded into registers while this tile is computed, and
// stored to Ks and Vs at the next tile's start), PSH (with SHUF: the
// probabilities still pass through Ps, each thread reading a row's 4 keys
// as one float4 where the shuffles move one value each; the reductions
// stay clustered).
#if SHUF == 1
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_clustered : require
#endif
#include "common.glsl"

#define BQ (RY * TQ)
#define BK (RX * TK)
#define D4 ((HEAD_DIM + 3) / 4)       // float4s in a head row
#define DC4 (DC / 4)                  // float4s per chunk of the score product
#define NCH (D4 / DC4)                // chunks
#define TD ((HEAD_DIM + RX - 1) / RX) // output dims per thread
#define TD4 ((TD + 3) / 4)
#define QST ((QRES != 0 ? D4 : DC4) | 1)
#define KST (DC4 | 1)
#define VST (TD4 * RX)
#define PST ((BK / 4) | 1)
#define VROWS (KVSEP != 0 ? BK : VK)
#define KVLEN (KVSEP != 0 ? BK * KST : (BK * KST > VK * VST ? BK * KST : VK * VST))

layout(local_size_x = NT) in;
layout(std430, binding = 0) writeonly buffer Obuf { float o_out[]; };
layout(std430, binding = 1) readonly buffer Qbuf { float q_in[]; };
layout(std430, binding = 2) readonly buffer Kbuf { float k_in[]; };
layout(std430, binding = 3) readonly buffer Vbuf { float v_in[]; };

uniform uint u_Nq, u_Nk, u_H;
uniform float u_scale;
// q, k and v rows are u_ld floats apart, k and v u_koff and u_voff past
// q's (0 and 0 with rows of H*D; H*D and 2*H*D when one buffer holds all
// three, AttentionParams.Packed).
uniform uint u_ld, u_koff, u_voff;

shared vec4 Qs[BQ * QST];
shared vec4 Ks[KVLEN];
#if KVSEP
shared vec4 Vs[BK * VST];
#define VS Vs
#else
#define VS Ks
#endif
#if !SHUF || PSH
shared vec4 Ps[BQ * PST];
#endif
#if !SHUF
shared uint Ms[2 * BQ]; // tile row maxima, encoded; two, used alternately
#endif
// PR_SHUF: the probabilities reach the row's threads by shuffles.
#define PR_SHUF (SHUF != 0 && PSH == 0)

const float LOG2E = 1.4426950408889634;
const float NEG = -1.0e30; // finite "minus infinity": NEG - NEG is 0, not NaN

uint g_width; // o's rows
uint g_ld;    // q's, k's and v's rows

// SHUF 1 takes the driver's subgroup operations. SHUF 2 emulates them,
// for testing the layout on drivers without subgroups (llvmpipe), through
// shared memory: subgroups of 32 invocations, the reductions over a
// barrier each, and a tile's probabilities published once (PUBLISH) for
// PR_FROM to read.
#if SHUF == 1
#define LANE gl_SubgroupInvocationID
#define PUBLISH(pr)
#define PR_FROM(i, c, lane) subgroupShuffle(pr[i][c], lane)

void rowMaxes(inout float v[TQ]) {
	for (uint i = 0u; i < TQ; i++) v[i] = subgroupClusteredMax(v[i], RX);
}

void rowSums(inout float v[TQ]) {
	for (uint i = 0u; i < TQ; i++) v[i] = subgroupClusteredAdd(v[i], RX);
}
#elif SHUF == 2
#define LANE (gl_LocalInvocationIndex % 32u)
shared float Xs[NT * TQ * TK];
#define PUBLISH(pr) publish(pr)
#define PR_FROM(i, c, lane) Xs[((gl_LocalInvocationIndex - LANE + (lane)) * TQ + (i)) * TK + (c)]

void publish(float pr[TQ][TK]) {
	uint l = gl_LocalInvocationIndex;
	for (uint i = 0u; i < TQ; i++)
		for (uint c = 0u; c < TK; c++) Xs[(l * TQ + i) * TK + c] = pr[i][c];
	memoryBarrierShared();
	barrier();
}

// rowReduce: each row's maximum (op 0) or sum (op 1) of v.
void rowReduce(inout float v[TQ], uint op) {
	uint l = gl_LocalInvocationIndex, r0 = l - l % RX;
	for (uint i = 0u; i < TQ; i++) Xs[l * TQ + i] = v[i];
	memoryBarrierShared();
	barrier();
	for (uint i = 0u; i < TQ; i++) {
		float t = Xs[r0 * TQ + i];
		for (uint x = 1u; x < RX; x++) {
			float y = Xs[(r0 + x) * TQ + i];
			t = op == 0u ? max(t, y) : t + y;
		}
		v[i] = t;
	}
	barrier();
}

void rowMaxes(inout float v[TQ]) { rowReduce(v, 0u); }
void rowSums(inout float v[TQ]) { rowReduce(v, 1u); }
#endif

// Four neighbouring elements of a head row, zero past the head or the
// tensor's rows. base: the (batch, head) offset; row: query or key index.
#if HEAD_DIM % 4 == 0
// Head rows start on whole vec4s (the row width, heads x HEAD_DIM, and
// every offset are multiples of 4): one vec4 load each.
layout(std430, binding = 1) readonly buffer Qbuf4 { vec4 q4[]; };
layout(std430, binding = 2) readonly buffer Kbuf4 { vec4 k4[]; };

vec4 fetchQ(uint base, uint row, uint d) {
	return row < u_Nq ? q4[(base + row * g_ld + d) >> 2] : vec4(0.0);
}

vec4 fetchK(uint base, uint row, uint d) {
	return row < u_Nk ? k4[(base + row * g_ld + d) >> 2] : vec4(0.0);
}
#else
vec4 fetchQ(uint base, uint row, uint d) {
	vec4 x = vec4(0.0);
	if (row < u_Nq) {
		uint i = base + row * g_ld + d;
		for (uint c = 0u; c < 4u; c++)
			if (d + c < HEAD_DIM) x[c] = q_in[i + c];
	}
	return x;
}

vec4 fetchK(uint base, uint row, uint d) {
	vec4 x = vec4(0.0);
	if (row < u_Nk) {
		uint i = base + row * g_ld + d;
		for (uint c = 0u; c < 4u; c++)
			if (d + c < HEAD_DIM) x[c] = k_in[i + c];
	}
	return x;
}
#endif

// V's dims x + RX*(4*t4 + c), c < 4: one float4 of Vs's layout.
vec4 fetchV(uint base, uint row, uint x, uint t4) {
	vec4 v = vec4(0.0);
	if (row < u_Nk) {
		for (uint c = 0u; c < 4u; c++) {
			uint d = x + RX * (4u * t4 + c);
			if (d < HEAD_DIM) v[c] = v_in[base + row * g_ld + d];
		}
	}
	return v;
}

// Keys k0 .. k0+VROWS-1 of V into VS.
void loadV(uint base, uint k0, uint lid) {
	for (uint e = lid; e < VROWS * VST; e += NT) {
		uint kk = e / VST, r = e % VST;
		VS[e] = fetchV(base, k0 + kk, r % RX, r / RX);
	}
}

#if PF
// The next tile's K and V, PFK and PFV float4s a thread, in flight in
// registers while the current tile is computed.
#define PFK ((BK * DC4 + NT - 1) / NT)
#define PFV ((BK * VST + NT - 1) / NT)
vec4 pk[PFK], pv[PFV];

void prefetch(uint kbase, uint vbase, uint k0, uint lid) {
	for (uint n = 0u; n < PFK; n++) {
		uint e = lid + n * NT;
		if (e < BK * DC4) pk[n] = fetchK(kbase, k0 + e / DC4, 4u * (e % DC4));
	}
	for (uint n = 0u; n < PFV; n++) {
		uint e = lid + n * NT, r = e % VST;
		if (e < BK * VST) pv[n] = fetchV(vbase, k0 + e / VST, r % RX, r / RX);
	}
}

// The prefetched tile into Ks (key kk at row (kk % TK) * RX + kk / TK) and Vs.
void commit(uint lid) {
	for (uint n = 0u; n < PFK; n++) {
		uint e = lid + n * NT, kk = e / DC4;
		if (e < BK * DC4) Ks[((kk % TK) * RX + kk / TK) * KST + e % DC4] = pk[n];
	}
	for (uint n = 0u; n < PFV; n++) {
		uint e = lid + n * NT;
		if (e < BK * VST) Vs[e] = pv[n];
	}
}
#endif

// Floats to uints that compare in the same order.
uint encodeMax(float f) {
	uint u = floatBitsToUint(f);
	return (u & 0x80000000u) != 0u ? ~u : u | 0x80000000u;
}

float decodeMax(uint u) {
	return uintBitsToFloat((u & 0x80000000u) != 0u ? u & 0x7fffffffu : ~u);
}

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return; // the whole group: barriers stay uniform
	uint lid = gl_LocalInvocationIndex;
	uint tx = lid % RX, ty = lid / RX;
	uint qblocks = (u_Nq + BQ - 1u) / BQ;
	uint qb = gid % qblocks;
	uint bh = gid / qblocks;
	uint h = bh % u_H, b = bh / u_H;
	g_width = u_H * HEAD_DIM;
	g_ld = u_ld;
	uint q0 = qb * BQ;
	uint qbase = b * u_Nq * g_ld + h * HEAD_DIM;          // q [B, Nq, ld]
	uint kbase = b * u_Nk * g_ld + h * HEAD_DIM + u_koff; // k [B, Nk, ld]
	uint vbase = b * u_Nk * g_ld + h * HEAD_DIM + u_voff; // v [B, Nk, ld]
	uint obase = b * u_Nq * g_width + h * HEAD_DIM;       // o [B, Nq, H*D]
	float qscale = u_scale * LOG2E; // scores in log2 units: exp2 below

#if QRES
	for (uint e = lid; e < BQ * D4; e += NT) {
		uint r = e / D4, g = e % D4;
		Qs[r * QST + g] = fetchQ(qbase, q0 + r, 4u * g) * qscale;
	}
#endif
#if !SHUF
	for (uint e = lid; e < 2u * BQ; e += NT) Ms[e] = encodeMax(NEG);
#endif

	float m[TQ], l[TQ], o[TQ][TD];
	for (uint i = 0u; i < TQ; i++) {
		m[i] = NEG;
		l[i] = 0.0; // this thread's share of the row sum
		for (uint t = 0u; t < TD; t++) o[i][t] = 0.0;
	}

	uint kend = u_Nk;
#if CAUSAL
	kend = min(u_Nk, q0 + BQ); // no later key is seen by any of the group's queries
#endif
	uint it = 0u;
#if PF
	prefetch(kbase, vbase, 0u, lid);
#endif
	for (uint k0 = 0u; k0 < kend; k0 += BK, it++) {
		// S = Q Kᵀ for the tile, chunk by chunk of the head.
		float s[TQ][TK];
		for (uint i = 0u; i < TQ; i++)
			for (uint j = 0u; j < TK; j++) s[i][j] = 0.0;
#if PF
		commit(lid);
		memoryBarrierShared();
		barrier();
		if (k0 + BK < kend) prefetch(kbase, vbase, k0 + BK, lid);
#elif KVSEP
		loadV(vbase, k0, lid);
#endif
		for (uint c = 0u; c < NCH; c++) {
#if !QRES
			for (uint e = lid; e < BQ * DC4; e += NT) {
				uint r = e / DC4, g = e % DC4;
				Qs[r * QST + g] = fetchQ(qbase, q0 + r, 4u * (c * DC4 + g)) * qscale;
			}
			uint qoff = 0u;
#else
			uint qoff = c * DC4;
#endif
#if !PF
			for (uint e = lid; e < BK * DC4; e += NT) {
				uint kk = e / DC4, g = e % DC4;
				Ks[((kk % TK) * RX + kk / TK) * KST + g] = fetchK(kbase, k0 + kk, 4u * (c * DC4 + g));
			}
#endif
#if !PF || !QRES
			memoryBarrierShared();
			barrier();
#endif
			for (uint g = 0u; g < DC4; g++) {
				vec4 qv[TQ];
				for (uint i = 0u; i < TQ; i++) qv[i] = Qs[(ty + RY * i) * QST + qoff + g];
				for (uint j = 0u; j < TK; j++) {
					vec4 kv = Ks[(j * RX + tx) * KST + g];
					for (uint i = 0u; i < TQ; i++) s[i][j] += dot(qv[i], kv);
				}
			}
#if NCH > 1 || !KVSEP
			barrier(); // Qs and Ks are read before the next chunk or V overwrites them
#endif
		}

		// Mask, and each row's maximum over the tile.
		float mt[TQ];
		for (uint i = 0u; i < TQ; i++) {
			float mx = NEG;
			for (uint j = 0u; j < TK; j++) {
				uint key = k0 + tx * TK + j;
				bool seen = key < u_Nk;
#if CAUSAL
				seen = seen && key <= q0 + ty + RY * i;
#endif
				s[i][j] = seen ? s[i][j] : NEG;
				mx = max(mx, s[i][j]);
			}
			mt[i] = mx;
#if !SHUF
			atomicMax(Ms[(it & 1u) * BQ + ty + RY * i], encodeMax(mx));
#endif
		}
#if SHUF
		rowMaxes(mt);
#else
		memoryBarrierShared();
		barrier();
		for (uint i = 0u; i < TQ; i++) mt[i] = decodeMax(Ms[(it & 1u) * BQ + ty + RY * i]);
		// Reset the other buffer for the next tile: its last readers ran
		// before this tile's first barrier, its next writers run after the
		// next tile's.
		for (uint e = lid; e < BQ; e += NT) Ms[((it + 1u) & 1u) * BQ + e] = encodeMax(NEG);
#endif

		// Online softmax: rescale, then this tile's probabilities into Ps
		// (with PR_SHUF, into pr).
#if PR_SHUF
		float pr[TQ][TK];
#endif
		for (uint i = 0u; i < TQ; i++) {
			float mn = max(m[i], mt[i]);
			float corr = exp2(m[i] - mn);
			m[i] = mn;
			l[i] *= corr;
			for (uint t = 0u; t < TD; t++) o[i][t] *= corr;
			for (uint j4 = 0u; j4 < TK / 4u; j4++) {
				vec4 p;
				for (uint c = 0u; c < 4u; c++) {
					float x = s[i][4u * j4 + c];
					p[c] = x > 0.5 * NEG ? exp2(x - mn) : 0.0;
				}
				l[i] += p.x + p.y + p.z + p.w;
#if PR_SHUF
				for (uint c = 0u; c < 4u; c++) pr[i][4u * j4 + c] = p[c];
#else
				Ps[(ty + RY * i) * PST + tx * (TK / 4u) + j4] = p;
#endif
			}
		}

		// O += P V.
#if PR_SHUF
		PUBLISH(pr);
#endif
		for (uint v0 = 0u; v0 < BK; v0 += VROWS) {
#if !KVSEP
			loadV(vbase, k0 + v0, lid);
#endif
#if !PR_SHUF || !KVSEP
			memoryBarrierShared();
			barrier();
#endif
#if PR_SHUF
			// Key v0 + TK*kq + c is thread v0/TK + kq's pr[.][c], in the
			// lane that many past the row's first.
			uint row0 = LANE - tx;
			for (uint kq = 0u; kq < VROWS / TK; kq++) {
				for (uint c = 0u; c < TK; c++) {
					float p[TQ];
					for (uint i = 0u; i < TQ; i++) p[i] = PR_FROM(i, c, row0 + v0 / TK + kq);
					for (uint t4 = 0u; t4 < TD4; t4++) {
						vec4 v = VS[(kq * TK + c) * VST + t4 * RX + tx];
						for (uint u = 0u; u < 4u; u++) {
							if (4u * t4 + u < TD) {
								for (uint i = 0u; i < TQ; i++) o[i][4u * t4 + u] += p[i] * v[u];
							}
						}
					}
				}
			}
#else
			for (uint kk = 0u; kk < VROWS; kk += 4u) {
				vec4 p[TQ];
				for (uint i = 0u; i < TQ; i++) p[i] = Ps[(ty + RY * i) * PST + (v0 + kk) / 4u];
				for (uint c = 0u; c < 4u; c++) {
					for (uint t4 = 0u; t4 < TD4; t4++) {
						vec4 v = VS[(kk + c) * VST + t4 * RX + tx];
						for (uint u = 0u; u < 4u; u++) {
							if (4u * t4 + u < TD) {
								for (uint i = 0u; i < TQ; i++) o[i][4u * t4 + u] += p[i][c] * v[u];
							}
						}
					}
				}
			}
#endif
			barrier(); // the tile is consumed before the next overwrites it
		}
	}

	// Row sums over the row's RX threads.
#if SHUF
	rowSums(l);
#else
	for (uint i = 0u; i < TQ; i++) Ps[(ty + RY * i) * PST + tx] = vec4(l[i]); // PST >= RX: TK >= 4
	memoryBarrierShared();
	barrier();
	for (uint i = 0u; i < TQ; i++) {
		float sum = 0.0;
		for (uint x = 0u; x < RX; x++) sum += Ps[(ty + RY * i) * PST + x].x;
		l[i] = sum;
	}
#endif
	for (uint i = 0u; i < TQ; i++) {
		uint qi = q0 + ty + RY * i;
		if (qi >= u_Nq) continue;
		float inv = 1.0 / l[i];
		for (uint t = 0u; t < TD; t++) {
			uint d = tx + RX * t;
			if (d < HEAD_DIM) o_out[obase + qi * g_width + d] = o[i][t] * inv;
		}
	}
}
