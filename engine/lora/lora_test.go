package lora

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"glimmer/engine"
	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
)

func randModule(rng *rand.Rand, name string, down, up []int, alpha float32) Module {
	m := Module{Name: name, DownShape: down, UpShape: up, Alpha: alpha}
	m.Down = make([]float32, numel(down))
	m.Up = make([]float32, numel(up))
	for i := range m.Down {
		m.Down[i] = float32(rng.NormFloat64())
	}
	for i := range m.Up {
		m.Up[i] = float32(rng.NormFloat64())
	}
	return m
}

// TestLoraWriteReadRoundTrip: what Write stores, Read gives back bit for
// bit (Write stores F32), names, shapes, alpha and metadata included; an
// existing file is never overwritten.
func TestLoraWriteReadRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := &File{
		Modules: []Module{
			randModule(rng, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", []int{4, 32}, []int{32, 4}, 2),
			randModule(rng, "unet.down_blocks.0.attentions.0.proj_in", []int{2, 32, 1, 1}, []int{32, 2, 1, 1}, 1),
			randModule(rng, "unet.down_blocks.0.resnets.0.conv1", []int{3, 32, 3, 3}, []int{32, 3, 1, 1}, 0.5),
			randModule(rng, "text_encoder.text_model.encoder.layers.0.self_attn.q_proj", []int{4, 32}, []int{32, 4}, 4),
		},
		Metadata: map[string]string{"ss_network_dim": "4", "ss_network_alpha": "2", "note": "a, b: c"},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Write(path, f); err != nil {
		t.Fatal(err)
	}
	g, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	// Read sorts modules by kohya name; compare by name.
	want := map[string]Module{}
	for _, m := range f.Modules {
		want[m.Name] = m
	}
	if len(g.Modules) != len(f.Modules) {
		t.Fatalf("%d modules back, want %d", len(g.Modules), len(f.Modules))
	}
	for _, m := range g.Modules {
		w, ok := want[m.Name]
		if !ok {
			t.Errorf("module %q came back; not written", m.Name)
			continue
		}
		if !reflect.DeepEqual(m, w) {
			t.Errorf("module %s differs after the round trip", m.Name)
		}
	}
	if !reflect.DeepEqual(g.Metadata, f.Metadata) {
		t.Errorf("metadata %v, want %v", g.Metadata, f.Metadata)
	}
	st, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_down.weight",
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_up.weight",
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.alpha",
		"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
	} {
		info, ok := st.Info(n)
		if !ok {
			t.Errorf("no tensor %s in the written file", n)
		} else if info.DType != safetensors.F32 {
			t.Errorf("%s is %s, want F32", n, info.DType)
		}
	}
	st.Close()
	before, _ := os.ReadFile(path)
	f.Modules[0].Alpha = 7
	err = Write(path, f)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("writing over an existing file: %v, want an 'already exists' error", err)
	}
	after, _ := os.ReadFile(path)
	if !slices.Equal(before, after) {
		t.Error("the existing file changed")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("%d files in the folder, want only the LoRA (no temporary left)", len(ents))
	}
}

// TestLoraWriteRefusesBadModules: bad shapes and unknown components are
// refused before anything is written.
func TestLoraWriteRefusesBadModules(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		m    Module
		want string
	}{
		{"rank", randModule(rng, "unet.conv_in", []int{4, 32}, []int{32, 3}, 1), "disagree on the rank"},
		{"component", randModule(rng, "vae.decoder.conv_in", []int{4, 32}, []int{32, 4}, 1), "must start with"},
		{"values", Module{Name: "unet.a", Down: make([]float32, 3), DownShape: []int{2, 2}, Up: make([]float32, 4), UpShape: []int{2, 2}}, "values"},
	} {
		path := filepath.Join(dir, tc.name+".safetensors")
		err := Write(path, &File{Modules: []Module{tc.m}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.name+".safetensors") {
			t.Errorf("%s: %v, want an error naming the file with %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s: a file was written", tc.name)
		}
	}
}

func openModel(t *testing.T, elem ...string) *model.Model {
	t.Helper()
	m, err := model.Open(fixtures.Path(t, elem...), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func isAttnProjection(n string) bool {
	for _, s := range []string{".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight",
		".q_proj.weight", ".k_proj.weight", ".v_proj.weight", ".out_proj.weight"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// TestLoraKohyaNamesFixture: every attention projection of the sd1-tiny
// U-Net and text encoder gets the kohya name A1111 expects, Read's name
// for it is the canonical one again, and Apply resolves it to that very
// weight. Two names are spelled out in full; the rule is checked on all.
func TestLoraKohyaNamesFixture(t *testing.T) {
	m := openModel(t, "fixtures", "sd1-tiny", "diffusers")
	for _, tc := range [][2]string{
		{"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0", "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0"},
		{"unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q", "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q"},
		{"text_encoder.text_model.encoder.layers.1.self_attn.out_proj", "lora_te_text_model_encoder_layers_1_self_attn_out_proj"},
	} {
		if got := KohyaName(tc[0]); got != tc[1] {
			t.Errorf("KohyaName(%s) = %s, want %s", tc[0], got, tc[1])
		}
	}
	for _, comp := range []string{UNet, TextEncoder} {
		w := m.Component(comp)
		var mods []Module
		rng := rand.New(rand.NewPCG(5, 6))
		for _, n := range w.Names() {
			mod, ok := strings.CutSuffix(n, ".weight")
			if !ok {
				continue
			}
			canon := comp + "." + mod
			k := KohyaName(canon)
			if want := "lora_" + map[string]string{UNet: "unet_", TextEncoder: "te_"}[comp] + strings.ReplaceAll(mod, ".", "_"); k != want {
				t.Errorf("KohyaName(%s) = %s, want %s", canon, k, want)
			}
			// Read's reading of the kohya name is the canonical name, for
			// every weight (not only attention).
			if g, err := canonicalGuess("x", k); err != nil || g != canon {
				t.Errorf("Read names %s %q (%v), want %q", k, g, err, canon)
			}
			info, _ := w.Info(n)
			if !isAttnProjection(n) {
				continue
			}
			mods = append(mods, randModule(rng, canon, []int{2, info.Shape[1]}, []int{info.Shape[0], 2}, 1))
		}
		want := map[string]bool{}
		for _, md := range mods {
			want[strings.TrimPrefix(md.Name, comp+".")+".weight"] = true
		}
		if comp == UNet && len(want) != 16*8 || comp == TextEncoder && len(want) != m.Config.Text.Layers*4 {
			t.Fatalf("%s: %d attention projections in the fixture; expected 16 transformers x 8 (U-Net) or 4 per text layer", comp, len(want))
		}
		// Through a file: Write, Read, Apply.
		path := filepath.Join(t.TempDir(), comp+".safetensors")
		if err := Write(path, &File{Modules: mods}); err != nil {
			t.Fatal(err)
		}
		f, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		checkTargets(t, w, comp, f, want)
	}
}

// checkTargets applies f to w and checks the set of weights it adapts.
func checkTargets(t *testing.T, w model.Weights, comp string, f *File, want map[string]bool) {
	t.Helper()
	src, err := Apply(w, comp, []Weighted{{File: f, Path: "x.safetensors", Weight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	mg, ok := src.(*merged)
	if !ok {
		t.Fatalf("%s: Apply adapted nothing", comp)
	}
	got := map[string]bool{}
	for n, a := range mg.adds {
		got[n] = true
		if len(a) != 1 {
			t.Errorf("%s: %d modules on %s, want 1", comp, len(a), n)
		}
	}
	if !reflect.DeepEqual(got, want) {
		for n := range want {
			if !got[n] {
				t.Errorf("%s: %s not adapted", comp, n)
			}
		}
		for n := range got {
			if !want[n] {
				t.Errorf("%s: %s adapted but not named", comp, n)
			}
		}
	}
}

// TestLoraLDMNames: kohya's LDM-flavoured U-Net names resolve to the same
// weights as the diffusers-flavoured ones. The oracle is the single-file
// fixture itself: model.Open maps its LDM keys to canonical names, and
// each canonical weight's stored key (minus model.diffusion_model. and
// .weight, dots to underscores) is exactly kohya's LDM name for it. The
// names are resolved against the diffusers folder, so the LDM layout is
// read from the diffusers names. Every 2-D and 4-D U-Net weight is
// covered: attention projections, proj_in/out, ResNet convolutions,
// time embedding, conv_in/out.
func TestLoraLDMNames(t *testing.T) {
	single := openModel(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	diff := openModel(t, "fixtures", "sd1-tiny", "diffusers")
	w := diff.Component(UNet)
	var tensors []safetensors.NamedTensor
	want := map[string]bool{}
	sawAttn := false
	for _, n := range single.Component(UNet).Names() {
		info, _ := single.Component(UNet).Info(n)
		if !strings.HasSuffix(n, ".weight") || len(info.Shape) < 2 {
			continue
		}
		key, ok := strings.CutPrefix(info.Key, "model.diffusion_model.")
		if !ok {
			t.Fatalf("%s is stored as %s", n, info.Key)
		}
		k := "lora_unet_" + strings.ReplaceAll(strings.TrimSuffix(key, ".weight"), ".", "_")
		if n == "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight" {
			sawAttn = true
			if k != "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q" {
				t.Errorf("LDM name %s", k)
			}
		}
		in := numel(info.Shape[1:])
		tensors = append(tensors,
			safetensors.F32Tensor(k+".lora_down.weight", append([]int{1}, info.Shape[1:]...), make([]float32, in)),
			safetensors.F32Tensor(k+".lora_up.weight", []int{info.Shape[0], 1}, make([]float32, info.Shape[0])))
		want[n] = true
	}
	if !sawAttn || len(want) < 100 {
		t.Fatalf("only %d U-Net weights in the fixture", len(want))
	}
	path := filepath.Join(t.TempDir(), "ldm.safetensors")
	if err := safetensors.Write(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Modules {
		if !strings.HasPrefix(m.Name, "unet.input_blocks.") && !strings.HasPrefix(m.Name, "unet.middle_block.") &&
			!strings.HasPrefix(m.Name, "unet.output_blocks.") && !strings.HasPrefix(m.Name, "unet.time_embed.") &&
			!strings.HasPrefix(m.Name, "unet.out.") {
			t.Errorf("Read named an LDM module %s", m.Name)
		}
	}
	checkTargets(t, w, UNet, f, want)
}

// fakeSource is a source of a few weights in given dtypes.
type fakeSource struct {
	data map[string]model.Data
}

func (s *fakeSource) Raw(name string) (model.Data, error) {
	d, ok := s.data[name]
	if !ok {
		return model.Data{}, os.ErrNotExist
	}
	return d, nil
}

func (s *fakeSource) Names() []string {
	var out []string
	for n := range s.data {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func packF16(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], safetensors.Float32ToHalf(x))
	}
	return b
}

func packF32(v []float32) []byte {
	return safetensors.F32Tensor("", nil, v).Data
}

func values(t *testing.T, d model.Data) []float64 {
	t.Helper()
	f, err := toFloat32(d)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// ulp is the spacing of float numbers with mant mantissa bits (10 for
// F16, 23 for F32) at x, subnormals included.
func ulp(x float64, mant, minExp int) float64 {
	e := math.Ilogb(math.Abs(x))
	if x == 0 || e < minExp {
		e = minExp
	}
	return math.Ldexp(1, e-mant)
}

// TestLoraApplyMatchesFloat64: two LoRAs on F16 and F32 weights (a Linear
// and a 3x3 convolution) give W + Σ w·(α/r)·up·down as computed here in
// float64 from the same inputs, rounded to the weight's dtype.
//
// Bound: Apply accumulates in float64 (error ~1e-16 relative, far below
// the output's precision) and rounds to float32, then for F16 once more to
// half. So an F32 result is within 1 ulp of the float64 reference (half
// an ulp for the rounding, the rest for float64 summation order), and an
// F16 result within half an F16 ulp plus half an F32 ulp (double
// rounding).
func TestLoraApplyMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	type weight struct {
		name  string
		shape []int
	}
	ws := []weight{{"lin16", []int{37, 29}}, {"lin32", []int{37, 29}}, {"conv16", []int{13, 11, 3, 3}}, {"conv32", []int{13, 11, 3, 3}}, {"other", []int{5, 5}}}
	src := &fakeSource{data: map[string]model.Data{}}
	base := map[string][]float64{}
	for _, w := range ws {
		v := randv(numel(w.shape))
		d := model.Data{Shape: w.shape}
		if strings.HasSuffix(w.name, "16") {
			d.DType = engine.F16
			d.Bytes = packF16(v)
		} else {
			d.DType = engine.F32
			d.Bytes = packF32(v)
		}
		src.data[w.name+".weight"] = d
		base[w.name+".weight"] = values(t, d)
	}
	mk := func(rank int, alpha float32) *File {
		f := &File{}
		for _, w := range ws[:4] {
			down := append([]int{rank}, w.shape[1:]...)
			up := []int{w.shape[0], rank}
			if len(w.shape) == 4 {
				up = append(up, 1, 1)
			}
			f.Modules = append(f.Modules, randModule(rng, "unet."+w.name, down, up, alpha))
		}
		return f
	}
	loras := []Weighted{{File: mk(3, 1.5), Path: "a", Weight: 0.8}, {File: mk(5, 5), Path: "b", Weight: -1.25}}
	out, err := Apply(src, UNet, loras)
	if err != nil {
		t.Fatal(err)
	}
	for wi, w := range ws {
		name := w.name + ".weight"
		got, err := out.Raw(name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != src.data[name].DType || !got.Shape.Equal(w.shape) {
			t.Fatalf("%s: dtype %v shape %v, want the weight's own", name, got.DType, got.Shape)
		}
		gv := values(t, got)
		ref := slices.Clone(base[name])
		if wi < 4 {
			o, k := w.shape[0], numel(w.shape[1:])
			for _, l := range loras {
				m := l.File.Modules[wi]
				r := m.DownShape[0]
				scale := float64(l.Weight) * float64(m.Alpha) / float64(r)
				for i := range o {
					for j := range k {
						var s float64
						for q := range r {
							s += float64(m.Up[i*r+q]) * float64(m.Down[q*k+j])
						}
						ref[i*k+j] += scale * s
					}
				}
			}
		}
		var worst float64
		for i := range ref {
			var bound float64
			if strings.HasSuffix(w.name, "16") {
				bound = 0.5*ulp(ref[i], 10, -14) + 0.5*ulp(ref[i], 23, -126)
			} else {
				bound = ulp(ref[i], 23, -126)
			}
			e := math.Abs(gv[i] - ref[i])
			if !(e <= bound) {
				t.Fatalf("%s[%d] = %v, want %v (bound %g)", name, i, gv[i], ref[i], bound)
			}
			worst = max(worst, e/bound)
		}
		if wi == 4 && !slices.Equal(got.Bytes, src.data[name].Bytes) {
			t.Errorf("%s is not adapted but changed", name)
		}
		t.Logf("%s: worst error %.3f of the bound", name, worst)
	}
	// The source's bytes are untouched (they may alias a memory map).
	for _, w := range ws {
		if !slices.Equal(values(t, src.data[w.name+".weight"]), base[w.name+".weight"]) {
			t.Errorf("%s: the source's data changed", w.name)
		}
	}
	// Weight 0 adapts nothing at all.
	zero := []Weighted{{File: loras[0].File, Weight: 0}}
	if s, err := Apply(src, UNet, zero); err != nil || s != nn.Source(src) {
		t.Errorf("weight 0: Apply gave %T, %v; want the source itself", s, err)
	}
}

// TestLoraApplyErrors: a module naming a weight the model lacks, and one
// whose shapes do not fit, are errors naming the file and the module.
func TestLoraApplyErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	src := &fakeSource{data: map[string]model.Data{
		"a.weight": {DType: engine.F32, Shape: []int{4, 6}, Bytes: packF32(make([]float32, 24))},
	}}
	for _, tc := range []struct {
		m    Module
		want string
	}{
		{randModule(rng, "unet.b", []int{2, 6}, []int{4, 2}, 1), "lora_unet_b: the model has no such weight"},
		{randModule(rng, "unet.a", []int{2, 5}, []int{4, 2}, 1), "does not fit the model's weight [4 6]"},
		{randModule(rng, "unet.a", []int{2, 6}, []int{3, 2}, 1), "does not fit"},
	} {
		_, err := Apply(src, UNet, []Weighted{{File: &File{Modules: []Module{tc.m}}, Path: "/x/bad.safetensors", Weight: 1}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "bad.safetensors: ") {
			t.Errorf("%s: %v, want an error starting with the file's name and containing %q", tc.m.Name, err, tc.want)
		}
	}
	// Modules of the other component are not this Apply's business.
	te := randModule(rng, "text_encoder.missing", []int{2, 6}, []int{4, 2}, 1)
	if _, err := Apply(src, UNet, []Weighted{{File: &File{Modules: []Module{te}}, Weight: 1}}); err != nil {
		t.Errorf("a text-encoder module failed the U-Net: %v", err)
	}
}

// TestLoraReadErrors: each bad file gives one error naming the file and
// the problem.
func TestLoraReadErrors(t *testing.T) {
	dir := t.TempDir()
	f32 := safetensors.F32Tensor
	const k = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
	cases := []struct {
		name    string
		tensors []safetensors.NamedTensor
		raw     string
		want    string
	}{
		{name: "text", raw: "hello, not a tensor file\n", want: "bad.safetensors"},
		{name: "model", tensors: []safetensors.NamedTensor{f32("model.diffusion_model.out.2.weight", []int{2}, []float32{1, 2})}, want: "not a kohya LoRA file: it holds model weights"},
		{name: "peft", tensors: []safetensors.NamedTensor{f32("unet.x.lora_A.weight", []int{2}, []float32{1, 2})}, want: "diffusers/PEFT"},
		{name: "noup", tensors: []safetensors.NamedTensor{f32(k+".lora_down.weight", []int{2, 4}, make([]float32, 8)), f32(k+".alpha", []int{}, []float32{1})}, want: "module " + k + " has lora_down.weight but no lora_up.weight"},
		{name: "nodown", tensors: []safetensors.NamedTensor{f32(k+".lora_up.weight", []int{4, 2}, make([]float32, 8))}, want: "has lora_up.weight but no lora_down.weight"},
		{name: "rank", tensors: []safetensors.NamedTensor{f32(k+".lora_down.weight", []int{2, 4}, make([]float32, 8)), f32(k+".lora_up.weight", []int{4, 3}, make([]float32, 12))}, want: "disagree on the rank (2 and 3)"},
		{name: "unknown", tensors: []safetensors.NamedTensor{f32("lora_foo_x.lora_down.weight", []int{2, 4}, make([]float32, 8)), f32("lora_foo_x.lora_up.weight", []int{4, 2}, make([]float32, 8))}, want: "unknown module lora_foo_x"},
		{name: "sdxl", tensors: []safetensors.NamedTensor{f32("lora_te1_x.lora_down.weight", []int{2, 4}, make([]float32, 8)), f32("lora_te1_x.lora_up.weight", []int{4, 2}, make([]float32, 8))}, want: "SDXL"},
		{name: "loha", tensors: []safetensors.NamedTensor{f32(k+".lora_down.weight", []int{2, 4}, make([]float32, 8)), f32(k+".hada_w1_a", []int{4, 2}, make([]float32, 8))}, want: "LoHa"},
		{name: "alpha", tensors: []safetensors.NamedTensor{f32(k+".lora_down.weight", []int{2, 4}, make([]float32, 8)), f32(k+".lora_up.weight", []int{4, 2}, make([]float32, 8)), f32(k+".alpha", []int{2}, []float32{1, 1})}, want: "alpha has shape [2]"},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.name, "bad.safetensors")
		os.MkdirAll(filepath.Dir(path), 0o755)
		if tc.raw != "" {
			os.WriteFile(path, []byte(tc.raw), 0o644)
		} else if err := safetensors.Write(path, tc.tensors, nil); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		if err == nil || !strings.HasPrefix(err.Error(), "bad.safetensors: ") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line starting with the file name and containing %q", tc.name, err, tc.want)
		}
	}
}

// TestLoraReadAlphaAndDTypes: alpha missing means alpha = rank (scale 1);
// F16 and BF16 tensors read exactly; alpha of shape [1] is accepted.
func TestLoraReadAlphaAndDTypes(t *testing.T) {
	dir := t.TempDir()
	const k = "lora_te_text_model_encoder_layers_0_mlp_fc1"
	down := []float32{0.5, -1, 2, 0.25, 3, -0.125} // exact in F16 and BF16
	up := []float32{1, 2, -4, 0.5, 8, -16}
	bf16 := func(v []float32) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(x)>>16))
		}
		return b
	}
	for _, tc := range []struct {
		name      string
		tensors   []safetensors.NamedTensor
		wantAlpha float32
	}{
		{"f16-noalpha", []safetensors.NamedTensor{safetensors.F16Tensor(k+".lora_down.weight", []int{2, 3}, down), safetensors.F16Tensor(k+".lora_up.weight", []int{3, 2}, up)}, 2},
		{"bf16-alpha1", []safetensors.NamedTensor{
			{Name: k + ".lora_down.weight", DType: safetensors.BF16, Shape: []int{2, 3}, Data: bf16(down)},
			{Name: k + ".lora_up.weight", DType: safetensors.BF16, Shape: []int{3, 2}, Data: bf16(up)},
			safetensors.F16Tensor(k+".alpha", []int{1}, []float32{1})}, 1},
	} {
		path := filepath.Join(dir, tc.name+".safetensors")
		if err := safetensors.Write(path, tc.tensors, map[string]string{"ss_network_dim": "2"}); err != nil {
			t.Fatal(err)
		}
		f, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		m := f.Modules[0]
		if m.Name != "text_encoder.text_model.encoder.layers.0.mlp.fc1" || !slices.Equal(m.Down, down) || !slices.Equal(m.Up, up) ||
			m.Alpha != tc.wantAlpha || m.Scale() != float64(tc.wantAlpha)/2 || f.Metadata["ss_network_dim"] != "2" {
			t.Errorf("%s: read %+v, metadata %v", tc.name, m, f.Metadata)
		}
	}
}

// TestLoraHash: the hash is SHA-256 of what follows the header, so a
// metadata edit keeps it and a value change does not.
func TestLoraHash(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))
	m := randModule(rng, "unet.conv_in", []int{2, 4}, []int{4, 2}, 1)
	a, b, c := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors"), filepath.Join(dir, "c.safetensors")
	if err := Write(a, &File{Modules: []Module{m}}); err != nil {
		t.Fatal(err)
	}
	if err := Write(b, &File{Modules: []Module{m}, Metadata: map[string]string{"ss_output_name": "b"}}); err != nil {
		t.Fatal(err)
	}
	m.Alpha = 2
	if err := Write(c, &File{Modules: []Module{m}}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(a)
	n := binary.LittleEndian.Uint64(raw)
	sum := sha256.Sum256(raw[8+n:])
	ha, err := Hash(a)
	if err != nil || ha != hex.EncodeToString(sum[:]) {
		t.Errorf("Hash = %s, %v; want %x", ha, err, sum)
	}
	hb, _ := Hash(b)
	hc, _ := Hash(c)
	if hb != ha || hc == ha {
		t.Errorf("hashes a %s b %s c %s: want a == b (metadata only) != c", ha, hb, hc)
	}
	if _, err := Hash(filepath.Join(dir, "none.safetensors")); err == nil || !strings.Contains(err.Error(), "none.safetensors") {
		t.Errorf("missing file: %v", err)
	}
}
