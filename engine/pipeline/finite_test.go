package pipeline_test

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/pipeline"
	"glimmer/engine/safetensors"
)

// withNaN copies sd1-tiny's single file with one value of tensor name set
// to NaN.
func withNaN(t *testing.T, name string) string {
	t.Helper()
	f, err := safetensors.Open(fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []safetensors.NamedTensor
	found := false
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		raw, err := f.Raw(n)
		if err != nil {
			t.Fatal(err)
		}
		data := append([]byte(nil), raw...)
		if n == name {
			if info.DType != safetensors.F16 {
				t.Fatalf("%s is %s, want F16", n, info.DType)
			}
			binary.LittleEndian.PutUint16(data[len(data)/2&^1:], 0x7e00) // a quiet NaN
			found = true
		}
		ts = append(ts, safetensors.NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: data})
	}
	if !found {
		t.Fatalf("no tensor %s", name)
	}
	path := filepath.Join(t.TempDir(), "nan.safetensors")
	if err := safetensors.Write(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGenerateNotFinite: a NaN among the U-Net's or the VAE decoder's
// weights (as a damaged file or broken settings give) fails Generate with
// ErrNotFinite and a message naming the file and what went bad, where it
// would otherwise have decoded to an all-black picture. The check is on
// the host, on what Generate reads back, so one backend shows it: the CPU
// (quick).
func TestGenerateNotFinite(t *testing.T) {
	vocab := fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz")
	req := sd1Runs[4].request() // euler, 6 steps, no guidance, 64x64
	req.Steps = 2
	for _, c := range []struct{ tensor, want string }{
		{"model.diffusion_model.input_blocks.1.0.in_layers.2.weight", "nan.safetensors: the model produced values that are not numbers: the denoised latents hold NaN"},
		{"first_stage_model.decoder.conv_in.weight", "nan.safetensors: the model produced values that are not numbers: the decoded pixels hold NaN"},
	} {
		for _, be := range enginetest.Backends() {
			if be.Name != "cpu" {
				continue
			}
			b := be.Open(t)
			p, err := pipeline.Load(withNaN(t, c.tensor), b, pipeline.Options{Tokenizer: vocab}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Generate(context.Background(), req, nil)
			if !errors.Is(err, pipeline.ErrNotFinite) || !strings.Contains(err.Error(), c.want) || res != nil {
				t.Errorf("NaN in %s: Generate returned %v, %v; want no result and ErrNotFinite with %q", c.tensor, res != nil, err, c.want)
			}
			p.Close()
			b.Close()
		}
	}
}
