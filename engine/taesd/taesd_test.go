package taesd_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine"
	"glimmer/engine/cpu"
	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/safetensors"
	"glimmer/engine/taesd"
)

// tolerance is the allowed max|got − ref| relative to max(1, max|ref|).
// The references are float32 on the CPU (taesd.py) from fp16-exact
// weights; the fixture README puts a correct float32 implementation
// within ~1e-4, which leaves room for other summation orders while a
// wrong layer (a missing ReLU, clamp or skip, a stride-2 conv padded the
// wrong way) moves the outputs by 1e-2 or more.
const tolerance = 1e-4

var backends = enginetest.Backends()

func refsDir(t *testing.T) string { return fixtures.Path(t, "fixtures", "sd1-tiny", "refs") }

// reference reads one tensor of taesd-tiny-reference.safetensors.
func reference(t *testing.T, name string) ([]float32, []int) {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(refsDir(t), "taesd-tiny-reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Info(name)
	return v, info.Shape
}

func check(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var e, m float64
	for i := range want {
		if g := float64(got[i]); math.IsNaN(g) || math.IsInf(g, 0) {
			t.Fatalf("%s[%d] = %v", what, i, g)
		}
		e = max(e, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	bound := tolerance * max(1, m)
	t.Logf("%s: max|err| %.3g (max|ref| %.3g, bound %.3g)", what, e, m, bound)
	if e > bound {
		t.Errorf("%s: max|err| %.3g > %.3g", what, e, bound)
	}
}

func open(t *testing.T, b engine.Backend, file string) *taesd.Model {
	t.Helper()
	m, err := taesd.Open(filepath.Join(refsDir(t), file), b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func run(t *testing.T, b engine.Backend, in []float32, inShape []int, outShape []int, f func(dst, x *engine.Tensor) error) []float32 {
	t.Helper()
	x := b.New(engine.F32, inShape...)
	b.Write(x, in)
	dst := b.New(engine.F32, outShape...)
	defer b.Free(x)
	defer b.Free(dst)
	if err := f(dst, x); err != nil {
		t.Fatal(err)
	}
	v, err := b.Read(dst)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFixtures decodes z and encodes image with both namings on both
// backends and compares with taesd.py's outputs.
func TestFixtures(t *testing.T) {
	zv, zs := reference(t, "z")        // [1, 4, 8, 12]
	dec, ds := reference(t, "decoded") // [1, 3, 64, 96]
	iv, is := reference(t, "image")    // [1, 3, 64, 96]
	enc, es := reference(t, "encoded") // [1, 4, 8, 12]
	for _, bk := range backends {
		t.Run(bk.Name, func(t *testing.T) {
			b := bk.Open(t)
			defer b.Close()
			files := []struct{ name, dec, enc string }{
				{"taesd.py", "taesd-tiny_decoder.safetensors", "taesd-tiny_encoder.safetensors"},
				{"diffusers", "taesd-tiny-diffusers.safetensors", "taesd-tiny-diffusers.safetensors"},
			}
			for _, f := range files {
				t.Run(f.name, func(t *testing.T) {
					if bk.Name == "gl" && f.name == "taesd.py" {
						// The naming only decides which tensor binds where, on the
						// host; one file on llvmpipe (6 s each) covers the shaders.
						t.Skip("naming is backend-independent; GL runs the diffusers file")
					}
					d := open(t, b, f.dec)
					defer d.Close()
					if d.Naming != f.name || d.Decoder == nil || d.LatentChannels != 4 || d.Decoder.Scale != 8 {
						t.Fatalf("%s: naming %q, decoder %v, latent channels %d", f.dec, d.Naming, d.Decoder != nil, d.LatentChannels)
					}
					check(t, "decoded", run(t, b, zv, zs, ds, d.Decode), dec)

					e := d
					if f.enc != f.dec {
						if d.Encoder != nil {
							t.Errorf("%s holds only a decoder, but Open found an encoder", f.dec)
						}
						e = open(t, b, f.enc)
						defer e.Close()
						if e.Decoder != nil {
							t.Errorf("%s holds only an encoder, but Open found a decoder", f.enc)
						}
					}
					if e.Encoder == nil || e.Encoder.Scale != 8 {
						t.Fatalf("%s: no encoder, or scale != 8", f.enc)
					}
					check(t, "encoded", run(t, b, iv, is, es, e.Encode), enc)
				})
			}
		})
	}
}

// TestWrongUse: a decoder-only model refuses Encode, and shapes are
// checked.
func TestWrongUse(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	d := open(t, b, "taesd-tiny_decoder.safetensors")
	defer d.Close()
	x := b.New(engine.F32, 1, 3, 16, 16) // [1, 3, 16, 16]
	z := b.New(engine.F32, 1, 4, 3, 3)   // [1, 4, 3, 3]
	if err := d.Encode(z, x); err == nil || !strings.Contains(err.Error(), "has no encoder") {
		t.Errorf("Encode on a decoder file: %v", err)
	}
	if err := d.Decode(x, z); err == nil || !strings.Contains(err.Error(), "want F32 [1, 3, 24, 24]") {
		t.Errorf("Decode into a wrong-size image: %v", err)
	}
}

// TestBadFiles: files with missing or foreign tensors give an error that
// names the file and the problem.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	src, err := safetensors.Open(filepath.Join(refsDir(t), "taesd-tiny_decoder.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	diff, err := safetensors.Open(filepath.Join(refsDir(t), "taesd-tiny-diffusers.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer diff.Close()
	// without copies f minus the tensors drop matches, plus extra.
	without := func(f *safetensors.File, file string, drop func(string) bool, extra ...safetensors.NamedTensor) string {
		var ts []safetensors.NamedTensor
		for _, n := range f.Names() {
			if drop(n) {
				continue
			}
			info, _ := f.Info(n)
			raw, err := f.Raw(n)
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, safetensors.NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: raw})
		}
		p := filepath.Join(dir, file)
		if err := safetensors.Write(p, append(ts, extra...), nil); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		want       []string // substrings of the error
	}{
		{"missing conv in a block", without(src, "no_conv2.safetensors", func(n string) bool { return n == "8.conv.2.weight" }),
			[]string{"no_conv2.safetensors", `"8.conv.2.weight"`}},
		{"missing bias in a block", without(src, "no_bias.safetensors", func(n string) bool { return n == "13.conv.4.bias" }),
			[]string{"no_bias.safetensors", `"13.conv.4.bias"`}},
		{"missing output conv", without(src, "no_out.safetensors", func(n string) bool { return strings.HasPrefix(n, "19.") }),
			[]string{"no_out.safetensors", "ends with a block at layer 18"}},
		{"missing block", without(src, "no_block.safetensors", func(n string) bool { return strings.HasPrefix(n, "9.") }),
			[]string{"no_block.safetensors", "layer 9 has no tensors"}},
		{"missing diffusers encoder conv", without(diff, "no_enc.safetensors", func(n string) bool { return n == "encoder.layers.6.weight" }),
			[]string{"no_enc.safetensors", "encoder: layer encoder.layers.6 has no tensors"}},
		{"foreign tensor", without(src, "foreign.safetensors", func(string) bool { return false },
			safetensors.F32Tensor("3.pool.0.weight", []int{1}, []float32{0})),
			[]string{"foreign.safetensors", `"pool.0.weight" is not part of a TAESD Block`}},
		{"not a TAESD file", without(src, "unet.safetensors", func(string) bool { return true },
			safetensors.F32Tensor("conv_in.weight", []int{1}, []float32{0})),
			[]string{"unet.safetensors", `unexpected tensor "conv_in.weight"`}},
	}
	b := cpu.New()
	defer b.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := taesd.Open(c.path, b)
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// A real published tiny autoencoder of another family (TAEF2, FLUX.2
	// latents, torch .pth): refused by name, not misread.
	p := fixtures.Path(t, "refdata", "taesd", "taef2_decoder.pth")
	if m, err := taesd.Open(p, b); err == nil {
		m.Close()
		t.Error("taef2_decoder.pth opened")
	} else if !strings.Contains(err.Error(), "taef2_decoder.pth") || !strings.Contains(err.Error(), "not part of a TAESD Block") {
		t.Errorf("taef2_decoder.pth: %v", err)
	} else {
		t.Log(err)
	}
}
