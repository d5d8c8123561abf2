// Shared part of the attention backward passes (attention_backward_*.comp),
// flash-attention-2 style: the scores are recomputed tile by tile, never
// stored. With S = scale·Q Kᵀ (masked), P = softmax(S) row-wise, O = P V:
//   dV = Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − D), D_i = Σ_d dO_id O_id
//   = Σ_j P_ij dP_ij, dQ = scale·dS K, dK = scale·dSᵀ Q.
// The stats pass stores each query row's log-sum-exp L (log2 units of
// scale·log2(e)·q·k) and D; the dQ pass owns query rows and streams the
// keys; the dK/dV pass owns key rows and streams the queries, so no two
// work groups write one element and no atomics are needed.
//
// A work group's 256 threads form a 16 x 16 grid (ty, tx). The group owns
// BR = 16*TR rows (queries, or keys in the dK/dV pass) and streams tiles
// of BC = 64 rows of the other side; thread (ty, tx) computes the score
// block of own rows ty + 16*i (i < TR) and streamed rows tx + 16*j
// (j < 4); for the gradients, thread lid accumulates own row lid / 4,
// head dims 16*ch + 4*(lid % 4) + (0..3) (ch < NCH), as float4s. Head rows pass through shared memory 16 dims (a
// chunk) at a time, as float4s with rows padded to 5 float4s so that
// threads reading different rows hit different banks.
//
// Shared memory (one float4 array, offsets below): the own rows' two
// chunks (OA: Q or K, OB: dO or V) and the streamed rows' second chunk
// (SB: V or dO) share their memory with T, the BR x BC tile of P or dS
// that the gradient products read; SA, the streamed rows' first chunk
// (K or Q), also carries the chunks those products multiply.
//
// Defines: HEAD_DIM, TR, CAUSAL.
#include "common.glsl"

// Unrolled, the per-chunk accumulators stay in registers; past 12 chunks
// (head dims over 192) NVIDIA's compiler runs out of instructions
// ("too many instructions" at head dim 512), so wide heads keep loops.
#if (HEAD_DIM + 15) / 16 <= 12
#pragma optionNV(unroll all)
#endif

layout(local_size_x = 256) in;

#define BR (16 * TR)
#define BC 64
#define TC 4
#define NCH ((HEAD_DIM + 15) / 16) // 16-dim chunks of a head row
#define CST 5                      // float4 stride of a chunk row
#define TST (BC / 4 + 1)           // float4 stride of a row of T
#define OA 0
#define OB (BR * CST)
#define SB (2 * BR * CST)
#define UNION ((2 * BR + BC) * CST > BR * TST ? (2 * BR + BC) * CST : BR * TST)
#define SA UNION
#define T 0
#define SHARED (UNION + BC * CST)

shared vec4 sh[SHARED];

uniform uint u_Nq, u_Nk, u_H;
uniform float u_scale;

const float LOG2E = 1.4426950408889634;
const float NEG = -1.0e30; // finite "minus infinity": NEG - NEG is 0, not NaN

uint g_width; // H*D, the row stride of every tensor
uint g_tx, g_ty, g_lid;

// Loads dims 16*ch .. 16*ch+15 of rows r0 .. r0+rows-1 (zeros past nrows
// or the head) of one tensor into sh at off. The tensor is named by a
// macro argument, since GLSL has no buffer references.
#define LOAD_CHUNK(buf, base, r0, nrows, rows, ch, off)                         \
	for (uint e_ = g_lid; e_ < (rows) * 4u; e_ += 256u) {                  \
		uint rr_ = e_ / 4u, g_ = e_ % 4u, row_ = (r0) + rr_;                   \
		uint d_ = 16u * (ch) + 4u * g_;                                        \
		vec4 v_ = vec4(0.0);                                                   \
		if (row_ < (nrows)) {                                                  \
			uint i_ = (base) + row_ * g_width + d_;                            \
			for (uint c_ = 0u; c_ < 4u; c_++)                                  \
				if (HEAD_DIM % 16 == 0 || d_ + c_ < HEAD_DIM) v_[c_] = buf[i_ + c_]; \
		}                                                                      \
		sh[(off) + rr_ * CST + g_] = v_;                                       \
	}

// s[i][j] += OA row · SA row, p[i][j] += OB row · SB row over one chunk.
void chunkProducts(inout float s[TR][TC], inout float p[TR][TC]) {
	for (uint g = 0u; g < 4u; g++) {
		vec4 a[TR], c[TR];
		for (uint i = 0u; i < TR; i++) {
			a[i] = sh[OA + (g_ty + 16u * i) * CST + g];
			c[i] = sh[OB + (g_ty + 16u * i) * CST + g];
		}
		for (uint j = 0u; j < TC; j++) {
			vec4 bv = sh[SA + (g_tx + 16u * j) * CST + g];
			vec4 dv = sh[SB + (g_tx + 16u * j) * CST + g];
			for (uint i = 0u; i < TR; i++) {
				s[i][j] += dot(a[i], bv);
				p[i][j] += dot(c[i], dv);
			}
		}
	}
}

// T[own row][streamed row] = x for this thread's block.
void storeT(float x[TR][TC]) {
	for (uint i = 0u; i < TR; i++)
		for (uint j = 0u; j < TC; j++) {
			uint c = g_tx + 16u * j;
			sh[T + (g_ty + 16u * i) * TST + c / 4u][c % 4u] = x[i][j];
		}
}

// acc += Σ_c T[row][c] · SA[c][dims 4g .. 4g+3 of the chunk] over the
// tile, for this thread's gradient row g_row3 = lid / 4 and g = lid % 4:
// whole float4s of SA, so no lane is picked at run time (a dynamic
// float4 lane compiled to a branch chain on NVIDIA). Threads past BR
// rows (TR < 4) idle here.
uint g_row3;

void tileProduct(inout vec4 acc) {
	if (g_row3 >= BR) return;
	uint g = g_lid % 4u;
	for (uint c4 = 0u; c4 < BC / 4u; c4++) {
		vec4 t = sh[T + g_row3 * TST + c4];
		acc += t.x * sh[SA + (4u * c4) * CST + g];
		acc += t.y * sh[SA + (4u * c4 + 1u) * CST + g];
		acc += t.z * sh[SA + (4u * c4 + 2u) * CST + g];
		acc += t.w * sh[SA + (4u * c4 + 3u) * CST + g];
	}
}
