// Winograd's filter transform by rows of G (F(2x2, 3x3)) or G'
// (F(4x4, 3x3)), by WINO_M, the output tile's side; see
// winograd_filter.comp. WA is the input tile's side.

#define WA (WINO_M + 2)

// gcomb combines three filter taps by row r of G (or G').
float gcomb(uint r, float g0, float g1, float g2) {
#if WINO_M == 2
	if (r == 0u) return g0;
	if (r == 3u) return g2;
	if (r == 1u) return ((g0 + g1) + g2) * 0.5;
	return ((g0 - g1) + g2) * 0.5;
#else
	switch (r) {
	case 0u: return g0;
	case 1u: return (g0 + g1) + g2;
	case 2u: return (g0 - g1) + g2;
	case 3u: return (g0 + 2.0 * g1) + 4.0 * g2;
	case 4u: return (g0 - 2.0 * g1) + 4.0 * g2;
	default: return g2;
	}
#endif
}

// gtransform is (G g Gᵀ)[i][j] for the 3x3 filter g (row-major).
float gtransform(uint i, uint j, float g[9]) {
	float h0 = gcomb(i, g[0], g[3], g[6]); // G's row i down each filter column
	float h1 = gcomb(i, g[1], g[4], g[7]);
	float h2 = gcomb(i, g[2], g[5], g[8]);
	return gcomb(j, h0, h1, h2);
}
