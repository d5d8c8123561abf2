// Tiled GEMM core shared by matmul and conv2d (implicit GEMM):
// C[M, N] = A[M, K] x B[K, N] for one batch entry per work-group slice.
//
// WX x WY threads (16x16 unless the backend defines them) compute a BM x
// BN block of C, each 64 or 128 (32 too with fewer threads; RM =
// BM/(4*WY), RN = BN/(4*WX)); each
// thread holds (4*RM) x (4*RN) results in registers: rows 4*WY*h + ty*4 +
// i, columns 4*WX*g + tx*4 + j. Fewer threads with 8x8 results each (WX =
// BN/8, WY = BM/8: 64 threads for 64x64) make small tiles as dense in
// arithmetic as 128x128's, for products too small to fill the GPU with
// those. K advances BK
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
//   PF2: each thread's global loads run two K slices ahead (else one)
//   STORE_PAIRS: the includer's void storePair(uint m, uint n, float c0,
//             float c1) takes columns n and n+1 (n even; N even) instead
//             of storeC
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
#ifndef STORE_PAIRS
#define STORE_PAIRS 0
#endif
#ifndef PF2
#define PF2 0
#endif
#ifndef WX
#define WX 16
#endif
#ifndef WY
#define WY 16
#endif
// NT, the threads of a work group, is a literal for layout() (GLSL 4.30
// takes no expressions there): the backend defines it with WX and WY.
#ifndef NT
#define NT 256
#endif
#if NT != WX * WY
#error NT must be WX * WY
#endif
#if SPLITK > 1
uniform uint u_kchunk;
#endif

layout(local_size_x = NT) in;

#define QA (BM / 4) // vec4s across a slice row of A
#define QB (BN / 4)

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

uint g_batch;
uint g_split; // the K chunk of this work group (0 without SPLITK)

// Tiles wholly inside the matrices (most of them) load without bounds
// checks; edge tiles read zeros outside.
bool g_interior;

float safeA(uint m, uint k) { return (g_interior || (m < u_M && k < u_K)) ? loadA(m, k) : 0.0; }
float safeB(uint k, uint n) { return (g_interior || (k < u_K && n < u_N)) ? loadB(k, n) : 0.0; }

// A slice holds BM*BK/4 groups of 4 elements of A and BN*BK/4 of B, each 4
// neighbours along the operand's contiguous axis; thread lid moves groups
// lid, lid+NT, ... (LA of A and LB of B; the last round may be partial).
#define EA (BM * BK / 4)
#define EB (BN * BK / 4)
#define LA ((EA + NT - 1) / NT)
#define LB ((EB + NT - 1) / NT)

vec4 fetchA(uint m0, uint k0, uint e) {
#if A_KCONTIG
	uint am = m0 + e / (BK / 4), ak = k0 + (e % (BK / 4)) * 4u;
#if A_FETCH4
	if (g_interior || am < u_M) return loadA4(am, ak);
	return vec4(0.0);
#else
	return vec4(safeA(am, ak), safeA(am, ak + 1u), safeA(am, ak + 2u), safeA(am, ak + 3u));
#endif
#else
	uint ak = k0 + e / QA, am = m0 + (e % QA) * 4u;
	return vec4(safeA(am, ak), safeA(am + 1u, ak), safeA(am + 2u, ak), safeA(am + 3u, ak));
#endif
}

vec4 fetchB(uint n0, uint k0, uint e) {
#if B_NCONTIG
	uint bk = k0 + e / QB, bn = n0 + (e % QB) * 4u;
#if B_FETCH4
	return loadB4(bk, bn);
#else
	return vec4(safeB(bk, bn), safeB(bk, bn + 1u), safeB(bk, bn + 2u), safeB(bk, bn + 3u));
#endif
#else
	uint bn = n0 + e / (BK / 4), bk = k0 + (e % (BK / 4)) * 4u;
#if B_KFETCH4
	if (g_interior || bn < u_N) return loadB4k(bk, bn);
	return vec4(0.0);
#else
	return vec4(safeB(bk, bn), safeB(bk + 1u, bn), safeB(bk + 2u, bn), safeB(bk + 3u, bn));
#endif
#endif
}

void fetch(uint m0, uint n0, uint k0, uint lid, out vec4 ra[LA], out vec4 rb[LB]) {
	for (uint r = 0u; r < uint(LA); r++) {
		uint e = lid + uint(NT) * r;
		if (EA % NT == 0 || e < uint(EA)) ra[r] = fetchA(m0, k0, e);
	}
	for (uint r = 0u; r < uint(LB); r++) {
		uint e = lid + uint(NT) * r;
		if (EB % NT == 0 || e < uint(EB)) rb[r] = fetchB(n0, k0, e);
	}
}

// STASH_T stores group e of a k-contiguous operand (v: the tile's row
// e / (BK/4) at k (e % (BK/4))*4 .. +3, as fetchA and fetchB place it)
// transposed into slice s of the padded float array F, one k row per
// component.
#define STASH_T(F, s, e, v) { \
	uint row_ = (e) / (BK / 4), k_ = ((e) % (BK / 4)) * 4u; \
	F[s][k_][row_] = (v).x; \
	F[s][k_ + 1u][row_] = (v).y; \
	F[s][k_ + 2u][row_] = (v).z; \
	F[s][k_ + 3u][row_] = (v).w; \
}

void stash(uint s, uint lid, vec4 ra[LA], vec4 rb[LB]) {
	for (uint r = 0u; r < uint(LA); r++) {
		uint e = lid + uint(NT) * r;
		if (EA % NT != 0 && e >= uint(EA)) break;
#if A_KCONTIG
		STASH_T(Af, s, e, ra[r])
#else
		As[s][e / QA][e % QA] = ra[r];
#endif
	}
	for (uint r = 0u; r < uint(LB); r++) {
		uint e = lid + uint(NT) * r;
		if (EB % NT != 0 && e >= uint(EB)) break;
#if B_NCONTIG
		Bs[s][e / QB][e % QB] = rb[r];
#else
		STASH_T(Bf, s, e, rb[r])
#endif
	}
}

#define RM (BM / (4 * WY)) // 4-row groups per thread
#define RN (BN / (4 * WX)) // 4-column groups per thread

// MAC_SLICE(CUR) adds the products of shared-memory slice CUR to acc.
#define MAC_SLICE(CUR) \
	for (uint k = 0u; k < BK; k++) { \
		vec4 a[RM], b[RN]; \
		for (uint h = 0u; h < RM; h++) a[h] = readA(CUR, k, uint(WY) * h + ty); \
		for (uint g = 0u; g < RN; g++) b[g] = readB(CUR, k, uint(WX) * g + tx); \
		for (uint h = 0u; h < RM; h++) \
			for (uint i = 0u; i < 4u; i++) \
				for (uint g = 0u; g < RN; g++) \
					acc[4u * h + i][g] += a[h][i] * b[g]; \
	}

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
	uint tx = lid % uint(WX), ty = lid / uint(WX);

	vec4 acc[4 * RM][RN]; // acc[row][column group]
	for (uint i = 0u; i < 4u * RM; i++)
		for (uint g = 0u; g < RN; g++) acc[i][g] = vec4(0.0);

	vec4 ra[LA], rb[LB];
	fetch(m0, n0, kBegin, lid, ra, rb);
	stash(0u, lid, ra, rb);
	memoryBarrierShared();
	barrier();

	uint slices = (kEnd - kBegin + BK - 1u) / BK;
#if PF2
	// Two slices in flight: slice s+2's loads are issued while slice s is
	// multiplied and stored to shared memory after slice s+1 is, so each
	// load has two slices' arithmetic to arrive in. The loop is unrolled
	// by two so that each register stage and shared-memory buffer keeps a
	// constant index.
	vec4 ra1[LA], rb1[LB];
	if (slices > 1u) fetch(m0, n0, kBegin + BK, lid, ra, rb);
	for (uint s = 0u; s < slices; s += 2u) {
		if (s + 2u < slices) fetch(m0, n0, kBegin + (s + 2u) * BK, lid, ra1, rb1);
		MAC_SLICE(0u)
		if (s + 1u < slices) stash(1u, lid, ra, rb);
		memoryBarrierShared();
		barrier();
		if (s + 1u >= slices) break;
		if (s + 3u < slices) fetch(m0, n0, kBegin + (s + 3u) * BK, lid, ra, rb);
		MAC_SLICE(1u)
		if (s + 2u < slices) stash(0u, lid, ra1, rb1);
		memoryBarrierShared();
		barrier();
	}
#else
	for (uint s = 0u; s < slices; s++) {
		uint cur = s & 1u;
		bool more = s + 1u < slices;
		if (more) fetch(m0, n0, kBegin + (s + 1u) * BK, lid, ra, rb);
		MAC_SLICE(cur)
		if (more) stash(cur ^ 1u, lid, ra, rb);
		memoryBarrierShared();
		barrier();
	}
#endif

	for (uint i = 0u; i < 4u * RM; i++) {
		uint m = m0 + 4u * uint(WY) * (i / 4u) + ty * 4u + (i % 4u);
		if (m >= u_M) continue;
		for (uint g = 0u; g < RN; g++) {
			uint n = n0 + 4u * uint(WX) * g + tx * 4u;
#if STORE_PAIRS
			for (uint j = 0u; j < 4u; j += 2u)
				if (n + j < u_N) storePair(m, n + j, acc[i][g][j], acc[i][g][j + 1u]);
#else
			for (uint j = 0u; j < 4u; j++)
				if (n + j < u_N) storeC(m, n + j, acc[i][g][j]);
#endif
		}
	}
}
