// Tiled GEMM core shared by matmul and conv2d (implicit GEMM):
// C[M, N] = A[M, K] x B[K, N] for one batch entry per work-group slice.
//
// 256 threads (16x16) compute a TILE x TILE block of C, TILE 128 or 64;
// each thread holds (TILE/16)² results in registers: rows ty*4+i (and
// 64+ty*4+i for TILE 128), columns tx*4+j (and 64+tx*4+j). K advances BK
// at a time through double-buffered shared memory: the next slice is
// loaded from global memory into registers while the current one is
// multiplied. The backend picks TILE 64 when 128-wide tiles would leave
// multiprocessors idle (small feature maps), with BK 16 so every thread
// still moves one vec4 per operand and slice.
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
// defines TILE and BK.
//
// A and B slices live k-major in shared memory, so the inner product
// reads 4 rows of A and 4 columns of B as vec4s. An operand that is
// k-contiguous in global memory is transposed on the way in, through a
// float array whose rows are padded by 4 so the scalar stores do not
// collide in banks. (Keeping a k-contiguous A row-major instead, read 4 k
// at a time, measured slower on the H200: 25.0 against 27.6 TFLOP/s.)

layout(local_size_x = 256) in;

#define BM TILE
#define BN TILE
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

// Tiles wholly inside the matrices (most of them) load without bounds
// checks; edge tiles read zeros outside.
bool g_interior;

float safeA(uint m, uint k) { return (g_interior || (m < u_M && k < u_K)) ? loadA(m, k) : 0.0; }
float safeB(uint k, uint n) { return (g_interior || (k < u_K && n < u_N)) ? loadB(k, n) : 0.0; }

// Each thread moves one group of 4 elements of A and of B per slice
// (BM*BK/4 = 256 groups): 4 neighbours along the operand's contiguous axis.
void fetch(uint m0, uint n0, uint k0, uint e, out vec4 ra, out vec4 rb) {
#if A_KCONTIG
	uint am = m0 + e / (BK / 4), ak = k0 + (e % (BK / 4)) * 4u;
	ra = vec4(safeA(am, ak), safeA(am, ak + 1u), safeA(am, ak + 2u), safeA(am, ak + 3u));
#else
	uint ak = k0 + e / QA, am = m0 + (e % QA) * 4u;
	ra = vec4(safeA(am, ak), safeA(am + 1u, ak), safeA(am + 2u, ak), safeA(am + 3u, ak));
#endif
#if B_NCONTIG
	uint bk = k0 + e / QB, bn = n0 + (e % QB) * 4u;
#if B_FETCH4
	rb = loadB4(bk, bn);
#else
	rb = vec4(safeB(bk, bn), safeB(bk, bn + 1u), safeB(bk, bn + 2u), safeB(bk, bn + 3u));
#endif
#else
	uint bn = n0 + e / (BK / 4), bk = k0 + (e % (BK / 4)) * 4u;
	rb = vec4(safeB(bk, bn), safeB(bk + 1u, bn), safeB(bk + 2u, bn), safeB(bk + 3u, bn));
#endif
}

void stash(uint s, uint e, vec4 ra, vec4 rb) {
#if A_KCONTIG
	uint m = e / (BK / 4), k = (e % (BK / 4)) * 4u;
	for (uint j = 0u; j < 4u; j++) Af[s][k + j][m] = ra[j];
#else
	As[s][e / QA][e % QA] = ra;
#endif
#if B_NCONTIG
	Bs[s][e / QB][e % QB] = rb;
#else
	uint n = e / (BK / 4), k2 = (e % (BK / 4)) * 4u;
	for (uint j = 0u; j < 4u; j++) Bf[s][k2 + j][n] = rb[j];
#endif
}

#define HALVES (TILE / 64) // 2: each thread owns two 4-row and two 4-column groups

void gemm_tile() {
	uint tilesN = (u_N + BN - 1u) / BN;
	uint tilesM = (u_M + BM - 1u) / BM;
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint tn = gid % tilesN;
	uint tm = (gid / tilesN) % tilesM;
	g_batch = gid / (tilesN * tilesM);
	uint m0 = tm * BM, n0 = tn * BN;
	g_interior = m0 + BM <= u_M && n0 + BN <= u_N && u_K % BK == 0u;

	uint lid = gl_LocalInvocationID.x;
	uint tx = lid % 16u, ty = lid / 16u;

	vec4 acc[4 * HALVES][HALVES]; // acc[row][column group]
	for (uint i = 0u; i < 4u * HALVES; i++)
		for (uint h = 0u; h < HALVES; h++) acc[i][h] = vec4(0.0);

	vec4 ra, rb;
	fetch(m0, n0, 0u, lid, ra, rb);
	stash(0u, lid, ra, rb);
	memoryBarrierShared();
	barrier();

	uint slices = (u_K + BK - 1u) / BK;
	for (uint s = 0u; s < slices; s++) {
		uint cur = s & 1u;
		bool more = s + 1u < slices;
		if (more) fetch(m0, n0, (s + 1u) * BK, lid, ra, rb);
		for (uint k = 0u; k < BK; k++) {
			vec4 a[HALVES], b[HALVES];
			for (uint h = 0u; h < HALVES; h++) {
				a[h] = readA(cur, k, 16u * h + ty);
				b[h] = readB(cur, k, 16u * h + tx);
			}
			for (uint h = 0u; h < HALVES; h++)
				for (uint i = 0u; i < 4u; i++)
					for (uint g = 0u; g < HALVES; g++)
						acc[4u * h + i][g] += a[h][i] * b[g];
		}
		if (more) stash(cur ^ 1u, lid, ra, rb);
		memoryBarrierShared();
		barrier();
	}

	for (uint i = 0u; i < 4u * HALVES; i++) {
		uint m = m0 + 64u * (i / 4u) + ty * 4u + (i % 4u);
		if (m >= u_M) continue;
		for (uint h = 0u; h < HALVES; h++) {
			for (uint j = 0u; j < 4u; j++) {
				uint n = n0 + h * 64u + tx * 4u + j;
				if (n < u_N) storeC(m, n, acc[i][h][j]);
			}
		}
	}
}
