package gl

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
)

// TestWinogradPlans holds the Winograd convolutions, F(2x2, 3x3) and
// F(4x4, 3x3), to the float64 reference on every element, under every
// GEMM plan the implicit GEMM is tested with (split K included: 520 input
// channels make K deep enough for the backend's own choice to split), at
// odd extents that leave partial tiles and channel counts that need
// padding to vec4s, F16 and F32 weights, with and without a residual;
// then with scratch caps small enough to run in chunks of output channels
// and of tiles. All keep the implicit GEMM's
// per-element bound (gemmCase.check: 2(K+2)·2⁻²⁴ of the terms' absolute
// sum, K = 9·C), a worst case for a plain sum of K products: F(2x2, 3x3)'s transforms only
// add, subtract and halve; F(4x4, 3x3)'s multiply by up to 5 on the way in
// and 8 on the way out and scale by sixths, and still stay within it on
// every element here (a scale of 1/6.01 instead of 1/6 fails it).
func TestWinogradPlans(t *testing.T) {
	b := openGL(t)
	b.winograd = true
	b.winoMinPixels = 0 // Winograd for the small folded maps below too
	defer func() { b.gemmForce, b.winoUCap, b.winoVCap, b.winoF4 = nil, winoUMax, winoVMax, 0 }()
	r := rand.New(rand.NewPCG(8, 9))
	cases := []*gemmCase{
		convCase(t, b, r, 2, 5, 9, 11, 70, 3, 3, 1, 1, engine.F16, true),   // odd extents, F16
		convCase(t, b, r, 1, 33, 10, 7, 130, 3, 3, 1, 1, engine.F32, true), // 130 channels: two tiles of M
		convCase(t, b, r, 2, 520, 4, 6, 9, 3, 3, 1, 1, engine.F16, false),  // deep K, no bias
		convCase(t, b, r, 1, 6, 7, 8, 12, 3, 3, 1, 1, engine.F16, true),    // with a residual (below)
		convCase(t, b, r, 1, 3, 1, 1, 5, 3, 3, 1, 1, engine.F32, true),     // a 1x1 image: one tile, mostly padding
		convCase(t, b, r, 2, 4, 2, 3, 6, 3, 3, 1, 1, engine.F16, true),     // 2x3: one partial tile per image
	}
	cases[3].addResidual(t, r)

	// Chunks: 2 images of 17x19 make 180 tiles of 2x2 (50 of 4x4). U and
	// V take ξ·CP·4 bytes per output channel and per tile, M ξ·occ·4 per
	// tile. For F(2x2, 3x3) (ξ = 16): under an 8,192-byte cap, 6 input
	// channels (CP 8) and 20 output channels run as 2 chunks of 10
	// channels and 15 of 12 tiles (M's cap); under 202,752 bytes, 130
	// input channels (CP 132) and 12 output channels as one chunk of
	// channels and 8 of tiles, 7 of 24 and one of 12. F(4x4, 3x3) (ξ = 36)
	// chunks both more: 3 chunks of 7 channels by 13 of 4 tiles, and 2 of
	// 6 by 7 of 8.
	dims := func(c, oc int) engine.Conv2DDims {
		return engine.Conv2DDims{N: 2, C: c, H: 17, W: 19, OC: oc, KH: 3, KW: 3, OH: 17, OW: 19, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}}
	}
	chunked := []struct {
		c     *gemmCase
		d     engine.Conv2DDims
		lim   int
		chunk [2][2]int // occ, tc for F(2x2) and F(4x4)
	}{
		{convCase(t, b, r, 2, 6, 17, 19, 20, 3, 3, 1, 1, engine.F32, true), dims(6, 20), 8192, [2][2]int{{10, 12}, {7, 4}}},
		{convCase(t, b, r, 2, 130, 17, 19, 12, 3, 3, 1, 1, engine.F16, true), dims(130, 12), 202752, [2][2]int{{12, 24}, {6, 8}}},
	}
	for _, k := range chunked {
		k.c.addResidual(t, r)
	}
	for v, f4 := range []int{0, 2} {
		b.winoF4 = f4
		name := []string{"F(2x2, 3x3)", "F(4x4, 3x3)"}[v]
		for _, p := range testPlans {
			b.gemmForce = p
			for i, c := range cases {
				c.name = fmt.Sprintf("%s case %d %+v", name, i, p)
				c.check(t, b, r, 0)
			}
		}
		b.gemmForce = nil
		for i, k := range chunked {
			b.winoUCap, b.winoVCap = k.lim, k.lim
			m := 2 + 2*v
			if got := b.winoTile(k.d); got != m {
				t.Fatalf("%s chunked case %d: tiles of %d", name, i, got)
			}
			occ, tc, ok := b.winoChunks(k.d, m)
			if !ok || occ != k.chunk[v][0] || tc != k.chunk[v][1] {
				t.Fatalf("%s chunked case %d: winoChunks = %d, %d, %v; want %d, %d, true", name, i, occ, tc, ok, k.chunk[v][0], k.chunk[v][1])
			}
			for _, p := range []*gemmPlan{nil, {BM: 64, BN: 64, BK: 16, Split: 3}, {BM: 128, BN: 32, BK: 8, Split: 2, Threads: 64}} {
				b.gemmForce = p
				k.c.name = fmt.Sprintf("%s chunked case %d %+v", name, i, p)
				k.c.check(t, b, r, 0)
			}
			b.winoUCap, b.winoVCap = winoUMax, winoVMax
		}
	}
	// The cases above store rows as whole vec2s and vec4s where the width
	// allows (New's default: cases 2 and 3, and 3's residual read so);
	// here every output is stored alone.
	b.winoOutVec = false
	for _, f4 := range []int{0, 2} {
		b.winoF4 = f4
		for i, c := range cases {
			c.name = fmt.Sprintf("F4 mode %d case %d, scalar output", f4, i)
			c.check(t, b, r, 0)
		}
	}
	b.winoOutVec = true
	for _, c := range cases {
		c.free()
	}
	for _, k := range chunked {
		k.c.free()
	}
}

// TestEvenChunks: even's chunk sizes.
func TestEvenChunks(t *testing.T) {
	for _, c := range []struct{ n, most, unit, want int }{
		{180, 500, 4, 180}, // one chunk, whatever its size
		{180, 64, 4, 60},   // 3 chunks
		{180, 24, 4, 24},   // 8 chunks: 7 of 24 and 12
		{20, 7, 1, 7},      // 7, 7, 6
		{9, 5, 4, 4},       // 2 chunks would need 8 > 5
		{9, 3, 4, 0},       // below the unit
	} {
		if got := even(c.n, c.most, c.unit); got != c.want {
			t.Errorf("even(%d, %d, %d) = %d, want %d", c.n, c.most, c.unit, got, c.want)
		}
	}
}

// TestWinogradChoice: where the backend takes the Winograd path: 3x3,
// stride 1, padding 1, when on and its scratch cap holds at least one
// output channel's transformed filters.
func TestWinogradChoice(t *testing.T) {
	b := &Backend{winograd: true}
	b.planDefaults()
	p1 := engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	for _, c := range []struct {
		d    engine.Conv2DDims
		want bool
	}{
		{engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 3, KW: 3, OH: 64, OW: 64, P: p1}, true},
		{engine.Conv2DDims{N: 1, C: 2560, H: 8, W: 8, OC: 1280, KH: 3, KW: 3, OH: 8, OW: 8, P: p1}, true},       // in chunks of 320 channels
		{engine.Conv2DDims{N: 2, C: 2560, H: 8, W: 8, OC: 1280, KH: 3, KW: 3, OH: 8, OW: 8, P: p1}, false},      // two images folded into one implicit GEMM
		{engine.Conv2DDims{N: 2, C: 1280, H: 16, W: 16, OC: 1280, KH: 3, KW: 3, OH: 16, OW: 16, P: p1}, true},   // 256 pixels: not folded
		{engine.Conv2DDims{N: 1, C: 128, H: 512, W: 512, OC: 128, KH: 3, KW: 3, OH: 512, OW: 512, P: p1}, true}, // the VAE's full resolution, in chunks of 5960 tiles
		{engine.Conv2DDims{N: 1, C: 5, H: 9, W: 11, OC: 70, KH: 3, KW: 3, OH: 9, OW: 11, P: p1}, true},
		{engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 3, KW: 3, OH: 32, OW: 32, P: engine.Conv2DParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}}, false}, // stride 2
		{engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 1, KW: 1, OH: 64, OW: 64, P: engine.Conv2DParams{StrideH: 1, StrideW: 1}}, false},                   // 1x1
		{engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 3, KW: 3, OH: 66, OW: 66, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 2, PadW: 2}}, false}, // padding 2
	} {
		if got := b.useWinograd(c.d); got != c.want {
			t.Errorf("%+v: Winograd %v, want %v", c.d, got, c.want)
		}
	}
	d := engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 3, KW: 3, OH: 64, OW: 64, P: p1}
	if occ, tc, _ := b.winoChunks(d, 2); occ != 320 || tc != 2048 {
		t.Errorf("320 channels at 64x64: chunks of %d channels and %d tiles, want all in one (320, 2048)", occ, tc)
	}
	vae := engine.Conv2DDims{N: 1, C: 128, H: 512, W: 512, OC: 128, KH: 3, KW: 3, OH: 512, OW: 512, P: p1}
	if occ, tc, _ := b.winoChunks(vae, 2); occ != 128 || tc != 5960 {
		t.Errorf("128 channels at 512x512: chunks of %d channels and %d tiles, want 128 and 5960 (11 chunks within 48 MB)", occ, tc)
	}
	// F(4x4, 3x3) for convolutions marked Fast (mode 1, the default) from
	// 128 tiles of 4x4; for every one when forced (mode 2).
	fast := p1
	fast.Fast = true
	dFast := d
	dFast.P = fast
	for _, c := range []struct {
		d        engine.Conv2DDims
		f4, tile int
	}{
		{dFast, 0, 2},
		{dFast, 1, 4},
		{d, 1, 2}, // not Fast
		{engine.Conv2DDims{N: 2, C: 640, H: 32, W: 32, OC: 640, KH: 3, KW: 3, OH: 32, OW: 32, P: fast}, 1, 4},     // 128 tiles
		{engine.Conv2DDims{N: 2, C: 1280, H: 16, W: 16, OC: 1280, KH: 3, KW: 3, OH: 16, OW: 16, P: fast}, 1, 2},   // 32 tiles
		{engine.Conv2DDims{N: 2, C: 1280, H: 16, W: 16, OC: 1280, KH: 3, KW: 3, OH: 16, OW: 16, P: p1}, 2, 4},     // forced
		{engine.Conv2DDims{N: 1, C: 128, H: 512, W: 512, OC: 128, KH: 3, KW: 3, OH: 512, OW: 512, P: fast}, 1, 4}, // the VAE decoder
	} {
		b.winoF4 = c.f4
		if got := b.winoTile(c.d); got != c.tile {
			t.Errorf("%+v, F4 mode %d: tiles of %d, want %d", c.d, c.f4, got, c.tile)
		}
	}
	b.winoF4 = 0
	b.winoUCap = 16*320*4 - 1 // one output channel's U takes 20,480 bytes
	if b.useWinograd(d) {
		t.Error("a cap below one output channel's filters took the Winograd path")
	}
	b.winoUCap, b.winograd = winoUMax, false
	if b.useWinograd(d) {
		t.Error("Winograd off took the Winograd path")
	}
}
