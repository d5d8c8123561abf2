package clip

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"glimmer/engine"
	"glimmer/engine/fixtures"
	"glimmer/engine/prompt"
	"glimmer/engine/tokenizer"
)

// weightRef is A1111's emphasis in float64: z*w, then times
// mean(z)/mean(z*w).
func weightRef(z []float32, w []float32) []float64 {
	c := len(z) / len(w)
	out := make([]float64, len(z))
	var m0, m1 float64
	for i, v := range z {
		out[i] = float64(v) * float64(w[i/c])
		m0 += float64(v)
		m1 += out[i]
	}
	for i := range out {
		out[i] *= m0 / m1
	}
	return out
}

func meanOf(z []float32) float64 {
	var s float64
	for _, v := range z {
		s += float64(v)
	}
	return s / float64(len(z))
}

func TestApplyWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const c = 24
	z := make([]float32, Context*c)
	for i := range z {
		z[i] = float32(rng.NormFloat64()) + 0.1
	}

	ones := make([]float32, Context)
	for i := range ones {
		ones[i] = 1
	}
	got := slices.Clone(z)
	ApplyWeights(got, ones)
	if !slices.Equal(got, z) {
		t.Fatal("all-ones weights changed z")
	}

	w := slices.Clone(ones)
	w[3], w[4], w[10] = 1.5, 1.21, 1/1.1
	got = slices.Clone(z)
	ApplyWeights(got, w)
	m0, m1 := meanOf(z), meanOf(got)
	if math.Abs(m1-m0) > 1e-6*math.Abs(m0) {
		t.Fatalf("mean %v after weighting, was %v", m1, m0)
	}
	if e := relErr(got, weightRef(z, w)); e > 1e-6 {
		t.Fatalf("weighted z vs float64: %.3g", e)
	}
	// The weighted tokens really changed relative to the others.
	r3 := float64(got[3*c]) / float64(z[3*c])
	r0 := float64(got[0]) / float64(z[0])
	if math.Abs(r3/r0-1.5) > 1e-5 {
		t.Fatalf("token 3 scaled %v relative to token 0, want 1.5", r3/r0)
	}

	zero := make([]float32, Context)
	got = slices.Clone(z)
	ApplyWeights(got, zero)
	for _, v := range got {
		if v != 0 {
			t.Fatalf("all-zero weights gave %v, want 0 (and no NaN)", v)
		}
	}
}

// TestEncodeChunks runs the weighted-prompt path on both backends: a plain
// prompt is exactly Encode's output (and the fixture's), a weighted one is
// the float64 emphasis of Encode's output, and a long prompt batched with
// its padded negative is its chunks side by side.
func TestEncodeChunks(t *testing.T) {
	tok, err := tokenizer.Load(fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bc := range backends {
		t.Run(bc.Name, func(t *testing.T) {
			b := bc.Open(t)
			defer b.Close()
			m := openModel(t, sd1Diffusers)
			refIDs, refEmb, _ := readRefs(t, sd1Diffusers)
			e := loadEncoder(t, b, m, m.Config.Text)
			defer e.Close()
			c := m.Config.Text.HiddenSize
			seq := Context * c

			encode := func(ids ...[Context]int) []float32 {
				t.Helper()
				z, err := e.Encode(ids, 1)
				if err != nil {
					t.Fatal(err)
				}
				defer e.Release(z)
				return read(t, b, z)
			}
			chunks := func(ps ...[]prompt.Chunk) (*engine.Tensor, []float32) {
				t.Helper()
				poison(e, len(ps)*len(ps[0]))
				z, err := e.EncodeChunks(ps, 1)
				if err != nil {
					t.Fatal(err)
				}
				return z, read(t, b, z)
			}

			// Plain prompt: all weights 1, bit-identical to Encode.
			const plain = "a photograph of an astronaut riding a horse"
			if tok.Window(plain) != refIDs[0] {
				t.Fatal("tokenizer disagrees with the fixture's ids")
			}
			poison(e, 1)
			z, err := e.EncodePrompt(tok, plain, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !z.Shape().Equal(engine.Shape{1, Context, c}) {
				t.Fatalf("shape %v", z.Shape())
			}
			gotPlain := read(t, b, z)
			e.Release(z)
			if !slices.Equal(gotPlain, encode(refIDs[0])) {
				t.Fatal("unweighted prompt differs from Encode")
			}
			if er := relErr(gotPlain, refEmb[:seq]); er > fixtureTol {
				t.Fatalf("unweighted prompt vs diffusers: %.3g", er)
			}

			// The fixture's final_layer_norm has bias 0, so every chunk's
			// mean is ~1e-9, rounding noise, and the emphasis ratio
			// mean/mean is noise over noise (in torch as well). A real
			// CLIP's bias makes the mean well away from 0: give this one a
			// bias too, so the weighting can be held to float64.
			bias := make([]float32, c)
			for k := range bias {
				bias[k] = 0.25 + 0.125*float32(k%5)
			}
			b.Write(e.FinalLayerNorm.Bias, bias)

			// Weighted prompt: Encode's output weighted in float64.
			wc := prompt.Tokenize(tok, "a (photograph:1.3) of an [astronaut] riding a ((horse))")
			if len(wc) != 1 || allOnes(wc[0].Weights[:]) {
				t.Fatalf("unexpected chunks %+v", wc)
			}
			z, got := chunks(wc)
			e.Release(z)
			unweighted := encode(wc[0].IDs)
			er := relErr(got, weightRef(unweighted, wc[0].Weights[:]))
			t.Logf("%s weighted chunk vs float64 emphasis: max|err|/max|ref| = %.3g", bc.Name, er)
			if er > 1e-6 {
				t.Fatalf("weighted chunk vs float64 emphasis: %.3g", er)
			}
			if m0, m1 := meanOf(unweighted), meanOf(got); math.Abs(m1-m0) > 1e-5*math.Abs(m0) {
				t.Fatalf("weighted mean %v, unweighted %v", m1, m0)
			}

			// Two chunks (the second weighted), batched with the empty
			// negative padded to two chunks: [2, 154, C].
			long := strings.Repeat("red circle, ", 30) + "(blue:1.4) background"
			cond, uncond := prompt.PadChunks(tok, prompt.Tokenize(tok, long), prompt.Tokenize(tok, ""))
			if len(cond) != 2 || !allOnes(cond[0].Weights[:]) || allOnes(cond[1].Weights[:]) {
				t.Fatalf("long prompt chunks: %d", len(cond))
			}
			z, got = chunks(cond, uncond)
			if !z.Shape().Equal(engine.Shape{2, 2 * Context, c}) {
				t.Fatalf("shape %v, want [2, 154, %d]", z.Shape(), c)
			}
			e.Release(z)
			var ids [][Context]int
			for _, ch := range append(slices.Clone(cond), uncond...) {
				ids = append(ids, ch.IDs)
			}
			all := encode(ids...) // the same batch of four, unweighted
			want := slices.Clone(all)
			copy(want[seq:2*seq], float32s(weightRef(all[seq:2*seq], cond[1].Weights[:])))
			if er := relErr(got, want); er > 1e-6 {
				t.Fatalf("two-chunk batch vs Encode + float64 emphasis: %.3g", er)
			}
			if !slices.Equal(got[:seq], all[:seq]) || !slices.Equal(got[2*seq:], all[2*seq:]) {
				t.Fatal("unweighted chunks of a weighted batch differ from Encode")
			}

			if _, err := e.EncodeChunks([][]prompt.Chunk{cond, uncond[:1]}, 1); err == nil {
				t.Fatal("prompts with different chunk counts: no error")
			}
		})
	}
}

func float32s(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}
