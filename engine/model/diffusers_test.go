package model_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/ckpt"
	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/safetensors"
)

// linkTree recreates src under dst: folders are made, files symlinked.
func linkTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, r)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return os.Symlink(p, target)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readAll loads every tensor of a safetensors file.
func readAll(t *testing.T, path string) []safetensors.NamedTensor {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []safetensors.NamedTensor
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		raw, _ := f.Raw(n)
		out = append(out, safetensors.NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), raw...)})
	}
	return out
}

// sameTensors checks that two models hold identical canonical tensors.
func sameTensors(t *testing.T, a, b *model.Model) {
	t.Helper()
	if strings.Join(a.Names(), ",") != strings.Join(b.Names(), ",") {
		t.Fatalf("names differ: %d vs %d", a.Len(), b.Len())
	}
	for _, n := range a.Names() {
		x, _ := a.Raw(n)
		y, err := b.Raw(n)
		if err != nil || !bytes.Equal(x.Bytes, y.Bytes) || !x.Shape.Equal(y.Shape) || x.DType != y.DType {
			t.Fatalf("%s differs: %v %v vs %v %v (%v)", n, x.DType, x.Shape, y.DType, y.Shape, err)
		}
	}
}

// TestDiffusersVariants: the same sd1-tiny weights stored the other ways
// diffusers folders come: the 2022 VAE attention names (query, key, value,
// proj_attn) with 1x1-conv shapes, an fp16-variant file name, a sharded
// text encoder, and a torch .bin U-Net. All open to identical tensors.
func TestDiffusersVariants(t *testing.T) {
	src := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	ref := open(t, src, model.Options{})
	dir := filepath.Join(t.TempDir(), "sd1-variants")
	linkTree(t, src, dir)

	// VAE: legacy names, attention weights as [C, C, 1, 1].
	vaeFile := filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors")
	vae := readAll(t, vaeFile)
	legacy := strings.NewReplacer(".to_q.", ".query.", ".to_k.", ".key.", ".to_v.", ".value.", ".to_out.0.", ".proj_attn.")
	renamed := 0
	for i, x := range vae {
		if strings.Contains(x.Name, "mid_block.attentions.0.") && !strings.Contains(x.Name, "group_norm") {
			vae[i].Name = legacy.Replace(x.Name)
			if len(x.Shape) == 2 {
				vae[i].Shape = append(x.Shape, 1, 1)
			}
			renamed++
		}
	}
	if renamed != 16 {
		t.Fatalf("renamed %d VAE attention tensors, want 16", renamed)
	}
	os.Remove(vaeFile)
	if err := safetensors.Write(vaeFile, vae, nil); err != nil {
		t.Fatal(err)
	}

	// U-Net: only an fp16-variant file name.
	unetDir := filepath.Join(dir, "unet")
	if err := os.Rename(filepath.Join(unetDir, "diffusion_pytorch_model.safetensors"), filepath.Join(unetDir, "diffusion_pytorch_model.fp16.safetensors")); err != nil {
		t.Fatal(err)
	}

	// Text encoder: two shards and an index.
	teFile := filepath.Join(dir, "text_encoder", "model.safetensors")
	te := readAll(t, teFile)
	os.Remove(teFile)
	half := len(te) / 2
	weightMap := map[string]string{}
	for i, shard := range [][]safetensors.NamedTensor{te[:half], te[half:]} {
		name := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i]
		if err := safetensors.Write(filepath.Join(dir, "text_encoder", name), shard, nil); err != nil {
			t.Fatal(err)
		}
		for _, x := range shard {
			weightMap[x.Name] = name
		}
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
	os.WriteFile(filepath.Join(dir, "text_encoder", "model.safetensors.index.json"), idx, 0o644)

	m := open(t, dir, model.Options{})
	sameTensors(t, ref, m)
	if len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "unet: using the fp16 variant diffusion_pytorch_model.fp16.safetensors") {
		t.Errorf("notes %v", m.Notes)
	}
	info, _ := m.Info("vae/encoder.mid_block.attentions.0.to_out.0.weight")
	if info.Key != "encoder.mid_block.attentions.0.proj_attn.weight" || len(info.Shape) != 2 {
		t.Errorf("legacy proj_attn: %+v", info)
	}

	// A torch .bin U-Net beside safetensors components: format "mixed".
	os.Remove(filepath.Join(unetDir, "diffusion_pytorch_model.fp16.safetensors"))
	unet := readAll(t, filepath.Join(src, "unet", "diffusion_pytorch_model.safetensors"))
	if err := ckpt.Write(filepath.Join(unetDir, "diffusion_pytorch_model.bin"), unet, ckpt.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	m2 := open(t, dir, model.Options{})
	sameTensors(t, ref, m2)
	if m2.Format != "mixed" {
		t.Errorf("format %q, want mixed", m2.Format)
	}
}

// TestPreferFP16 picks the fp16 file when asked and both exist.
func TestPreferFP16(t *testing.T) {
	src := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	dir := filepath.Join(t.TempDir(), "m")
	linkTree(t, src, dir)
	full := filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")
	os.Symlink(filepath.Join(src, "unet", "diffusion_pytorch_model.safetensors"), filepath.Join(dir, "unet", "diffusion_pytorch_model.fp16.safetensors"))
	a := open(t, dir, model.Options{})
	b := open(t, dir, model.Options{PreferFP16: true})
	if a.Files[0] != full || !strings.HasSuffix(b.Files[0], ".fp16.safetensors") {
		t.Errorf("files %v / %v", a.Files, b.Files)
	}
}
