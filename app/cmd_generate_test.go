package app

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/safetensors"
)

// TestGenerateMatchesReference runs `glimmer generate` as a user would
// and compares the PNG with the reference image. The bound is the
// fixtures' 2e-3 on [0,1] plus half an 8-bit step for the PNG's rounding.
func TestGenerateMatchesReference(t *testing.T) {
	dir := t.TempDir()
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	vocab := fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz")
	refs, err := safetensors.Open(fixtures.Path(t, "fixtures", "sd1-tiny", "refs", "sd1-pipelines.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer refs.Close()
	for _, backend := range []string{"cpu", "gl"} {
		t.Run(backend, func(t *testing.T) {
			out := filepath.Join(dir, backend+".png")
			code, stdout, stderr := run(t, "generate", "--model", model, "--tokenizer", vocab,
				"--prompt", "a red circle on a blue background", "--negative", "blurry",
				"--sampler", "euler", "--steps", "8", "--cfg", "7", "--seed", "1",
				"--width", "64", "--height", "64", "--backend", backend, "--out", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if strings.TrimSpace(stdout) != out {
				t.Errorf("stdout %q, want the file name", stdout)
			}
			if !strings.Contains(stderr, "step 8/8") {
				t.Errorf("no progress line in %q", stderr)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			want, err := refs.Float32("euler_8.image") // [1, 3, 64, 64] on [0,1]
			if err != nil {
				t.Fatal(err)
			}
			var maxErr float64
			for y := range 64 {
				for x := range 64 {
					r, g, b, _ := img.At(x, y).RGBA()
					for c, v := range []uint32{r, g, b} {
						ref := float64(want[c*64*64+y*64+x])
						maxErr = math.Max(maxErr, math.Abs(float64(v>>8)/255-ref))
					}
				}
			}
			if bound := 2e-3 + 0.5/255; maxErr > bound {
				t.Errorf("max |err| %.4g > %.4g", maxErr, bound)
			}
			text, err := ReadPNGText(bytes.NewReader(data))
			if err != nil || len(text) != 1 || text[0][0] != "parameters" {
				t.Fatalf("text chunks %q, %v", text, err)
			}
			p, err := ParseParams(text[0][1])
			if err != nil {
				t.Fatal(err)
			}
			wantP := Params{Prompt: "a red circle on a blue background", Negative: "blurry", Steps: 8,
				Sampler: "euler", Schedule: "default", CFG: 7, Seed: 1, Width: 64, Height: 64,
				Model: "sd1-tiny", ClipSkip: 1}
			if p != wantP {
				t.Errorf("parameters %+v, want %+v", p, wantP)
			}
		})
	}
}

func TestGenerateBadInput(t *testing.T) {
	dir := t.TempDir()
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	existing := filepath.Join(dir, "mine.png")
	if err := os.WriteFile(existing, []byte("the user's picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	notModel := filepath.Join(dir, "notes.safetensors")
	os.WriteFile(notModel, []byte("\x89PNG\r\n\x1a\nnot a model"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--prompt", "x", "--width", "60"}, 2, "multiples of 8"}, // the starter model, checked before it runs
		{[]string{"--model", model}, 2, "--prompt is required"},
		{[]string{"--model", model, "--prompt", "x", "--width", "60"}, 2, "multiples of 8"},
		{[]string{"--model", model, "--prompt", "x", "--steps", "0"}, 2, "--steps"},
		{[]string{"--model", model, "--prompt", "x", "--sampler", "plms"}, 2, "unknown --sampler"},
		{[]string{"--model", model, "--prompt", "x", "--sampler", "ddim", "--schedule", "karras"}, 2, "karras"},
		{[]string{"--model", model, "--prompt", "x", "--backend", "cuda"}, 2, "--backend"},
		{[]string{"--model", model, "--prompt", "x", "--out", existing}, 1, "not overwriting"},
		{[]string{"--model", filepath.Join(dir, "missing.safetensors"), "--prompt", "x", "--backend", "cpu", "--out", filepath.Join(dir, "a.png")}, 1, "missing.safetensors"},
		{[]string{"--model", notModel, "--prompt", "x", "--backend", "cpu", "--out", filepath.Join(dir, "b.png")}, 1, "notes.safetensors"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, append([]string{"generate"}, c.args...)...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code != c.code || !strings.Contains(last, c.want) || strings.Contains(stderr, "goroutine") {
			t.Errorf("generate %q: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "the user's picture" {
		t.Error("the existing file was changed")
	}
}

// bench on the tiny model prints every stage of its table.
func TestBenchTable(t *testing.T) {
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	code, out, stderr := run(t, "bench", "--model", model, "--backend", "cpu", "--width", "64", "--height", "64",
		"--steps", "3", "--runs", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"backend          cpu", "text encode", "first step", "U-Net step", "it/s", "VAE decode", "total", "peak memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := run(t, "bench", "--model", model, "--runs", "0"); code != 2 {
		t.Errorf("--runs 0: exit %d, want 2", code)
	}
	// A bad flag's message names the command the user ran.
	if code, _, stderr := run(t, "bench", "--model", model, "--steps", "0"); code != 2 || !strings.Contains(stderr, "bench: --steps 0 must be") {
		t.Errorf("bench --steps 0: exit %d, %q; want 2 and a message naming bench's --steps", code, stderr)
	}
}

// With no --model, generate uses the built-in starter model at its own
// size: a fresh install makes a picture.
func TestGenerateStarterByDefault(t *testing.T) {
	out := filepath.Join(t.TempDir(), "triangle.png")
	code, _, stderr := run(t, "generate", "--prompt", "a green triangle on a white background",
		"--backend", "cpu", "--steps", "10", "--seed", "7", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "starter model") {
		t.Errorf("no note about the starter model: %q", stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != 64 || cfg.Height != 64 {
		t.Errorf("starter image %dx%d (%v), want 64x64", cfg.Width, cfg.Height, err)
	}
}

// A text encoder with fewer token rows than its tokenizer has ids would
// fail on the first prompt's end token: generate says so at load, naming
// the model, and writes nothing.
func TestGenerateVocabularyMismatch(t *testing.T) {
	model := tinyLDM(t, "small-vocab.safetensors", func(ts []safetensors.NamedTensor) []safetensors.NamedTensor { return ts })
	out := filepath.Join(t.TempDir(), "x.png")
	code, _, stderr := run(t, "generate", "--model", model, "--tokenizer", fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz"),
		"--prompt", "a cat", "--backend", "cpu", "--steps", "1", "--width", "64", "--height", "64", "--out", out)
	want := "small-vocab.safetensors: the text encoder's token embedding has 1000 rows, but its tokenizer has 49408 tokens"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an image was written")
	}
}

// Inputs that once passed the checks: a size whose pixel count overflowed
// (a panic deep in the engine), NaN guidance, a prompt weight or LoRA tag
// weight that reaches infinity (an all-black picture, exit 0), and a bad
// flag (the whole flag list printed with the error). Each gives exit 2 or
// 1 and one line, and writes nothing.
func TestGenerateRefusesOutOfRange(t *testing.T) {
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	dir := t.TempDir()
	out := filepath.Join(dir, "x.png")
	base := []string{"generate", "--model", model, "--backend", "cpu", "--steps", "1", "--out", out}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--prompt", "a", "--width", "2305843009213693952", "--height", "8"}, 2, "is larger than 4096x4096"},
		{[]string{"--prompt", "a", "--width", "4294967296", "--height", "4294967296"}, 2, "is larger than 4096x4096"},
		{[]string{"--prompt", "a", "--cfg", "NaN"}, 2, "--cfg NaN must be between 1 and 100"},
		{[]string{"--prompt", "a", "--out", filepath.Join(dir, "x.jpg")}, 2, "x.jpg: Glimmer writes PNG images; give a name ending in .png"},
		{[]string{"--prompt", "a", "--bogus"}, 2, "generate: flag provided but not defined: -bogus (glimmer generate -h lists its flags)"},
		{[]string{"--prompt", "(a:" + "1" + strings.Repeat("0", 45) + ")", "--width", "64", "--height", "64"}, 1, `the prompt gives "a" the weight 1e+45; weights must lie within ±1000`},
		{[]string{"--prompt", strings.Repeat("(", 5000) + "a", "--width", "64", "--height", "64"}, 1, "weights must lie within ±1000"},
		{[]string{"--prompt", "a <lora:x:1e300>", "--width", "64", "--height", "64"}, 1, `weight "1e300" is not a number within ±1e+06`},
	} {
		code, _, stderr := run(t, append(base, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) || !strings.HasSuffix(stderr, "\n") || strings.Contains(stderr, "panic") ||
			!strings.HasPrefix(stderr[strings.LastIndex(stderr[:len(stderr)-1], "\n")+1:], "glimmer: ") {
			t.Errorf("%q: exit %d, stderr %q; want %d and a last line with %q", c.args, code, stderr, c.code, c.want)
		}
		if c.code == 2 && strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: a usage error printed %d lines, want 1", c.args, strings.Count(stderr, "\n"))
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%q: an image was written", c.args)
		}
	}
}

// An --out in a folder that does not exist fails before the model loads
// (it used to fail after the whole image was made) and eval's --sheet
// likewise before its pictures.
func TestOutputFolderCheckedFirst(t *testing.T) {
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	out := filepath.Join(t.TempDir(), "nope", "a.png")
	code, _, stderr := run(t, "generate", "--model", model, "--prompt", "a", "--backend", "cpu", "--steps", "1", "--out", out)
	want := out + ": the folder " + filepath.Dir(out) + " does not exist"
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "loading model") {
		t.Errorf("generate: exit %d, %q; want 1 and %q before any loading", code, stderr, want)
	}
	code, stdout, stderr := run(t, "eval", "--backend", "cpu", "--seeds", "1", "--steps", "1", "--sheet", out)
	if code != 1 || !strings.Contains(stderr, want) || stdout != "" {
		t.Errorf("eval: exit %d, stdout %q, stderr %q; want 1, no scores and %q", code, stdout, stderr, want)
	}
}
