package gl

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
)

// TestWinogradPlans holds the Winograd F(2x2, 3x3) convolution to the
// float64 reference on every element, under every GEMM plan the implicit
// GEMM is tested with (split K included: 520 input channels make K deep
// enough for the backend's own choice to split), at odd extents that
// leave half tiles, F16 and F32 weights, with and without a residual.
// The implicit GEMM's per-element bound (gemmCase.check, K = 9·C terms)
// holds: the transforms only add and subtract, and halve exactly.
func TestWinogradPlans(t *testing.T) {
	b := openGL(t)
	b.winogradMode = 2
	defer func() { b.winogradMode, b.gemmForce = 0, nil }()
	r := rand.New(rand.NewPCG(8, 9))
	cases := []*gemmCase{
		convCase(t, b, r, 2, 5, 9, 11, 70, 3, 3, 1, 1, engine.F16, true),   // odd extents, F16
		convCase(t, b, r, 1, 33, 10, 7, 130, 3, 3, 1, 1, engine.F32, true), // 130 channels: two tiles of M
		convCase(t, b, r, 2, 520, 4, 6, 9, 3, 3, 1, 1, engine.F16, false),  // deep K, no bias
		convCase(t, b, r, 1, 6, 7, 8, 12, 3, 3, 1, 1, engine.F16, true),    // with a residual (below)
	}
	cases[3].addResidual(t, r)
	for _, p := range testPlans {
		b.gemmForce = p
		for i, c := range cases {
			c.name = fmt.Sprintf("winograd case %d %+v", i, p)
			c.check(t, b, r, 0)
		}
	}
	for _, c := range cases {
		c.free()
	}
}

// TestWinogradChoice: where the backend takes the Winograd path on its
// own (mode 1): 3x3, stride 1, padding 1, at least winoMinTiles tiles and
// products that fit winoScratchMax.
func TestWinogradChoice(t *testing.T) {
	b := &Backend{winogradMode: 1}
	for _, c := range []struct {
		d    engine.Conv2DDims
		want bool
	}{
		{engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 3, KW: 3, OH: 64, OW: 64, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}}, true},
		{engine.Conv2DDims{N: 2, C: 640, H: 32, W: 32, OC: 640, KH: 3, KW: 3, OH: 32, OW: 32, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}}, true},
		{engine.Conv2DDims{N: 2, C: 1280, H: 16, W: 16, OC: 1280, KH: 3, KW: 3, OH: 16, OW: 16, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}}, false},   // 128 tiles
		{engine.Conv2DDims{N: 1, C: 128, H: 512, W: 512, OC: 128, KH: 3, KW: 3, OH: 512, OW: 512, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}}, false}, // 0.5 GiB of products
		{engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 3, KW: 3, OH: 32, OW: 32, P: engine.Conv2DParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}}, false},     // stride 2
		{engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 1, KW: 1, OH: 64, OW: 64, P: engine.Conv2DParams{StrideH: 1, StrideW: 1}}, false},                       // 1x1
	} {
		if got := b.useWinograd(c.d); got != c.want {
			t.Errorf("%+v: Winograd %v, want %v", c.d, got, c.want)
		}
	}
	b.winogradMode = 2 // tests: any 3x3, stride 1, padding 1
	if !b.useWinograd(engine.Conv2DDims{N: 1, C: 5, H: 9, W: 11, OC: 70, KH: 3, KW: 3, OH: 9, OW: 11, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}}) {
		t.Error("mode 2 kept a small 3x3 convolution off the Winograd path")
	}
	b.winogradMode = 0
	if b.useWinograd(engine.Conv2DDims{N: 2, C: 320, H: 64, W: 64, OC: 320, KH: 3, KW: 3, OH: 64, OW: 64, P: engine.Conv2DParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}}) {
		t.Error("mode 0 took the Winograd path")
	}
}
