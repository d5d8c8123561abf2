package clip

import (
	"math"
	"testing"

	"glimmer/engine"
	"glimmer/engine/cpu"
	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
)

// fixtureTol bounds max|got-ref| / max|ref| against the diffusers
// references: a correct float32 implementation lands near 1e-6 (the
// references are float32 too, summed in another order); 1e-4 leaves room
// for a backend's different reduction order, not for a wrong op.
const fixtureTol = 1e-4

var backends = enginetest.Backends()

// fixture is one reference model and its text-encoder outputs.
type fixture struct {
	name  string
	model []string // path under ../shared
	refs  []string
}

var (
	sd1Single    = fixture{"sd1-single-file", []string{"fixtures", "sd1-tiny", "sd1-tiny.safetensors"}, []string{"fixtures", "sd1-tiny", "refs", "sd1-components.safetensors"}}
	sd1Diffusers = fixture{"sd1-diffusers", []string{"fixtures", "sd1-tiny", "diffusers"}, []string{"fixtures", "sd1-tiny", "refs", "sd1-components.safetensors"}}
	sd2Diffusers = fixture{"sd2-diffusers", []string{"fixtures", "sd2-tiny", "diffusers"}, []string{"fixtures", "sd2-tiny", "refs", "sd2-components.safetensors"}}
)

func openModel(t *testing.T, f fixture) *model.Model {
	t.Helper()
	m, err := model.Open(fixtures.Path(t, f.model...), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// loadEncoder binds the text encoder of m on b, as the pipeline does.
func loadEncoder(t *testing.T, b engine.Backend, m *model.Model, cfg model.TextConfig) *TextEncoder {
	t.Helper()
	l := nn.NewLoader(b, m.Component("text_encoder"), false).Sub("text_model")
	e, err := Load(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// readRefs returns the fixture's token ids [N][77] and embeddings
// [N, 77, C].
func readRefs(t *testing.T, f fixture) ([][Context]int, []float32, engine.Shape) {
	t.Helper()
	st, err := safetensors.Open(fixtures.Path(t, f.refs...))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	info, ok := st.Info("text.ids")
	if !ok || info.DType != safetensors.I32 || len(info.Shape) != 2 || info.Shape[1] != Context {
		t.Fatalf("text.ids: %+v, want I32 [N, 77]", info)
	}
	flat, err := st.Int64("text.ids")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([][Context]int, info.Shape[0])
	for i := range ids {
		for j := range Context {
			ids[i][j] = int(flat[i*Context+j])
		}
	}
	emb, err := st.Float32("text.embeddings")
	if err != nil {
		t.Fatal(err)
	}
	es, _ := st.Info("text.embeddings")
	return ids, emb, engine.Shape(es.Shape)
}

// relErr is max|got-want| / max|want|; NaN anywhere gives +Inf.
func relErr[T float32 | float64](got []float32, want []T) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var e, m float64
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1)
		}
		e = max(e, math.Abs(g-w))
		m = max(m, math.Abs(w))
	}
	return e / m
}

// poison fills the pool with NaN buffers of every size the encoder uses
// for a batch of bsz, so a buffer read before it is written shows up as
// NaN in the output.
func poison(e *TextEncoder, bsz int) {
	c, inner := e.Config.HiddenSize, e.Config.IntermediateSize
	var ts []*engine.Tensor
	for range 8 {
		ts = append(ts, e.pool.Get(bsz, Context, c))
	}
	for range 2 {
		ts = append(ts, e.pool.Get(bsz, Context, inner))
	}
	for _, x := range ts {
		nan := make([]float32, x.Numel())
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		e.B.Write(x, nan)
	}
	e.pool.Put(ts...)
}

func read(t *testing.T, b engine.Backend, x *engine.Tensor) []float32 {
	t.Helper()
	v, err := b.Read(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFixtures reproduces diffusers' last_hidden_state for every prompt of
// the reference sets, on both backends, from both file layouts of SD1 and
// from SD2's (GELU, "!" padding), with every pooled buffer poisoned first.
func TestFixtures(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.Name, func(t *testing.T) {
			b := bc.Open(t)
			defer b.Close()
			for _, f := range []fixture{sd1Single, sd1Diffusers, sd2Diffusers} {
				t.Run(f.name, func(t *testing.T) {
					m := openModel(t, f)
					ids, want, shape := readRefs(t, f)
					e := loadEncoder(t, b, m, m.Config.Text)
					defer e.Close()
					poison(e, len(ids))
					z, err := e.Encode(ids, 1)
					if err != nil {
						t.Fatal(err)
					}
					if !z.Shape().Equal(shape) {
						t.Fatalf("shape %v, want %v", z.Shape(), shape)
					}
					got := read(t, b, z)
					err1 := relErr(got, want)
					t.Logf("%s %s: %d prompts, max|err|/max|ref| = %.3g", bc.Name, f.name, len(ids), err1)
					if err1 > fixtureTol {
						t.Fatalf("max|err|/max|ref| = %.3g > %g", err1, fixtureTol)
					}
					// The output buffer comes back from the pool on the next
					// call, poisoned: it must be overwritten entirely.
					nan := make([]float32, z.Numel())
					for i := range nan {
						nan[i] = float32(math.NaN())
					}
					b.Write(z, nan)
					e.Release(z)
					z2, err := e.Encode(ids, 1)
					if err != nil {
						t.Fatal(err)
					}
					if e2 := relErr(read(t, b, z2), got); e2 != 0 {
						t.Fatalf("second Encode differs from the first by %.3g", e2)
					}
				})
			}
		})
	}
}

// TestClipSkip checks CLIP skip against the float64 oracle (the hidden
// state after L-1 layers through final_layer_norm), and against the same
// encoder loaded with one layer fewer. The oracle is first held to the
// diffusers fixture at skip 1.
func TestClipSkip(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	for _, f := range []fixture{sd1Diffusers, sd2Diffusers} {
		t.Run(f.name, func(t *testing.T) {
			m := openModel(t, f)
			ids, want, _ := readRefs(t, f)
			ids = ids[:2] // the oracle is slow; two prompts suffice
			c := m.Config.Text.HiddenSize
			layers := m.Config.Text.Layers
			ref := newRefEncoder(t, m)
			var ref1, ref2 []float64
			for _, s := range ids {
				ref1 = append(ref1, ref.encode(t, s, layers)...)
				ref2 = append(ref2, ref.encode(t, s, layers-1)...)
			}
			if e := relErr(want[:len(ids)*Context*c], ref1); e > 1e-5 {
				t.Fatalf("float64 oracle vs diffusers: %.3g", e)
			} else {
				t.Logf("float64 oracle vs diffusers (skip 1): %.3g", e)
			}

			e := loadEncoder(t, b, m, m.Config.Text)
			defer e.Close()
			z2, err := e.Encode(ids, 2)
			if err != nil {
				t.Fatal(err)
			}
			got2 := read(t, b, z2)
			err2 := relErr(got2, ref2)
			t.Logf("clip skip 2 vs float64 oracle: max|err|/max|ref| = %.3g", err2)
			if err2 > fixtureTol {
				t.Fatalf("clip skip 2: %.3g > %g", err2, fixtureTol)
			}
			if e := relErr(got2, ref1); e < 1e-2 {
				t.Fatalf("clip skip 2 is within %.3g of skip 1: the skip did nothing", e)
			}

			cfg := m.Config.Text
			cfg.Layers--
			short := loadEncoder(t, b, m, cfg)
			defer short.Close()
			z1, err := short.Encode(ids, 1)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(read(t, b, z1), got2); e != 0 {
				t.Fatalf("%d-layer encoder differs from clip skip 2 by %.3g", cfg.Layers, e)
			}

			z0, err := e.Encode(ids, 0)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(read(t, b, z0), ref1); e > fixtureTol {
				t.Fatalf("clip skip 0 (= 1) vs oracle: %.3g", e)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	m := openModel(t, sd1Diffusers)
	e := loadEncoder(t, b, m, m.Config.Text)
	defer e.Close()
	var ok [Context]int
	bad := ok
	bad[5] = m.Config.Text.VocabSize
	neg := ok
	neg[0] = -1
	for _, c := range []struct {
		name string
		ids  [][Context]int
		skip int
	}{
		{"empty batch", nil, 1},
		{"id past the vocabulary", [][Context]int{ok, bad}, 1},
		{"negative id", [][Context]int{neg}, 1},
		{"negative skip", [][Context]int{ok}, -1},
		{"skip past the layers", [][Context]int{ok}, m.Config.Text.Layers + 1},
	} {
		if _, err := e.Encode(c.ids, c.skip); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	if _, err := e.Encode([][Context]int{ok}, m.Config.Text.Layers); err != nil {
		t.Errorf("skip = layers (one layer run): %v", err)
	}

	for _, c := range []struct {
		name string
		edit func(*model.TextConfig)
	}{
		{"activation", func(c *model.TextConfig) { c.Activation = "relu" }},
		{"positions", func(c *model.TextConfig) { c.MaxPositions = 64 }},
		{"heads", func(c *model.TextConfig) { c.Heads = 3 }},
		{"too many layers", func(c *model.TextConfig) { c.Layers++ }},
	} {
		cfg := m.Config.Text
		c.edit(&cfg)
		l := nn.NewLoader(b, m.Component("text_encoder"), false).Sub("text_model")
		if _, err := Load(l, cfg); err == nil {
			t.Errorf("Load with bad %s: no error", c.name)
		} else {
			t.Logf("bad %s: %v", c.name, err)
		}
	}
}
