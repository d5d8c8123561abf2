// Package modeltest builds model files for tests: single-file checkpoints
// in the original LDM naming for any SD 1.x/2.x Config, and sparse
// full-size files (a real header, no data on disk) for load-time
// measurements. It is test support; nothing in the program imports it.
package modeltest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"glimmer/engine"
	"glimmer/engine/model"
	"glimmer/engine/safetensors"
)

// Row is one line of refdata/sd15_tensor_names.tsv: an SD 1.5 tensor in
// both namings.
type Row struct {
	Component      string // unet, vae, text_encoder
	LDMKey         string
	DiffusersKey   string // without the component prefix
	LDMShape       engine.Shape
	DiffusersShape engine.Shape
}

// Canonical is the row's canonical name, "component/diffusers_key".
func (r Row) Canonical() string { return r.Component + "/" + r.DiffusersKey }

// ReadTSV parses sd15_tensor_names.tsv (comment lines start with '#',
// then a header line).
func ReadTSV(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []Row
	sc := bufio.NewScanner(f)
	header := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if !header {
			header = true
			continue
		}
		fs := strings.Split(line, "\t")
		if len(fs) != 5 {
			return nil, fmt.Errorf("%s: line %q has %d fields, want 5", path, line, len(fs))
		}
		ls, err := parseShape(fs[3])
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		ds, err := parseShape(fs[4])
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		rows = append(rows, Row{fs[0], fs[1], fs[2], ls, ds})
	}
	return rows, sc.Err()
}

func parseShape(s string) (engine.Shape, error) {
	var sh engine.Shape
	for _, p := range strings.Split(s, "x") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("bad shape %q", s)
		}
		sh = append(sh, n)
	}
	return sh, nil
}

// Stored is one tensor of a single-file checkpoint.
type Stored struct {
	Key   string
	Shape []int
	// Parts are the canonical tensors it holds, as equal row blocks in
	// order: one, or OpenCLIP's fused q, k, v. Empty for a tensor the
	// loader ignores.
	Parts []string
}

// LDMLayout lists the tensors of a single-file checkpoint of cfg in the
// LDM naming. U-Net and VAE names come from the TSV rows, so cfg must have
// SD 1.5's topology (4 levels, 2 layers per block, attention on the first
// three down levels and the mid block); widths, depths of the text
// encoder and everything else are free. SD 2.x gets the OpenCLIP text
// tower: fused in_proj, one extra (unused) last layer, text_projection
// and logit_scale.
func LDMLayout(cfg *model.Config, rows []Row) ([]Stored, error) {
	ldm := map[string]Row{}
	for _, r := range rows {
		ldm[r.Canonical()] = r
	}
	var out []Stored
	text := map[string]engine.Shape{}
	for _, spec := range cfg.Expected() {
		if strings.HasPrefix(spec.Name, model.TextEncoder+"/") {
			text[spec.Name] = spec.Shape
			if cfg.Family == model.SD1 {
				out = append(out, Stored{Key: "cond_stage_model.transformer." + strings.TrimPrefix(spec.Name, "text_encoder/"), Shape: spec.Shape, Parts: []string{spec.Name}})
			}
			continue
		}
		r, ok := ldm[spec.Name]
		if !ok {
			return nil, fmt.Errorf("%s is not in the SD 1.5 topology of the TSV", spec.Name)
		}
		shape := append([]int(nil), spec.Shape...)
		if len(r.LDMShape) == 4 && len(r.DiffusersShape) == 2 { // VAE attention: 1x1 conv in LDM
			shape = append(shape, 1, 1)
		}
		out = append(out, Stored{Key: r.LDMKey, Shape: shape, Parts: []string{spec.Name}})
	}
	if cfg.Family == model.SD2 {
		out = append(out, openCLIP(&cfg.Text)...)
	}
	return out, nil
}

func openCLIP(t *model.TextConfig) []Stored {
	const p = "cond_stage_model.model."
	const c = "text_encoder/text_model."
	h, in := t.HiddenSize, t.IntermediateSize
	out := []Stored{
		{p + "token_embedding.weight", []int{t.VocabSize, h}, []string{c + "embeddings.token_embedding.weight"}},
		{p + "positional_embedding", []int{t.MaxPositions, h}, []string{c + "embeddings.position_embedding.weight"}},
		{p + "ln_final.weight", []int{h}, []string{c + "final_layer_norm.weight"}},
		{p + "ln_final.bias", []int{h}, []string{c + "final_layer_norm.bias"}},
		{p + "text_projection", []int{h, h}, nil},
		{p + "logit_scale", []int{}, nil},
	}
	for l := 0; l <= t.Layers; l++ { // one more than run: SD 2 skips the last
		k := fmt.Sprintf("%stransformer.resblocks.%d.", p, l)
		d := fmt.Sprintf("%sencoder.layers.%d.", c, l)
		part := func(names ...string) []string {
			if l == t.Layers {
				return nil
			}
			out := make([]string, len(names))
			for i, n := range names {
				out[i] = d + n
			}
			return out
		}
		out = append(out,
			Stored{k + "ln_1.weight", []int{h}, part("layer_norm1.weight")},
			Stored{k + "ln_1.bias", []int{h}, part("layer_norm1.bias")},
			Stored{k + "attn.in_proj_weight", []int{3 * h, h}, part("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight")},
			Stored{k + "attn.in_proj_bias", []int{3 * h}, part("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias")},
			Stored{k + "attn.out_proj.weight", []int{h, h}, part("self_attn.out_proj.weight")},
			Stored{k + "attn.out_proj.bias", []int{h}, part("self_attn.out_proj.bias")},
			Stored{k + "ln_2.weight", []int{h}, part("layer_norm2.weight")},
			Stored{k + "ln_2.bias", []int{h}, part("layer_norm2.bias")},
			Stored{k + "mlp.c_fc.weight", []int{in, h}, part("mlp.fc1.weight")},
			Stored{k + "mlp.c_fc.bias", []int{in}, part("mlp.fc1.bias")},
			Stored{k + "mlp.c_proj.weight", []int{h, in}, part("mlp.fc2.weight")},
			Stored{k + "mlp.c_proj.bias", []int{h}, part("mlp.fc2.bias")},
		)
	}
	return out
}

// Fill returns n deterministic values in [-1, 1) that differ from key to
// key, so a tensor bound to the wrong name is caught by comparing bytes.
func Fill(key string, n int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(key))
	x := h.Sum64() | 1
	v := make([]float32, n)
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(x>>40)/float32(1<<23) - 1
	}
	return v
}

// Tensors turns a layout into F16 tensors filled by Fill.
func Tensors(layout []Stored) []safetensors.NamedTensor {
	out := make([]safetensors.NamedTensor, len(layout))
	for i, s := range layout {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		out[i] = safetensors.F16Tensor(s.Key, s.Shape, Fill(s.Key, n))
	}
	return out
}

// WriteSparse writes a safetensors file with a real header for layout
// (every tensor of type dt) whose data section is a hole: the file has
// its full size but occupies almost no disk, and reads as zeros.
func WriteSparse(path string, layout []Stored, dt safetensors.DType) (int64, error) {
	type entry struct {
		DType       safetensors.DType `json:"dtype"`
		Shape       []int             `json:"shape"`
		DataOffsets [2]int64          `json:"data_offsets"`
	}
	h := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, s := range layout {
		n := int64(dt.Size())
		for _, d := range s.Shape {
			n *= int64(d)
		}
		shape := s.Shape
		if shape == nil {
			shape = []int{}
		}
		h[s.Key] = entry{dt, shape, [2]int64{off, off + n}}
		off += n
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	if _, err := f.Write(n[:]); err != nil {
		return 0, err
	}
	if _, err := f.Write(hdr); err != nil {
		return 0, err
	}
	size := 8 + int64(len(hdr)) + off
	return size, f.Truncate(size)
}

// WriteRandom writes a single-file checkpoint with every tensor of rows
// (LDM names and shapes) filled with random F16 values that keep a deep
// network's activations in range: weights N(0, 1/fan_in), norm scales near
// 1, biases near 0. It is for benchmarks at real size (SD 1.5 from the
// TSV: 1.07 billion parameters, 2.1 GB).
func WriteRandom(path string, rows []Row, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x5d15))
	tensors := make([]safetensors.NamedTensor, 0, len(rows))
	for _, row := range rows {
		n := row.LDMShape.Numel()
		v := make([]float32, n)
		switch {
		case len(row.LDMShape) >= 2:
			std := 1 / math.Sqrt(float64(n/row.LDMShape[0]))
			for i := range v {
				v[i] = float32(r.NormFloat64() * std)
			}
		case strings.Contains(row.LDMKey, "norm") && strings.HasSuffix(row.LDMKey, ".weight"):
			for i := range v {
				v[i] = float32(1 + 0.02*r.NormFloat64())
			}
		default:
			for i := range v {
				v[i] = float32(0.02 * r.NormFloat64())
			}
		}
		tensors = append(tensors, safetensors.F16Tensor(row.LDMKey, row.LDMShape, v))
	}
	return safetensors.Write(path, tensors, map[string]string{"glimmer": "random weights for benchmarks"})
}

// VmRSS is the process's resident set size in bytes, from
// /proc/self/status; the test is skipped where there is none.
func VmRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}
