package vae

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
	"glimmer/engine/cpu"
	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
)

// tolerance is the allowed max|got − ref| relative to max(1, max|ref|).
// The references are float32 on the CPU from fp16-exact weights; the
// fixture README puts a correct float32 implementation within ~1e-4
// (another summation order, a GPU: 6e-6 on images), so 1e-4 leaves room
// for llvmpipe's and our kernels' orders while catching real mistakes: a
// symmetric instead of (0,1,0,1) downsampling pad, a wrong eps or a
// missing residual moves the outputs by 1e-2 or more.
const tolerance = 1e-4

var backends = enginetest.Backends()

type fixture struct {
	name  string
	model []string // path under ../shared
	refs  []string
}

var fixtureModels = []fixture{
	{"sd1-single", []string{"fixtures", "sd1-tiny", "sd1-tiny.safetensors"}, []string{"fixtures", "sd1-tiny", "refs", "sd1-components.safetensors"}},
	{"sd1-diffusers", []string{"fixtures", "sd1-tiny", "diffusers"}, []string{"fixtures", "sd1-tiny", "refs", "sd1-components.safetensors"}},
	{"sd2-diffusers", []string{"fixtures", "sd2-tiny", "diffusers"}, []string{"fixtures", "sd2-tiny", "refs", "sd2-components.safetensors"}},
}

// ref reads one reference tensor's values and shape.
func ref(t *testing.T, elem []string, name string) ([]float32, []int) {
	t.Helper()
	f, err := safetensors.Open(fixtures.Path(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Info(name)
	shape := make([]int, len(info.Shape))
	for i, d := range info.Shape {
		shape[i] = int(d)
	}
	return v, shape
}

// loadVAE opens a fixture model and loads its VAE onto b with F16 weights.
func loadVAE(t *testing.T, b engine.Backend, fx fixture) *VAE {
	t.Helper()
	m, err := model.Open(fixtures.Path(t, fx.model...), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v, err := Load(nn.NewLoader(b, m.Component(model.VAE), false), m.Config.VAE)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func upload(b engine.Backend, v []float32, shape ...int) *engine.Tensor {
	t := b.New(engine.F32, shape...)
	b.Write(t, v)
	return t
}

func read(t *testing.T, b engine.Backend, x *engine.Tensor) []float32 {
	t.Helper()
	v, err := b.Read(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// maxErr returns max|got − want| and max|want|.
func maxErr(got, want []float32) (float64, float64) {
	var e, m float64
	for i := range want {
		e = max(e, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return e, m
}

func check(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i, g := range got {
		if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
			t.Fatalf("%s[%d] = %v", what, i, g)
		}
	}
	e, m := maxErr(got, want)
	bound := tolerance * max(1, m)
	t.Logf("%s: max|err| %.3g (max|ref| %.3g, bound %.3g)", what, e, m, bound)
	if e > bound {
		t.Errorf("%s: max|err| %.3g > %.3g", what, e, bound)
	}
}

// TestFixtures decodes vae.z and encodes vae.image of every fixture model
// on every backend and compares with diffusers' outputs.
func TestFixtures(t *testing.T) {
	for _, bk := range backends {
		t.Run(bk.Name, func(t *testing.T) {
			b := bk.Open(t)
			defer b.Close()
			for _, fx := range fixtureModels {
				t.Run(fx.name, func(t *testing.T) {
					v := loadVAE(t, b, fx)
					defer v.Close()

					checkDecode(t, b, v, fx, "decoded")
					// As the pipeline decodes: Fast convolutions (on GL,
					// Winograd F(4x4, 3x3) at 64x64).
					v.FastDecode(true)
					checkDecode(t, b, v, fx, "decoded (FastDecode)")
					v.FastDecode(false)

					iv, is := ref(t, fx.refs, "vae.image") // [1, 3, 64, 96]
					wantMean, ms := ref(t, fx.refs, "vae.encoded_mean")
					wantLogvar, _ := ref(t, fx.refs, "vae.encoded_logvar")
					img := upload(b, iv, is...)        // [1, 3, 64, 96]
					mean := b.New(engine.F32, ms...)   // [1, 4, 8, 12]
					logvar := b.New(engine.F32, ms...) // [1, 4, 8, 12]
					defer b.Free(img)
					defer b.Free(mean)
					defer b.Free(logvar)
					if err := v.Encode(mean, logvar, img); err != nil {
						t.Fatal(err)
					}
					check(t, "encoded_mean", read(t, b, mean), wantMean)
					check(t, "encoded_logvar", read(t, b, logvar), wantLogvar)
				})
			}
		})
	}
}

// TestFastDecodeF4Everywhere decodes every fixture on the GL backend with
// Winograd F(4x4, 3x3) forced on each 3x3 convolution it fits, not only
// where FastDecode's default takes it (64x64 here), and holds it to the
// same tolerance.
func TestFastDecodeF4Everywhere(t *testing.T) {
	t.Setenv("GLIMMER_GL_WINO_F4", "2")
	b := enginetest.OpenGL(t)
	defer b.Close()
	for _, fx := range fixtureModels {
		t.Run(fx.name, func(t *testing.T) {
			v := loadVAE(t, b, fx)
			defer v.Close()
			v.FastDecode(true)
			checkDecode(t, b, v, fx, "decoded")
		})
	}
}

// checkDecode decodes the fixture's vae.z and compares with its
// vae.decoded.
func checkDecode(t *testing.T, b engine.Backend, v *VAE, fx fixture, what string) {
	t.Helper()
	zv, zs := ref(t, fx.refs, "vae.z") // [1, 4, 8, 8]
	want, ds := ref(t, fx.refs, "vae.decoded")
	z := upload(b, zv, zs...)       // [1, 4, 8, 8]
	dst := b.New(engine.F32, ds...) // [1, 3, 64, 64]
	defer b.Free(z)
	defer b.Free(dst)
	if err := v.Decode(dst, z); err != nil {
		t.Fatal(err)
	}
	check(t, what, read(t, b, dst), want)
}

// TestLoadDecoder checks that a decoder-only VAE decodes bit-identically
// to a full one, holds fewer weights, and refuses to encode.
func TestLoadDecoder(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	for _, fx := range fixtureModels {
		t.Run(fx.name, func(t *testing.T) {
			m, err := model.Open(fixtures.Path(t, fx.model...), model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			full := loadVAE(t, b, fx)
			defer full.Close()
			dec, err := LoadDecoder(nn.NewLoader(b, m.Component(model.VAE), false), m.Config.VAE)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			if dec.Encoder != nil || dec.Moments != nil || dec.WeightBytes() >= full.WeightBytes() {
				t.Errorf("decoder-only VAE: encoder %v, %d bytes of weights (full: %d)", dec.Encoder != nil, dec.WeightBytes(), full.WeightBytes())
			}
			t.Logf("weights: %d bytes, %d with the encoder", dec.WeightBytes(), full.WeightBytes())

			zv, zs := ref(t, fx.refs, "vae.z")     // [1, 4, 8, 8]
			z := upload(b, zv, zs...)              // [1, 4, 8, 8]
			dst := b.New(engine.F32, 1, 3, 64, 64) // [1, 3, 64, 64]
			var outs [2][]float32
			for i, v := range []*VAE{full, dec} {
				if err := v.Decode(dst, z); err != nil {
					t.Fatal(err)
				}
				outs[i] = read(t, b, dst)
			}
			if e, _ := maxErr(outs[1], outs[0]); e != 0 {
				t.Errorf("the decoder-only VAE decodes differently, by %g", e)
			}
			mean := b.New(engine.F32, 1, 4, 8, 8) // [1, 4, 8, 8]
			if err := dec.Encode(mean, mean, dst); err == nil {
				t.Error("Encode without the encoder did not fail")
			}
			if err := dec.JoinMoments(); err == nil {
				t.Error("JoinMoments without the encoder did not fail")
			}
		})
	}
}

// TestDownsamplePad holds the padded stride-2 convolution to a direct
// evaluation of torch's F.pad(x, (0, 1, 0, 1)) then conv, on odd and even
// sizes.
func TestDownsamplePad(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	const n, c, oc = 2, 3, 5
	for _, hw := range [][2]int{{6, 8}, {7, 5}, {2, 3}} {
		h, w := hw[0], hw[1]
		xv, wv, bv := randn(n*c*h*w), randn(oc*c*9), randn(oc)
		conv := &nn.Conv2d{Weight: upload(b, wv, oc, c, 3, 3), Bias: upload(b, bv, oc), In: c, Out: oc, K: 3,
			P: engine.Conv2DParams{StrideH: 2, StrideW: 2}}
		x := upload(b, xv, n, c, h, w) // [N, C, H, W]
		out := downsample(run{b, nn.NewPool(b)}, conv, x)
		if want := (engine.Shape{n, oc, h / 2, w / 2}); !out.Shape().Equal(want) {
			t.Fatalf("%dx%d: out %v, want %v", h, w, out.Shape(), want)
		}
		got := read(t, b, out)
		at := func(ni, ci, y, x int) float64 {
			if y >= h || x >= w { // the bottom/right zero pad
				return 0
			}
			return float64(xv[((ni*c+ci)*h+y)*w+x])
		}
		for ni := range n {
			for o := range oc {
				for i := range h / 2 {
					for j := range w / 2 {
						s := float64(bv[o])
						for ci := range c {
							for ky := range 3 {
								for kx := range 3 {
									s += float64(wv[((o*c+ci)*3+ky)*3+kx]) * at(ni, ci, 2*i+ky, 2*j+kx)
								}
							}
						}
						if g := got[((ni*oc+o)*(h/2)+i)*(w/2)+j]; math.Abs(float64(g)-s) > 1e-5 {
							t.Fatalf("%dx%d: out[%d,%d,%d,%d] = %v, want %v", h, w, ni, o, i, j, g, s)
						}
					}
				}
			}
		}
	}
}

// TestTiledDecode decodes a 16x16 latent whole and as 8x8 tiles with
// overlap 4 and measures the distance; it checks the stitching exactly
// where one tile alone covers the image, and against a single tile
// covering everything.
//
// How far a tiled decode is from the whole one is a property of the
// model: each GroupNorm normalises with the statistics of what it sees,
// the mid-block attention is global, and the zero padding at a tile's
// edge replaces real neighbours, so a tile does not decode as the same
// region of the whole latent. The fixture's random-weight decoder is very
// sensitive to that (its images are nearly noise: std 0.34, mean step
// between neighbouring pixels 0.18), and an 8x8-latent tile is mostly
// border. Measured (CPU): max|Δ| 1.82, RMS 0.249 for 8x8 tiles, overlap
// 4; 1.11 / 0.121 for 12x12, overlap 4. The bounds below are those
// measurements with a margin, a regression guard rather than a quality
// claim; TestBlendWeights checks the blend that keeps seams away.
func TestTiledDecode(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	v := loadVAE(t, b, fixtureModels[1])
	defer v.Close()
	const h, w = 16, 16
	rng := rand.New(rand.NewPCG(7, 7))
	zv := make([]float32, 4*h*w)
	for i := range zv {
		zv[i] = float32(rng.NormFloat64())
	}
	z := upload(b, zv, 1, 4, h, w)             // [1, 4, 16, 16]
	whole := b.New(engine.F32, 1, 3, 8*h, 8*w) // [1, 3, 128, 128]
	tiled := b.New(engine.F32, 1, 3, 8*h, 8*w) // [1, 3, 128, 128]
	if err := v.Decode(whole, z); err != nil {
		t.Fatal(err)
	}
	wv := read(t, b, whole)
	for _, tc := range []struct {
		tile, overlap int
		maxBound      float64
		rmsBound      float64
	}{
		{8, 4, 2.0, 0.3},
		{12, 4, 1.3, 0.15},
	} {
		if err := v.DecodeTiled(tiled, z, tc.tile, tc.overlap); err != nil {
			t.Fatal(err)
		}
		tv := read(t, b, tiled)
		e, m := maxErr(tv, wv)
		var ss float64
		for i := range wv {
			d := float64(tv[i] - wv[i])
			ss += d * d
		}
		rms := math.Sqrt(ss / float64(len(wv)))
		t.Logf("tiles %dx%d, overlap %d vs whole: max|Δ| %.3g, RMS %.3g (max|whole| %.3g)", tc.tile, tc.tile, tc.overlap, e, rms, m)
		if e > tc.maxBound || rms > tc.rmsBound {
			t.Errorf("tiles %d/%d: max|Δ| %.3g, RMS %.3g; want ≤ %g, %g", tc.tile, tc.overlap, e, rms, tc.maxBound, tc.rmsBound)
		}
		if tc.tile != 8 {
			continue
		}
		// Pixels [0, 32)² have tile (0, 0) alone, at full weight: they
		// must be that tile's own decode.
		zt := b.New(engine.F32, 1, 4, 8, 8)   // [1, 4, 8, 8]
		it := b.New(engine.F32, 1, 3, 64, 64) // [1, 3, 64, 64]
		sub := make([]float32, 4*8*8)
		for c := range 4 {
			for y := range 8 {
				copy(sub[(c*8+y)*8:(c*8+y+1)*8], zv[(c*h+y)*w:])
			}
		}
		b.Write(zt, sub)
		if err := v.Decode(it, zt); err != nil {
			t.Fatal(err)
		}
		iv := read(t, b, it)
		for c := range 3 {
			for y := range 32 {
				for x := range 32 {
					if g, want := tv[(c*8*h+y)*8*w+x], iv[(c*64+y)*64+x]; g != want {
						t.Fatalf("tiled[%d,%d,%d] = %v, the corner tile decodes %v", c, y, x, g, want)
					}
				}
			}
		}
	}

	// One tile covering the whole latent is the plain decode: this checks
	// the host-side copy and normalisation exactly.
	if err := v.DecodeTiled(tiled, z, 16, 0); err != nil {
		t.Fatal(err)
	}
	if e, _ := maxErr(read(t, b, tiled), wv); e != 0 {
		t.Errorf("single-tile decode differs from Decode by %g", e)
	}
}

// TestBlendWeights checks the seam-free property of the blend along one
// axis (the 2-D weights are products of these): every pixel's weights sum
// to a positive value, each tile's share (its weight over the sum)
// changes by at most 2/R between neighbouring pixels, R = f·overlap (1/R
// where two tiles overlap: the shares are then exactly linear; up to
// about 1.4/R measured where the moved-back last tile makes three
// overlap), and a tile's share is at most 1/R at an edge it shares with a
// neighbour. So the output never switches from one tile to another
// between two pixels but fades over R pixels, and a tile's own edge,
// where its zero padding distorts it most, hardly counts.
func TestBlendWeights(t *testing.T) {
	const f = 8
	for _, tc := range [][3]int{{16, 8, 4}, {18, 8, 4}, {64, 24, 8}, {9, 8, 1}, {8, 8, 0}, {5, 8, 2}} {
		n, tile, overlap := tc[0], tc[1], tc[2]
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			te := min(tile, n)
			starts := tileStarts(n, te, overlap)
			if starts[0] != 0 || starts[len(starts)-1] != n-te {
				t.Fatalf("starts %v do not span [0, %d)", starts, n)
			}
			sum := make([]float64, f*n)
			weights := make([][]float32, len(starts))
			for k, s := range starts {
				if k > 0 && starts[k-1]+te-s < overlap {
					t.Fatalf("starts %v: tiles %d and %d overlap by less than %d", starts, k-1, k, overlap)
				}
				weights[k] = ramp(s, te, n, f, overlap)
				for i, wt := range weights[k] {
					sum[f*s+i] += float64(wt)
				}
			}
			for i, s := range sum {
				if s <= 0 {
					t.Fatalf("pixel %d has weight sum %g", i, s)
				}
			}
			r := 1.0 / float64(f*max(overlap, 1))
			for k, s := range starts {
				share := func(i int) float64 { // tile k's share of pixel f·s+i, 0 outside it
					if i < 0 || i >= f*te {
						return 0
					}
					return float64(weights[k][i]) / sum[f*s+i]
				}
				for i := -1; i < f*te; i++ {
					p := f*s + i // pixels p and p+1
					if p < 0 || p+1 >= f*n {
						continue
					}
					if d := math.Abs(share(i+1) - share(i)); d > 2*r+1e-6 {
						t.Errorf("tile %d: share jumps by %.3g between pixels %d and %d", k, d, p, p+1)
					}
				}
				if s > 0 && share(0) > r {
					t.Errorf("tile %d: share %.3g at its first pixel, which it shares with a neighbour", k, share(0))
				}
				if s+te < n && share(f*te-1) > r {
					t.Errorf("tile %d: share %.3g at its last pixel, which it shares with a neighbour", k, share(f*te-1))
				}
			}
		})
	}
}

// TestAutoTile sets a budget below the whole decode's estimate and checks
// Decode switches to the tiled decode that fits, and that DecodeMemory is
// what a fresh pool actually allocates.
func TestAutoTile(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	v := loadVAE(t, b, fixtureModels[1])
	defer v.Close()
	const h, w = 12, 12
	zv := make([]float32, 4*h*w)
	for i := range zv {
		zv[i] = float32(math.Sin(float64(i)))
	}
	z := upload(b, zv, 1, 4, h, w)           // [1, 4, 12, 12]
	dst := b.New(engine.F32, 1, 3, 8*h, 8*w) // [1, 3, 96, 96]

	est := v.DecodeMemory(z.Shape())
	before := b.MemoryStats()
	if before.Peak != before.Current {
		t.Fatalf("memory peaked at %d bytes before the decode, holds %d: the decode's own peak cannot be seen", before.Peak, before.Current)
	}
	if err := v.Decode(dst, z); err != nil {
		t.Fatal(err)
	}
	if got := b.MemoryStats().Peak - before.Current; got != est {
		t.Errorf("DecodeMemory %d, a fresh decode's activations peaked at %d", est, got)
	}
	est8 := v.DecodeMemory(engine.Shape{1, 4, 8, 8})
	t.Logf("DecodeMemory: 12x12 latent %d bytes, 8x8 %d", est, est8)

	v.MaxActivationBytes = est - 1 // only an 8x8 tile fits
	if err := v.Decode(dst, z); err != nil {
		t.Fatal(err)
	}
	auto := read(t, b, dst)
	if got := v.ActivationBytes(); got > est8+int64(4*(4*8*8+3*64*64)) {
		t.Errorf("after the tiled decode the pool holds %d bytes, want about %d", got, est8)
	}
	if err := v.DecodeTiled(dst, z, 8, 2); err != nil {
		t.Fatal(err)
	}
	if e, _ := maxErr(read(t, b, dst), auto); e != 0 {
		t.Errorf("automatic tiling differs from DecodeTiled(8, 2) by %g", e)
	}
}

// zeroSource gives every tensor a config expects, with no data: enough to
// build a VAE on the shape-only backend.
type zeroSource map[string]engine.Shape

func (s zeroSource) Raw(name string) (model.Data, error) {
	sh, ok := s["vae/"+name]
	if !ok {
		return model.Data{}, fmt.Errorf("no tensor %s", name)
	}
	return model.Data{DType: engine.F16, Shape: sh}, nil
}

// TestSD15Memory checks DecodeMemory's documented figure for SD 1.5's VAE
// at 512x512, built on the shape-only backend (no real weights needed).
func TestSD15Memory(t *testing.T) {
	cfg := model.Config{VAE: model.VAEConfig{
		InChannels: 3, OutChannels: 3, LatentChannels: 4,
		BlockOutChannels: []int{128, 256, 512, 512}, LayersPerBlock: 2,
		MidAttention: true, UseQuantConv: true, UsePostQuantConv: true,
		ScalingFactor: 0.18215, NormGroups: 32, NormEps: 1e-6,
	}}
	src := zeroSource{}
	for _, s := range cfg.Expected() {
		src[s.Name] = s.Shape
	}
	v, err := Load(nn.NewLoader(nn.ShapeOnly{}, src, false), cfg.VAE)
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []int{64, 128} {
		z := engine.Shape{1, 4, side, side}
		n := v.DecodeMemory(z)
		arena := 4 * int64(v.DecodeArena(z, 64))
		t.Logf("SD 1.5 decode of a %dx%d image: %.2f GiB of activations best fit (%d bytes), %d bytes in its arena",
			8*side, 8*side, float64(n)/(1<<30), n, arena)
		if want := float64(side*side) / (64 * 64) * 0.5 * (1 << 30); math.Abs(float64(n)-want) > 0.05*want {
			t.Errorf("%dx%d: %d bytes, documented as %.3g", 8*side, 8*side, n, want)
		}
		// Decode lays its activations out in one arena (--offload puts
		// it in the memory the U-Net's weights leave): no larger than
		// what best fit takes at its peak.
		if arena > n {
			t.Errorf("%dx%d: the decode's arena takes %d bytes, more than best fit's %d", 8*side, 8*side, arena, n)
		}
	}
	if tile := v.fitTile(1, 128, 1<<30+1<<29); tile != 104 { // 1.32 GiB; 112 would take 1.53
		t.Errorf("a 1.5 GiB budget fits tile %d, want 104", tile)
	}
}
