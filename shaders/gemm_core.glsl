// Tiled GEMM core shared by matmul and conv2d (implicit GEMM):
// C[M, N] = A[M, K] x B[K, N] for one batch entry per work-group slice.
//
// 256 threads (16x16) compute a BM x BN block of C, each 64 or 128 (RM =
// BM/64, RN = BN/64); each thread holds (4*RM) x (4*RN) results in
// registers: rows 64*h + ty*4 + i, columns 64*g + tx*4 + j. K advances BK
// at a time through double-buffered shared memory: the next slice is
// loaded from global memory into registers while the current one is
// multiplied. The backend picks the tile per problem (ops.go, gemmPlan):
// 128x128 for large grids, narrower tiles and split K when a problem has
// too few tiles to fill the GPU (small feature maps, deep channels).
//
// The including shader defines, before #include:
//   uniform uint u_M, u_N, u_K;
//   float loadA(uint m, uint k);   // called only in range
//   float loadB(uint k, uint n);   // called only in range
//   void storeC(uint m, uint n, float acc);
//   A_KCONTIG: 1 if A's k index is the contiguous one, else m is
//   B_NCONTIG: 1 if B's n index is the contiguous one, else k is
//   B_FETCH4: 1 if it also defines vec4 loadB4(uint k, uint n), the four
//             values B[k, n..n+3] with zeros outside the matrix
// and reads g_batch (the batch entry of this work group). The backend
// defines TILE and BK. Optional, each defaulting to off:
//   BM, BN: a rectangular tile (64 or 128 each) instead of TILE x TILE
//   A_FETCH4: with A_KCONTIG, vec4 loadA4(uint m, uint k) gives
//             A[m, k..k+3] with zeros past u_K (m is in range)
//   B_KFETCH4: without B_NCONTIG, vec4 loadB4k(uint k, uint n) gives
//             B[k..k+3, n] with zeros past u_K (n is in range)
//   SPLITK: S > 1 splits K into S chunks of uniform u_kchunk (a multiple
//           of BK, every chunk non-empty); work groups are laid out
//           [S, batch, tilesM, tilesN], g_split is the chunk, and storeC
//           receives the chunk's partial sum (the includer writes it to a
//           scratch buffer that a second pass reduces).
//
// A and B slices live k-major in shared memory, so the inner product
// reads 4 rows of A and 4 columns of B as vec4s. An operand that is
// k-contiguous in global memory is transposed on the way in, through a
// float array whose rows are padded by 4 so the scalar stores do not
// collide in banks. (Keeping a k-contiguous A row-major instead, read 4 k
// at a time, measured slower on the H200: 25.0 against 27.6 TFLOP/s.)
//
// Includers should give the vec4 loaders wherever rows start on whole
// vec4s: the global loads, not the shared-memory traffic, bound this core.
// Four scalar loads, each under its own bounds test, ran the 4096³ A·B
// at 27.7 TFLOP/s on an H100; vec4 loads at 38.3 (and 45 with no global
// loads at all, 52 with neither those nor the shared reads).

#ifndef BM
#define BM TILE
#endif
#ifndef BN
#define BN TILE
#endif
#ifndef A_FETCH4
#define A_FETCH4 0
#endif
#ifndef B_KFETCH4
#define B_KFETCH4 0
#endif
#ifndef SPLITK
#define SPLITK 1
#endif
#ifndef HALF
#define HALF 0
#endif
#if SPLITK > 1
uniform uint u_kchunk;
#endif

layout(local_size_x = 256) in;

#define QA (BM / 4) // vec4s across a slice row of A
#define QB (BN / 4)

#if HALF
// HALF: the slices live in shared memory as fp16, four to a uvec2 along m
// (A) or n (B), and the products are summed in fp16 over one slice (BK of
// them) before the slice's sums join the fp32 accumulators. HALF 1 uses
// the driver's fp16 arithmetic (GL_NV_gpu_shader5, enabled by
// common.glsl); HALF 2 emulates it in fp32, rounding every result to fp16,
// so that drivers without fp16 types (llvmpipe) test the same layout and
// arithmetic.
#if HALF == 1
#define H4 f16vec4
H4 h4(uvec2 u) { return H4(unpackFloat2x16(u.x), unpackFloat2x16(u.y)); }
uint hpack(vec2 v) { return packFloat2x16(f16vec2(v)); }
#define HMAD(a, b, c) ((a) * (b) + (c))
#else
#define H4 vec4
H4 h4(uvec2 u) { return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
uint hpack(vec2 v) { return packHalf2x16(v); }
vec4 hround(vec4 v) { return h4(uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw))); }
#define HMAD(a, b, c) hround((a) * (b) + (c))
#endif
uvec2 hpack4(vec4 v) { return uvec2(hpack(v.xy), hpack(v.zw)); }

// An operand that is k-contiguous in global memory reaches shared memory
// as pairs of rows (m, m+1): each thread loads 4 k of both and stores 4
// words, one per k, each two halves. Rows are padded so that those
// stores, 32 bits each, fall in distinct banks across a warp (row length
// in words = 2 (mod 8) for BK 16, 4 for BK 8).
#define HPAD (BK == 8 ? 2 : 1)
shared uvec2 Ah[2][BK][QA + HPAD];
shared uvec2 Bh[2][BK][QB + HPAD];
#else
#if A_KCONTIG
shared float Af[2][BK][BM + 4];
vec4 readA(uint s, uint k, uint q) {
	uint m = q * 4u;
	return vec4(Af[s][k][m], Af[s][k][m + 1u], Af[s][k][m + 2u], Af[s][k][m + 3u]);
}
#else
shared vec4 As[2][BK][QA];
vec4 readA(uint s, uint k, uint q) { return As[s][k][q]; }
#endif
#if B_NCONTIG
shared vec4 Bs[2][BK][QB];
vec4 readB(uint s, uint k, uint q) { return Bs[s][k][q]; }
#else
shared float Bf[2][BK][BN + 4];
vec4 readB(uint s, uint k, uint q) {
	uint n = q * 4u;
	return vec4(Bf[s][k][n], Bf[s][k][n + 1u], Bf[s][k][n + 2u], Bf[s][k][n + 3u]);
}
#endif
#endif

uint g_batch;
uint g_split; // the K chunk of this work group (0 without SPLITK)

// Tiles wholly inside the matrices (most of them) load without bounds
// checks; edge tiles read zeros outside.
bool g_interior;

float safeA(uint m, uint k) { return (g_interior || (m < u_M && k < u_K)) ? loadA(m, k) : 0.0; }
float safeB(uint k, uint n) { return (g_interior || (k < u_K && n < u_N)) ? loadB(k, n) : 0.0; }

// quadA gives four neighbours of A along its contiguous axis from (am,
// ak): A[am, ak..ak+3] when k is contiguous, else A[am..am+3, ak]; zeros
// outside the matrix. quadB likewise: B[bk, bn..bn+3] or B[bk..bk+3, bn].
vec4 quadA(uint am, uint ak) {
#if A_KCONTIG
#if A_FETCH4
	if (g_interior || am < u_M) return loadA4(am, ak);
	return vec4(0.0);
#else
	return vec4(safeA(am, ak), safeA(am, ak + 1u), safeA(am, ak + 2u), safeA(am, ak + 3u));
#endif
#else
	return vec4(safeA(am, ak), safeA(am + 1u, ak), safeA(am + 2u, ak), safeA(am + 3u, ak));
#endif
}

vec4 quadB(uint bk, uint bn) {
#if B_NCONTIG
#if B_FETCH4
	return loadB4(bk, bn);
#else
	return vec4(safeB(bk, bn), safeB(bk, bn + 1u), safeB(bk, bn + 2u), safeB(bk, bn + 3u));
#endif
#else
#if B_KFETCH4
	if (g_interior || bn < u_N) return loadB4k(bk, bn);
	return vec4(0.0);
#else
	return vec4(safeB(bk, bn), safeB(bk + 1u, bn), safeB(bk + 2u, bn), safeB(bk + 3u, bn));
#endif
#endif
}

// A slice of A is cut into EA groups, B's into EB; thread lid moves groups
// lid, lid+256, ... (LA of A and LB of B; the last round may be partial),
// holding each in a register of type REG between fetch and stash. In fp32
// a group is 4 neighbours along the operand's contiguous axis. In HALF a
// k-contiguous operand's group is 4 k of a pair of rows, packed into 4
// words (uvec4), and an m- or n-contiguous one's is 4 neighbours packed
// into 2 (the .xy of a uvec4).
#if HALF
#define REG uvec4
#if A_KCONTIG
#define EA (BM * BK / 8)
#else
#define EA (BM * BK / 4)
#endif
#if B_NCONTIG
#define EB (BN * BK / 4)
#else
#define EB (BN * BK / 8)
#endif
#else
#define REG vec4
#define EA (BM * BK / 4)
#define EB (BN * BK / 4)
#endif
#define LA ((EA + 255) / 256)
#define LB ((EB + 255) / 256)

#if HALF
uvec4 pairs(vec4 r0, vec4 r1) { // word j: (r0[j], r1[j])
	return uvec4(hpack(vec2(r0.x, r1.x)), hpack(vec2(r0.y, r1.y)), hpack(vec2(r0.z, r1.z)), hpack(vec2(r0.w, r1.w)));
}

uvec4 fetchA(uint m0, uint k0, uint e) {
#if A_KCONTIG
	uint am = m0 + 2u * (e / (BK / 4)), ak = k0 + (e % (BK / 4)) * 4u;
	return pairs(quadA(am, ak), quadA(am + 1u, ak));
#else
	return uvec4(hpack4(quadA(m0 + (e % QA) * 4u, k0 + e / QA)), 0u, 0u);
#endif
}

uvec4 fetchB(uint n0, uint k0, uint e) {
#if B_NCONTIG
	return uvec4(hpack4(quadB(k0 + e / QB, n0 + (e % QB) * 4u)), 0u, 0u);
#else
	uint bn = n0 + 2u * (e / (BK / 4)), bk = k0 + (e % (BK / 4)) * 4u;
	return pairs(quadB(bk, bn), quadB(bk, bn + 1u));
#endif
}

void stashA(uint s, uint e, uvec4 v) {
#if A_KCONTIG
	uint p = e / (BK / 4), k = (e % (BK / 4)) * 4u;
	for (uint j = 0u; j < 4u; j++) Ah[s][k + j][p >> 1][p & 1u] = v[j];
#else
	Ah[s][e / QA][e % QA] = v.xy;
#endif
}

void stashB(uint s, uint e, uvec4 v) {
#if B_NCONTIG
	Bh[s][e / QB][e % QB] = v.xy;
#else
	uint p = e / (BK / 4), k = (e % (BK / 4)) * 4u;
	for (uint j = 0u; j < 4u; j++) Bh[s][k + j][p >> 1][p & 1u] = v[j];
#endif
}
#else
vec4 fetchA(uint m0, uint k0, uint e) {
#if A_KCONTIG
	return quadA(m0 + e / (BK / 4), k0 + (e % (BK / 4)) * 4u);
#else
	return quadA(m0 + (e % QA) * 4u, k0 + e / QA);
#endif
}

vec4 fetchB(uint n0, uint k0, uint e) {
#if B_NCONTIG
	return quadB(k0 + e / QB, n0 + (e % QB) * 4u);
#else
	return quadB(k0 + (e % (BK / 4)) * 4u, n0 + e / (BK / 4));
#endif
}

void stashA(uint s, uint e, vec4 v) {
#if A_KCONTIG
	uint m = e / (BK / 4), k = (e % (BK / 4)) * 4u;
	Af[s][k][m] = v.x;
	Af[s][k + 1u][m] = v.y;
	Af[s][k + 2u][m] = v.z;
	Af[s][k + 3u][m] = v.w;
#else
	As[s][e / QA][e % QA] = v;
#endif
}

void stashB(uint s, uint e, vec4 v) {
#if B_NCONTIG
	Bs[s][e / QB][e % QB] = v;
#else
	uint n = e / (BK / 4), k = (e % (BK / 4)) * 4u;
	Bf[s][k][n] = v.x;
	Bf[s][k + 1u][n] = v.y;
	Bf[s][k + 2u][n] = v.z;
	Bf[s][k + 3u][n] = v.w;
#endif
}
#endif

void fetch(uint m0, uint n0, uint k0, uint lid, out REG ra[LA], out REG rb[LB]) {
	for (uint r = 0u; r < uint(LA); r++) {
		uint e = lid + 256u * r;
		if (EA % 256 == 0 || e < uint(EA)) ra[r] = fetchA(m0, k0, e);
	}
	for (uint r = 0u; r < uint(LB); r++) {
		uint e = lid + 256u * r;
		if (EB % 256 == 0 || e < uint(EB)) rb[r] = fetchB(n0, k0, e);
	}
}

void stash(uint s, uint lid, REG ra[LA], REG rb[LB]) {
	for (uint r = 0u; r < uint(LA); r++) {
		uint e = lid + 256u * r;
		if (EA % 256 != 0 && e >= uint(EA)) break;
		stashA(s, e, ra[r]);
	}
	for (uint r = 0u; r < uint(LB); r++) {
		uint e = lid + 256u * r;
		if (EB % 256 != 0 && e >= uint(EB)) break;
		stashB(s, e, rb[r]);
	}
}

#define RM (BM / 64) // 4-row groups per thread
#define RN (BN / 64) // 4-column groups per thread

void gemm_tile() {
	uint tilesN = (u_N + BN - 1u) / BN;
	uint tilesM = (u_M + BM - 1u) / BM;
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint tn = gid % tilesN;
	uint tm = (gid / tilesN) % tilesM;
	g_batch = gid / (tilesN * tilesM);
	uint kBegin = 0u, kEnd = u_K;
#if SPLITK > 1
	uint batches = u_groups / (tilesN * tilesM * uint(SPLITK));
	g_split = g_batch / batches;
	g_batch -= g_split * batches;
	kBegin = g_split * u_kchunk;
	kEnd = min(u_K, kBegin + u_kchunk);
#else
	g_split = 0u;
#endif
	uint m0 = tm * BM, n0 = tn * BN;
	g_interior = m0 + BM <= u_M && n0 + BN <= u_N && kEnd % BK == 0u;

	uint lid = gl_LocalInvocationID.x;
	uint tx = lid % 16u, ty = lid / 16u;

	vec4 acc[4 * RM][RN]; // acc[row][column group]
	for (uint i = 0u; i < 4u * RM; i++)
		for (uint g = 0u; g < RN; g++) acc[i][g] = vec4(0.0);

	REG ra[LA], rb[LB];
	fetch(m0, n0, kBegin, lid, ra, rb);
	stash(0u, lid, ra, rb);
	memoryBarrierShared();
	barrier();

	uint slices = (kEnd - kBegin + BK - 1u) / BK;
	for (uint s = 0u; s < slices; s++) {
		uint cur = s & 1u;
		bool more = s + 1u < slices;
		if (more) fetch(m0, n0, kBegin + (s + 1u) * BK, lid, ra, rb);
#if HALF
		H4 hacc[4 * RM][RN]; // this slice's sums
		for (uint i = 0u; i < 4u * RM; i++)
			for (uint g = 0u; g < RN; g++) hacc[i][g] = H4(0.0);
		for (uint k = 0u; k < BK; k++) {
			H4 a[RM], b[RN];
			for (uint h = 0u; h < RM; h++) a[h] = h4(Ah[cur][k][16u * h + ty]);
			for (uint g = 0u; g < RN; g++) b[g] = h4(Bh[cur][k][16u * g + tx]);
			for (uint h = 0u; h < RM; h++)
				for (uint i = 0u; i < 4u; i++)
					for (uint g = 0u; g < RN; g++)
						hacc[4u * h + i][g] = HMAD(H4(a[h][i]), b[g], hacc[4u * h + i][g]);
		}
		for (uint i = 0u; i < 4u * RM; i++)
			for (uint g = 0u; g < RN; g++) acc[i][g] += vec4(hacc[i][g]);
#else
		for (uint k = 0u; k < BK; k++) {
			vec4 a[RM], b[RN];
			for (uint h = 0u; h < RM; h++) a[h] = readA(cur, k, 16u * h + ty);
			for (uint g = 0u; g < RN; g++) b[g] = readB(cur, k, 16u * g + tx);
			for (uint h = 0u; h < RM; h++)
				for (uint i = 0u; i < 4u; i++)
					for (uint g = 0u; g < RN; g++)
						acc[4u * h + i][g] += a[h][i] * b[g];
		}
#endif
		if (more) stash(cur ^ 1u, lid, ra, rb);
		memoryBarrierShared();
		barrier();
	}

	for (uint i = 0u; i < 4u * RM; i++) {
		uint m = m0 + 64u * (i / 4u) + ty * 4u + (i % 4u);
		if (m >= u_M) continue;
		for (uint g = 0u; g < RN; g++) {
			for (uint j = 0u; j < 4u; j++) {
				uint n = n0 + g * 64u + tx * 4u + j;
				if (n < u_N) storeC(m, n, acc[i][g][j]);
			}
		}
	}
}
