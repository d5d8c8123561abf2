package unet_test

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"glimmer/engine"
	"glimmer/engine/cpu"
	"glimmer/engine/device"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
	"glimmer/engine/unet"
)

// sd15 is the U-Net configuration of Stable Diffusion 1.5 (what
// model.Open derives from v1-5-pruned-emaonly.safetensors).
var sd15 = model.UNetConfig{
	InChannels: 4, OutChannels: 4, BlockOutChannels: []int{320, 640, 1280, 1280}, LayersPerBlock: 2,
	DownAttention: []bool{true, true, true, false}, UpAttention: []bool{false, true, true, true}, MidAttention: true,
	Heads: []int{8, 8, 8, 8}, CrossAttentionDim: 768, TransformerDepth: 1, UseLinearProjection: false,
	TimeEmbedDim: 1280, FlipSinToCos: true, FreqShift: 0, NormGroups: 32, NormEps: 1e-5, AttnNormEps: 1e-6,
}

// sd15FLOP is one batch-2 64x64 step of the SD 1.5 U-Net, as measured for
// the reference (DESIGN.md: 1.61 TFLOP with CFG).
const sd15FLOP = 1.61e12

// randomSource is an nn.Source of random F16 weights with the shapes a
// U-Net configuration implies (model.Config.Expected), for benchmarks.
// Matrices and kernels are uniform with variance 1/fan-in, norm scales near 1,
// biases small; each tensor's values depend only on its name.
type randomSource map[string]engine.Shape

func newRandomSource(cfg model.UNetConfig) randomSource {
	full := model.Config{UNet: cfg}
	src := randomSource{}
	for _, s := range full.Expected() {
		if name, ok := strings.CutPrefix(s.Name, model.UNet+"/"); ok {
			src[name] = s.Shape
		}
	}
	return src
}

func (r randomSource) Raw(name string) (model.Data, error) {
	shape, ok := r[name]
	if !ok {
		return model.Data{}, fmt.Errorf("random source: no tensor %s", name)
	}
	n := shape.Numel()
	var scale, offset float32
	switch {
	case len(shape) > 1:
		scale = float32(math.Sqrt(3 / float64(n/shape[0]))) // variance 1/fan-in
	case strings.HasSuffix(name, ".weight"): // a norm's scale
		scale, offset = 0.1, 1
	default: // a bias
		scale = 0.02
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	seed := h.Sum64()
	// Chunks of 1M values are generated in parallel (SD 1.5 has 860M).
	const chunk = 1 << 20
	b := make([]byte, 2*n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for lo := 0; lo < n; lo += chunk {
		wg.Add(1)
		sem <- struct{}{}
		go func(lo, hi int) {
			defer func() { <-sem; wg.Done() }()
			v := randomValues(hi-lo, seed+uint64(lo))
			for i, x := range v {
				binary.LittleEndian.PutUint16(b[2*(lo+i):], safetensors.Float32ToHalf(offset+scale*x))
			}
		}(lo, min(lo+chunk, n))
	}
	wg.Wait()
	return model.Data{DType: engine.F16, Shape: shape.Clone(), Bytes: b}, nil
}

// randomValues returns n values uniform in [-1, 1) from seed.
func randomValues(n int, seed uint64) []float32 {
	v := make([]float32, n)
	for i := range v {
		seed = seed*6364136223846793005 + 1442695040888963407
		v[i] = float32(int64(seed)>>11) / (1 << 52)
	}
	return v
}

// step is one batch-2 U-Net call on random inputs, as CFG runs it.
type step struct {
	b           engine.Backend
	u           *unet.UNet
	x, ctx, out *engine.Tensor
	ts          []float32
}

func newStep(tb testing.TB, b engine.Backend, cfg model.UNetConfig, batch, h, w int) *step {
	tb.Helper()
	u, err := unet.Load(nn.NewLoader(b, newRandomSource(cfg), false), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s := &step{b: b, u: u, ts: []float32{500}}
	s.x = upload(b, randomValues(batch*cfg.InChannels*h*w, 1), batch, cfg.InChannels, h, w)
	s.ctx = upload(b, randomValues(batch*77*cfg.CrossAttentionDim, 2), batch, 77, cfg.CrossAttentionDim)
	s.out = b.New(engine.F32, batch, cfg.OutChannels, h, w)
	return s
}

func (s *step) run(tb testing.TB) {
	if err := s.u.Forward(s.out, s.x, s.ts, s.ctx); err != nil {
		tb.Fatal(err)
	}
	if err := s.b.Sync(); err != nil {
		tb.Fatal(err)
	}
}

func (s *step) close() {
	s.u.Close()
	s.b.Free(s.x)
	s.b.Free(s.ctx)
	s.b.Free(s.out)
}

// BenchmarkUNetSD15 times one denoising step of the full-size SD 1.5
// U-Net (random F16 weights) at batch 2 (CFG) on a 64x64 latent (a
// 512x512 image) on the backend GLIMMER_BACKEND names (gl, cpu or auto;
// default auto). It runs only with GLIMMER_BENCH_SD15=1: it needs 1.7 GB
// of weights and is far too slow for llvmpipe. Compare with the reference
// in DESIGN.md (diffusers fp32 on the H200: 19.7 it/s).
func BenchmarkUNetSD15(bm *testing.B) {
	if os.Getenv("GLIMMER_BENCH_SD15") != "1" {
		bm.Skip("set GLIMMER_BENCH_SD15=1 to run the full-size SD 1.5 U-Net")
	}
	name := os.Getenv("GLIMMER_BACKEND")
	if name == "" {
		name = "auto"
	}
	b, notice, err := device.Open(name)
	if err != nil {
		bm.Fatal(err)
	}
	defer b.Close()
	if notice != "" {
		bm.Log(notice)
	}
	start := time.Now()
	s := newStep(bm, b, sd15, 2, 64, 64)
	defer s.close()
	if err := b.Sync(); err != nil {
		bm.Fatal(err)
	}
	bm.Logf("%s: weights %.2f GB loaded in %v", b.Name(), float64(s.u.WeightBytes())/1e9, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	s.run(bm) // compiles shaders, fills the activation pool
	bm.Logf("first step %v, activations %.2f GB", time.Since(start).Round(time.Millisecond), float64(s.u.ActivationBytes())/1e9)

	for bm.Loop() {
		s.run(bm)
	}
	sec := bm.Elapsed().Seconds() / float64(bm.N)
	bm.ReportMetric(1/sec, "it/s")
	bm.ReportMetric(sd15FLOP/sec/1e12, "TFLOP/s")
}

// TestRandomSource runs the benchmark's code path on a small SD
// 1.5-shaped U-Net: the random source covers every weight, and the output
// is finite.
func TestRandomSource(t *testing.T) {
	cfg := sd15
	cfg.BlockOutChannels = []int{32, 64, 64, 64}
	cfg.TimeEmbedDim = 128
	cfg.CrossAttentionDim = 48
	b := cpu.New()
	s := newStep(t, b, cfg, 2, 8, 12)
	defer s.close()
	s.run(t)
	got, err := b.Read(s.out)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("value %d is %v", i, v)
		}
	}
	bytes := s.u.ActivationBytes()
	s.run(t)
	if s.u.ActivationBytes() != bytes {
		t.Errorf("the second step grew the activation pool from %d to %d bytes", bytes, s.u.ActivationBytes())
	}
}
