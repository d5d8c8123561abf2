package app

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/model/modeltest"
	"glimmer/engine/safetensors"
)

// glimmerInfo runs `glimmer info ARGS...` through Main.
func glimmerInfo(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append([]string{"info"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// lineWith returns the first stdout line that starts with key.
func lineWith(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, key) {
			return l
		}
	}
	return ""
}

func TestInfoFixtures(t *testing.T) {
	sd1 := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	sd1d := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	sd2 := fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers")

	code, single, stderr := glimmerInfo(t, "--model", sd1)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for key, want := range map[string]string{
		"family":             "Stable Diffusion 1.x",
		"layout":             "single-file checkpoint, original LDM naming (safetensors)",
		"prediction":         "epsilon (the default for single files; use --prediction v for a v-prediction model)",
		"dtype":              "F16",
		"tensors":            "980 (0 ignored, 0 unexpected)",
		"parameters":         "12,050,411 (24.1 MB of weights)",
		"unet   ":            "684       3,388,580  F16",
		"text_encoder  CLIP": "CLIP width 128, 3 layers, 2 heads of 64, MLP 512, quick_gelu; vocabulary 49408, 77 positions",
		"tokenizer":          "built-in CLIP BPE vocabulary; pads with 49407 (<|endoftext|>)",
		"missing":            "none (all 980 tensors this configuration needs are present)",
	} {
		if l := lineWith(single, key); !strings.Contains(l, want) {
			t.Errorf("%s line %q, want %q", key, l, want)
		}
	}
	if !strings.Contains(single, "heads×dim 8×4 8×8 8×8 8×8; context width 128; proj_in 1x1 conv") {
		t.Errorf("U-Net heads line missing:\n%s", single)
	}

	// The diffusers folder of the same weights: the same table.
	code, diff, _ := glimmerInfo(t, sd1d)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	table := func(s string) string {
		i := strings.Index(s, "component")
		j := strings.Index(s, "\n\n"+"unet")
		return s[i:j]
	}
	if table(single) != table(diff) {
		t.Errorf("component tables differ:\n%s\n%s", table(single), table(diff))
	}

	code, out, _ := glimmerInfo(t, "--model", sd2)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"family        Stable Diffusion 2.x",
		"prediction    v_prediction (from diffusers/scheduler/scheduler_config.json)",
		"heads×dim 4×8 8×8 8×8 8×8; context width 128; proj_in linear",
		"2 layers, 2 heads of 64, MLP 512, gelu",
		"pads with 0 (!)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sd2 info lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = glimmerInfo(t, "--model", sd1, "--prediction", "v", "--tensors")
	if code != 0 || !strings.Contains(out, "prediction    v_prediction (set by --prediction)") {
		t.Errorf("--prediction v: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "vae/decoder.mid_block.attentions.0.to_q.weight\t[64, 64]\tF16\tfirst_stage_model.decoder.mid.attn_1.q.weight\n") {
		t.Errorf("--tensors lacks the VAE attention line")
	}
}

func TestInfoUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--model", "a.safetensors", "b.safetensors"},
		{"a.safetensors", "b.safetensors"},
		{"--model", "a.safetensors", "--prediction", "x0"},
		{"--bogus"},
	} {
		code, out, stderr := glimmerInfo(t, args...)
		if code != ExitUsage || out != "" || !strings.HasPrefix(stderr, "glimmer: ") && !strings.Contains(stderr, "flag provided but not defined") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
	if code, _, _ := glimmerInfo(t, "-h"); code != ExitOK {
		t.Errorf("-h: exit %d", code)
	}
}

func le64(v uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return b[:]
}

// tinyLDM writes a synthetic single file with sd1-tiny's architecture
// (small vocabulary), after edit.
func tinyLDM(t *testing.T, name string, edit func([]safetensors.NamedTensor) []safetensors.NamedTensor) string {
	t.Helper()
	m, err := model.Open(fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config
	m.Close()
	cfg.Text.VocabSize = 1000
	rows, err := modeltest.ReadTSV(fixtures.Path(t, "refdata", "sd15_tensor_names.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	layout, err := modeltest.LDMLayout(&cfg, rows)
	if err != nil {
		t.Fatal(err)
	}
	ts := edit(modeltest.Tensors(layout))
	path := filepath.Join(t.TempDir(), name)
	if err := safetensors.Write(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInfoBadInput: every bad model gives exit 1 and exactly one stderr
// line, "glimmer: FILE: what is wrong", and nothing on stdout.
func TestInfoBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sd1 := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	whole, err := os.ReadFile(sd1)
	if err != nil {
		t.Fatal(err)
	}
	var pkl bytes.Buffer
	zw := zip.NewWriter(&pkl)
	f, _ := zw.Create("archive/data.pkl")
	f.Write([]byte("\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R."))
	zw.Close()
	header := func(h string) []byte { return append(append(le64(uint64(len(h))), h...), make([]byte, 16)...) }
	withModelIndex := filepath.Join(dir, "folder-with-unet")
	os.MkdirAll(filepath.Join(withModelIndex, "unet"), 0o755)

	cases := []struct {
		name string
		path string
		want string
	}{
		{"truncated file", write("truncated.safetensors", whole[:len(whole)/3]),
			"glimmer: truncated.safetensors: tensor \"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight\": data_offsets"},
		{"header length 2^63", write("huge.safetensors", append(le64(1<<63), "{}"...)),
			"glimmer: huge.safetensors: header length 9223372036854775808 exceeds file size 10\n"},
		{"overlapping offsets", write("overlap.safetensors", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`)),
			"glimmer: overlap.safetensors: tensors \"a\" [0, 8] and \"b\" [4, 12] overlap\n"},
		{"wrong shape", tinyLDM(t, "shape.safetensors", func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
			for i, x := range ts {
				if x.Name == "model.diffusion_model.out.2.weight" {
					ts[i] = safetensors.F16Tensor(x.Name, []int{4, 32, 1, 1}, make([]float32, 4*32))
				}
			}
			return ts
		}), "glimmer: shape.safetensors: tensor model.diffusion_model.out.2.weight (unet/conv_out.weight) has shape [4, 32, 1, 1], want [4, 32, 3, 3] for this U-Net\n"},
		{"missing tensors", tinyLDM(t, "missing.safetensors", func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
			var out []safetensors.NamedTensor
			for _, x := range ts {
				if !strings.HasPrefix(x.Name, "first_stage_model.decoder.mid.") {
					out = append(out, x)
				}
			}
			return out
		}), "glimmer: missing.safetensors: 26 tensors are missing, e.g. vae/decoder.mid_block.resnets.0.norm1.weight"},
		{"folder without model_index.json", withModelIndex,
			"glimmer: folder-with-unet: folder has unet/ or vae/ but no model_index.json; a diffusers model needs one\n"},
		{"PNG renamed", write("photo.safetensors", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")),
			"glimmer: photo.safetensors: not a safetensors file: it is a PNG image\n"},
		{"pickle asks for os.system", write("evil.ckpt", pkl.Bytes()),
			"glimmer: evil.ckpt: pickle asks for os.system, which a checkpoint never needs; refusing to load\n"},
		{"nonexistent path", filepath.Join(dir, "nope.safetensors"),
			"glimmer: " + filepath.Join(dir, "nope.safetensors") + ": no such file or folder\n"},
		{"directory that is not a model", t.TempDir(),
			": not a model: a folder needs model_index.json (a diffusers model), and this one has none\n"},
		{"SDXL", write("xl.safetensors", header(`{"conditioner.embedders.1.model.ln_final.weight":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`)),
			"glimmer: xl.safetensors: this is an SDXL model; Glimmer runs Stable Diffusion 1.x and 2.x models\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range [][]string{{"--model", c.path}, {c.path}} {
				code, out, stderr := glimmerInfo(t, args...)
				if code != ExitError || out != "" {
					t.Errorf("%q: exit %d (want 1), stdout %q", args, code, out)
				}
				if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "glimmer: ") || !strings.Contains(stderr, c.want) {
					t.Errorf("%q: stderr %q\nwant one line containing %q", args, stderr, c.want)
				}
			}
		})
	}

	// A file info does not describe, given as PATH.
	txt := write("notes.txt", []byte("not a model"))
	code, _, stderr := glimmerInfo(t, txt)
	if code != ExitError || stderr != "glimmer: notes.txt: not something info describes (it reads: model, PNG; a model is a .safetensors/.ckpt/.pt file or a diffusers folder)\n" {
		t.Errorf("txt: exit %d, %q", code, stderr)
	}
	// A PNG holding only a signature is cut short.
	png := write("image.png", []byte("\x89PNG\r\n\x1a\n"))
	code, _, stderr = glimmerInfo(t, png)
	if code != ExitError || !strings.Contains(stderr, "image.png: truncated PNG") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("png: exit %d, %q", code, stderr)
	}
}

// A tensor name from the file with line breaks and terminal escapes is
// printed with the escapes as \xNN and the breaks as spaces, by info's
// report and in the one-line error, so a hostile file cannot recolour the
// terminal or forge lines of output.
func TestInfoEscapesNames(t *testing.T) {
	const evil = "evil\n\x1b[31mRED\rthird"
	extra := tinyLDM(t, "extra.safetensors", func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
		return append(ts, safetensors.F32Tensor(evil, []int{1}, []float32{0}))
	})
	only := filepath.Join(t.TempDir(), "only.safetensors")
	if err := safetensors.Write(only, []safetensors.NamedTensor{safetensors.F32Tensor(evil, []int{1}, []float32{0})}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		code int
	}{{extra, ExitOK}, {only, ExitError}} {
		code, out, stderr := glimmerInfo(t, "--model", c.path, "--tensors")
		text := out + stderr
		if code != c.code || !strings.Contains(text, `evil \x1b[31mRED third`) || strings.ContainsAny(text, "\x1b\r") {
			t.Errorf("%s: exit %d (want %d), output %q: want the name as evil \\x1b[31mRED third, no raw escape", filepath.Base(c.path), code, c.code, text)
		}
	}
}
