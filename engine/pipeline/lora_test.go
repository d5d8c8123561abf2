package pipeline_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"glimmer/engine/cpu"
	"glimmer/engine/fixtures"
	"glimmer/engine/lora"
	"glimmer/engine/model"
	"glimmer/engine/pipeline"
)

// attentionLoRA has a rank-2 module on every attention projection of the
// component's model weights; upScale 0 gives zero up matrices.
func attentionLoRA(t *testing.T, m *model.Model, comp string, upScale float32, seed uint64) *lora.File {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	f := &lora.File{}
	w := m.Component(comp)
	for _, n := range w.Names() {
		mod, ok := strings.CutSuffix(n, ".weight")
		if !ok || !strings.Contains(n, ".attn1.") && !strings.Contains(n, ".attn2.") && !strings.Contains(n, ".self_attn.") {
			continue
		}
		info, _ := w.Info(n)
		if len(info.Shape) != 2 {
			continue
		}
		out, in := info.Shape[0], info.Shape[1]
		md := lora.Module{Name: comp + "." + mod, DownShape: []int{2, in}, UpShape: []int{out, 2}, Alpha: 1,
			Down: make([]float32, 2*in), Up: make([]float32, out*2)}
		for i := range md.Down {
			md.Down[i] = float32(rng.NormFloat64())
		}
		for i := range md.Up {
			md.Up[i] = upScale * float32(rng.NormFloat64())
		}
		f.Modules = append(f.Modules, md)
	}
	if len(f.Modules) == 0 {
		t.Fatalf("no attention projections in %s", comp)
	}
	return f
}

// TestLoraPipeline: LoRAs reach the networks. On the CPU backend (the
// merge is on the host, the same for every backend), 64x64, 4 Euler
// steps:
//   - zero up matrices give bit-identical latents (W + 0 is W exactly);
//   - a non-zero LoRA on the text encoder alone, or on the U-Net alone,
//     changes them;
//   - the same LoRA at +0.7 and at -0.7 together is bit-identical to no
//     LoRA: both are applied and summed in float64 before one rounding,
//     so the deltas cancel exactly;
//   - a module naming a weight the model lacks fails Load with the file's
//     name.
func TestLoraPipeline(t *testing.T) {
	path := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	m, err := model.Open(path, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := cpu.New()
	defer b.Close()
	req := pipeline.Request{Prompt: "a red circle", Negative: "blurry", Steps: 4, CFG: 5, Seed: 3,
		Sampler: "euler", Schedule: "default", Width: 64, Height: 64}
	gen := func(loras []lora.Weighted) []float32 {
		t.Helper()
		p, err := pipeline.Load(path, b, pipeline.Options{LoRAs: loras}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		res, err := p.Generate(context.Background(), req, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Latent
	}
	base := gen(nil)
	zero := &lora.File{Modules: append(attentionLoRA(t, m, lora.UNet, 0, 1).Modules, attentionLoRA(t, m, lora.TextEncoder, 0, 2).Modules...)}
	if got := gen([]lora.Weighted{{File: zero, Path: "zero.safetensors", Weight: 1}}); !slices.Equal(got, base) {
		t.Error("a LoRA with zero up matrices changed the latents")
	}
	te := attentionLoRA(t, m, lora.TextEncoder, 0.5, 3)
	un := attentionLoRA(t, m, lora.UNet, 0.5, 4)
	for _, c := range []struct {
		name string
		f    *lora.File
	}{{"text encoder", te}, {"U-Net", un}} {
		got := gen([]lora.Weighted{{File: c.f, Path: "x.safetensors", Weight: 1}})
		var diff float64
		for i := range got {
			diff = max(diff, float64(abs32(got[i]-base[i])))
		}
		// The fixture's latents are O(1); a rank-2 change of every
		// attention projection moves them by far more than float noise.
		t.Logf("%s LoRA: latents moved by up to %.3g", c.name, diff)
		if diff < 1e-3 {
			t.Errorf("%s LoRA: latents moved by %g at most; it was not applied", c.name, diff)
		}
	}
	both := &lora.File{Modules: append(slices.Clone(te.Modules), un.Modules...)}
	if got := gen([]lora.Weighted{{File: both, Weight: 0.7}, {File: both, Weight: -0.7}}); !slices.Equal(got, base) {
		t.Error("+0.7 and -0.7 of one LoRA did not cancel exactly")
	}
	bad := &lora.File{Modules: []lora.Module{{Name: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn3.to_q",
		Down: make([]float32, 64), DownShape: []int{2, 32}, Up: make([]float32, 64), UpShape: []int{32, 2}, Alpha: 2}}}
	_, err = pipeline.Load(path, b, pipeline.Options{LoRAs: []lora.Weighted{{File: bad, Path: "/tmp/bad.safetensors", Weight: 1}}}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "bad.safetensors: module lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn3_to_q: the model has no such weight") {
		t.Errorf("Load with a LoRA for a missing weight: %v", err)
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
