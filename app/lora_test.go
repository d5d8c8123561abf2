package app

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/lora"
	"glimmer/engine/model"
	"glimmer/engine/safetensors"
)

func TestLoraFlagParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		path string
		w    float64
	}{
		{"style.safetensors", "style.safetensors", 1},
		{"style.safetensors:0.8", "style.safetensors", 0.8},
		{"style.safetensors:-1.5", "style.safetensors", -1.5},
		{"style.safetensors:0", "style.safetensors", 0},
		{"/x/y:z/style.safetensors", "/x/y:z/style.safetensors", 1},
		{`C:\loras\style.safetensors`, `C:\loras\style.safetensors`, 1},
		{`C:\loras\style.safetensors:0.8`, `C:\loras\style.safetensors`, 0.8},
		{"C:style.safetensors:.5", "C:style.safetensors", 0.5},
	} {
		path, w, err := ParseLoRAFlag(tc.in)
		if err != nil || path != tc.path || w != tc.w {
			t.Errorf("%q: %q %g %v, want %q %g", tc.in, path, w, err, tc.path, tc.w)
		}
	}
	for _, bad := range []string{":0.8", "x.safetensors:nan"} {
		if _, _, err := ParseLoRAFlag(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if got := fileStem(`C:\loras\my style.safetensors`); got != "my style" {
		t.Errorf("fileStem of a Windows path: %q", got)
	}
}

// TestLoraParams: the LoRA hashes survive Format and ParseParams, and an
// A1111 parameters text with LoRA tags and hashes reads back.
func TestLoraParams(t *testing.T) {
	p := DefaultParams()
	p.Prompt, p.Seed, p.Model = "a cat <lora:pixel art:0.8>, <lora:b:1>", 5, "sd15"
	p.LoraHashes = "pixel art: 0123456789ab, b: ba9876543210"
	text := p.Format()
	if !strings.Contains(text, `Lora hashes: "pixel art: 0123456789ab, b: ba9876543210", Version: Glimmer`) {
		t.Errorf("parameters text %q", text)
	}
	q, err := ParseParams(text)
	if err != nil || q != p {
		t.Errorf("read back %+v, %v; want %+v", q, err, p)
	}
	a1111 := "masterpiece <lora:detail:0.6>\nNegative prompt: blurry\n" +
		`Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x768, Model hash: abc, Model: x, Lora hashes: "detail: 0011aabbccdd", Version: v1.10.1`
	q, err = ParseParams(a1111)
	if err != nil || q.Prompt != "masterpiece <lora:detail:0.6>" || q.LoraHashes != "detail: 0011aabbccdd" {
		t.Errorf("A1111 text read as %+v, %v", q, err)
	}
}

// writeLoRA writes a LoRA on every attention projection of the sd1-tiny
// U-Net and text encoder (rank 2); up matrices scaled by upScale (0:
// zero).
func writeLoRA(t *testing.T, path string, upScale float32) {
	t.Helper()
	m, err := model.Open(fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	f := &lora.File{Metadata: map[string]string{"ss_network_dim": "2"}}
	for _, comp := range []string{lora.UNet, lora.TextEncoder} {
		w := m.Component(comp)
		for _, n := range w.Names() {
			mod, _ := strings.CutSuffix(n, ".weight")
			if !strings.Contains(n, ".attn1.") && !strings.Contains(n, ".attn2.") && !strings.Contains(n, ".self_attn.") || !strings.HasSuffix(n, ".weight") {
				continue
			}
			info, _ := w.Info(n)
			md := lora.Module{Name: comp + "." + mod, DownShape: []int{2, info.Shape[1]}, UpShape: []int{info.Shape[0], 2}, Alpha: 1,
				Down: make([]float32, 2*info.Shape[1]), Up: make([]float32, 2*info.Shape[0])}
			for i := range md.Down {
				md.Down[i] = float32(rng.NormFloat64())
			}
			for i := range md.Up {
				md.Up[i] = upScale * float32(rng.NormFloat64())
			}
			f.Modules = append(f.Modules, md)
		}
	}
	if err := lora.Write(path, f); err != nil {
		t.Fatal(err)
	}
}

// pixels decodes a PNG's pixels (the comparison is exact: same weights,
// same backend, same seed give the same bytes).
func pixels(t *testing.T, path string) []uint8 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return pix(img)
}

// pix lists an image's 8-bit RGBA values.
func pix(img image.Image) []uint8 {
	var out []uint8
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			out = append(out, uint8(r>>8), uint8(g>>8), uint8(bl>>8), uint8(a>>8))
		}
	}
	return out
}

// TestLoraGenerate runs `glimmer generate` on sd1-tiny (CPU backend,
// 64x64, 4 Euler steps) with LoRAs as a user would:
//   - a LoRA whose up matrices are zero gives the image without LoRA,
//     byte for byte, and so does a non-zero one at weight 0;
//   - a non-zero LoRA changes the image;
//   - <lora:style:0.8> in the prompt gives the same image as --lora
//     style.safetensors:0.8, found through --lora-dir or in the loras
//     folder beside the model; the PNG keeps the tag as typed and the
//     LoRA's hash; `glimmer info` reads it;
//   - an unknown name and bad files fail with exit 1 and one line.
func TestLoraGenerate(t *testing.T) {
	dir := t.TempDir()
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	vocab := fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz")
	loraDir := filepath.Join(dir, "my loras")
	os.MkdirAll(loraDir, 0o755)
	style := filepath.Join(loraDir, "style.safetensors")
	zero := filepath.Join(loraDir, "zero.safetensors")
	writeLoRA(t, style, 0.5)
	writeLoRA(t, zero, 0)
	const prompt = "a red circle on a blue background"
	n := 0
	gen := func(extra ...string) (int, string, string) {
		t.Helper()
		n++
		out := filepath.Join(dir, "img"+string(rune('a'+n))+".png")
		args := append([]string{"generate", "--model", model, "--tokenizer", vocab, "--negative", "blurry",
			"--sampler", "euler", "--steps", "4", "--cfg", "5", "--seed", "1", "--width", "64", "--height", "64",
			"--backend", "cpu", "--out", out}, extra...)
		if !contains(extra, "--prompt") {
			args = append(args, "--prompt", prompt)
		}
		code, _, stderr := run(t, args...)
		return code, out, stderr
	}
	ok := func(extra ...string) string {
		t.Helper()
		code, out, stderr := gen(extra...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, stderr)
		}
		return out
	}
	same := func(a, b string) bool { return bytes.Equal(pixels(t, a), pixels(t, b)) }

	base := ok()
	if out := ok("--lora", zero); !same(out, base) {
		t.Error("a LoRA with zero up matrices changed the image")
	}
	if out := ok("--lora", style+":0"); !same(out, base) {
		t.Error("--lora FILE:0 changed the image")
	}
	flag := ok("--lora", style+":0.8")
	if same(flag, base) {
		t.Error("a non-zero LoRA left the image unchanged")
	}
	hash, err := lora.Hash(style)
	if err != nil {
		t.Fatal(err)
	}
	p := readParameters(t, flag)
	if p.Prompt != prompt+" <lora:style:0.8>" || p.LoraHashes != "style: "+hash[:12] {
		t.Errorf("--lora recorded as prompt %q, hashes %q", p.Prompt, p.LoraHashes)
	}

	tagPrompt := "a red circle <lora:style:0.8>on a blue background"
	tag := ok("--prompt", tagPrompt, "--lora-dir", loraDir)
	if !same(tag, flag) {
		t.Error("<lora:style:0.8> in the prompt differs from --lora style.safetensors:0.8")
	}
	p = readParameters(t, tag)
	if p.Prompt != tagPrompt || p.LoraHashes != "style: "+hash[:12] {
		t.Errorf("tag recorded as prompt %q, hashes %q", p.Prompt, p.LoraHashes)
	}
	code, stdout, stderr := run(t, "info", tag)
	if code != 0 || !strings.Contains(stdout, tagPrompt) {
		t.Errorf("info on the image: exit %d, %q %q", code, stdout, stderr)
	}
	// A tag in the negative prompt applies too (to the whole model).
	if out := ok("--negative", "blurry <lora:style:0.8>", "--lora-dir", loraDir); !same(out, flag) {
		t.Error("<lora:style:0.8> in the negative prompt differs from --lora")
	}

	// The loras folder beside the model (a link to the fixture in a
	// folder of ours), no --lora-dir.
	beside := filepath.Join(dir, "models")
	os.MkdirAll(filepath.Join(beside, "loras"), 0o755)
	linked := filepath.Join(beside, "sd1-tiny.safetensors")
	if err := os.Symlink(model, linked); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(style)
	os.WriteFile(filepath.Join(beside, "loras", "style.safetensors"), data, 0o644)
	model = linked
	if out := ok("--prompt", tagPrompt); !same(out, flag) {
		t.Error("the LoRA found beside the model gives another image")
	}

	// Failures: exit 1, one line on stderr naming the problem.
	fail := func(want string, extra ...string) {
		t.Helper()
		code, out, stderr := gen(extra...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code != 1 || !strings.Contains(last, want) || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and a line with %q", extra, code, stderr, want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: an image was written", extra)
		}
	}
	fail("<lora:nosuch>: no nosuch.safetensors in "+loraDir+" or "+filepath.Join(beside, "loras"),
		"--prompt", "a <lora:nosuch:1> cat", "--lora-dir", loraDir)
	fail("<lora:x:abc>: weight", "--prompt", "a <lora:x:abc> cat")

	bad := func(name string, tensors []safetensors.NamedTensor, raw string) string {
		path := filepath.Join(dir, name)
		if raw != "" {
			os.WriteFile(path, []byte(raw), 0o644)
		} else if err := safetensors.Write(path, tensors, nil); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f32 := safetensors.F32Tensor
	const k = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
	fail("text.safetensors: ", "--lora", bad("text.safetensors", nil, "not a LoRA at all, just text\n"))
	fail("noup.safetensors: module "+k+" has lora_down.weight but no lora_up.weight",
		"--lora", bad("noup.safetensors", []safetensors.NamedTensor{f32(k+".lora_down.weight", []int{2, 32}, make([]float32, 64))}, ""))
	fail("rank.safetensors: module "+k+": lora_down [2 32] and lora_up [32 3] disagree on the rank",
		"--lora", bad("rank.safetensors", []safetensors.NamedTensor{f32(k+".lora_down.weight", []int{2, 32}, make([]float32, 64)), f32(k+".lora_up.weight", []int{32, 3}, make([]float32, 96))}, ""))
	fail("shape.safetensors: module "+k+": lora_up [32 2] · lora_down [2 31] does not fit the model's weight [32 32]",
		"--lora", bad("shape.safetensors", []safetensors.NamedTensor{f32(k+".lora_down.weight", []int{2, 31}, make([]float32, 62)), f32(k+".lora_up.weight", []int{32, 2}, make([]float32, 64))}, ""))
	const missing = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn3_to_q"
	fail("lacks.safetensors: module "+missing+": the model has no such weight",
		"--lora", bad("lacks.safetensors", []safetensors.NamedTensor{f32(missing+".lora_down.weight", []int{2, 32}, make([]float32, 64)), f32(missing+".lora_up.weight", []int{32, 2}, make([]float32, 64))}, ""))
}

// TestLoraRunnerReloads: the UI runner's cached pipeline is kept for the
// same LoRA set and reloaded for another; the LoRA applies (the image
// changes) and is recorded.
func TestLoraRunnerReloads(t *testing.T) {
	rec := newRecorder()
	r := NewRunner(rec.event)
	defer r.Close()
	j := tinyJob(t)
	j.LoRADir = t.TempDir()
	writeLoRA(t, filepath.Join(j.LoRADir, "style.safetensors"), 0.5)
	submit := func(j Job) ([]Event, Event) {
		t.Helper()
		id := r.Submit(context.Background(), j)
		final, evs := rec.wait(t, id)
		if final.Kind != EventFinished {
			t.Fatalf("job ended with %v: %v", final.Kind, final.Err)
		}
		return evs, kinds(evs, EventImage)[0]
	}
	_, plain := submit(j)
	j.Params.Prompt += " <lora:style:1>"
	evs, styled := submit(j)
	if len(kinds(evs, EventLoaded)) != 1 {
		t.Error("a new LoRA set did not reload the pipeline")
	}
	if bytes.Equal(pix(plain.Image), pix(styled.Image)) {
		t.Error("the tag's LoRA did not change the image")
	}
	if p := readParameters(t, styled.Path); p.Prompt != j.Params.Prompt || !strings.HasPrefix(p.LoraHashes, "style: ") {
		t.Errorf("recorded %q, hashes %q", p.Prompt, p.LoraHashes)
	}
	evs, again := submit(j)
	if len(kinds(evs, EventLoading)) != 0 {
		t.Error("the same LoRA set reloaded the pipeline")
	}
	if !bytes.Equal(pix(again.Image), pix(styled.Image)) {
		t.Error("the cached pipeline with the LoRA gave another image")
	}
	j.Params.Prompt += " <lora:other:1>"
	id := r.Submit(context.Background(), j)
	if final, _ := rec.wait(t, id); final.Kind != EventFailed || !strings.Contains(final.Message, "<lora:other>: no other.safetensors in "+j.LoRADir) {
		t.Errorf("unknown LoRA: %v %q", final.Kind, final.Message)
	}
}
