// Package lora reads, writes and applies LoRA files in the kohya-ss /
// AUTOMATIC1111 format: a safetensors file with, for each adapted weight W
// [Out, In] (or a convolution [Out, In, KH, KW]), three tensors named
// after the module in kohya's underscore naming,
//
//	lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight  [R, In] or [R, In, KH, KW]
//	lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight    [Out, R] or [Out, R, 1, 1]
//	lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha             [] or [1]
//
// and text-encoder modules as lora_te_text_model_encoder_layers_0_self_attn_q_proj.
// Applied with weight w the module changes W to
//
//	W + w · (alpha / R) · up · down      (alpha missing: alpha = R)
//
// where up·down is the [Out, R]×[R, In·KH·KW] product reshaped to W's
// shape. kohya's LDM-flavoured U-Net names (lora_unet_input_blocks_1_1_…,
// lora_unet_middle_block_1_…, lora_unet_output_blocks_…) are read too and
// mapped onto the model's diffusers names by Apply, with the model's own
// layout.
//
// Underscore names are ambiguous (to_out_0 is to_out.0, transformer_blocks
// is one word), so Apply resolves each module against the names the model
// actually has: it converts every model weight name to its kohya form and
// looks the module up there.
package lora

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"glimmer/engine/safetensors"
)

// Module is one adapted weight: ΔW = (Alpha/Rank) · Up·Down.
type Module struct {
	// Name is the adapted weight's canonical name without ".weight",
	// prefixed by its component: "unet.down_blocks.0.attentions.0.
	// transformer_blocks.0.attn1.to_q" or "text_encoder.text_model.
	// encoder.layers.0.self_attn.q_proj". A file in kohya's LDM naming
	// reads as its LDM path ("unet.input_blocks.1.1.transformer_blocks.0.
	// attn1.to_q"), which Apply maps with the model's layout.
	Name      string
	Down      []float32 // [Rank, In] (or [Rank, In, KH, KW])
	DownShape []int
	Up        []float32 // [Out, Rank] (or [Out, Rank, 1, 1])
	UpShape   []int
	Alpha     float32 // scale = Alpha / Rank
}

// Rank is the module's inner dimension (DownShape[0]).
func (m *Module) Rank() int {
	if len(m.DownShape) == 0 {
		return 0
	}
	return m.DownShape[0]
}

// Scale is Alpha / Rank.
func (m *Module) Scale() float64 { return float64(m.Alpha) / float64(m.Rank()) }

// File is a LoRA: its modules and the safetensors header's metadata
// (kohya's ss_* training notes), kept as read and written back as given.
type File struct {
	Modules  []Module
	Metadata map[string]string
}

// Components a module can belong to.
const (
	UNet        = "unet"
	TextEncoder = "text_encoder"
)

// The kohya prefixes of the two components.
const (
	prefixUNet = "lora_unet_"
	prefixText = "lora_te_"
)

// Tensor-name suffixes of a module.
const (
	suffixDown  = ".lora_down.weight"
	suffixUp    = ".lora_up.weight"
	suffixAlpha = ".alpha"
)

// KohyaName is a canonical module name in kohya's naming:
// "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q" →
// "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
// "text_encoder.text_model.encoder.layers.0.self_attn.q_proj" →
// "lora_te_text_model_encoder_layers_0_self_attn_q_proj". A name of
// neither component becomes "lora_" + its underscore form (Write refuses
// such modules).
func KohyaName(canonical string) string {
	under := func(s string) string { return strings.ReplaceAll(s, ".", "_") }
	if rest, ok := strings.CutPrefix(canonical, UNet+"."); ok {
		return prefixUNet + under(rest)
	}
	if rest, ok := strings.CutPrefix(canonical, TextEncoder+"."); ok {
		return prefixText + under(rest)
	}
	return "lora_" + under(canonical)
}

// compounds are the identifiers of the SD module paths (diffusers and
// LDM) that contain underscores; Read joins their words back so that the
// names it gives read as the model's. Longest first.
var compounds = func() [][]string {
	list := []string{
		"time_emb_proj", "conv_norm_out", "final_layer_norm",
		"down_blocks", "up_blocks", "mid_block", "transformer_blocks",
		"to_q", "to_k", "to_v", "to_out", "proj_in", "proj_out",
		"conv_shortcut", "conv_in", "conv_out", "time_embedding", "linear_1", "linear_2",
		"text_model", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj",
		"layer_norm1", "layer_norm2", "token_embedding", "position_embedding",
		"input_blocks", "middle_block", "output_blocks", "in_layers", "out_layers",
		"emb_layers", "skip_connection", "time_embed",
	}
	out := make([][]string, len(list))
	for i, s := range list {
		out[i] = strings.Split(s, "_")
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}()

// dotted guesses the dotted path of an underscore path by joining the
// words of known compound identifiers ("transformer_blocks_0_attn1_to_out_0"
// → "transformer_blocks.0.attn1.to_out.0"). Apply does not rely on it.
func dotted(under string) string {
	words := strings.Split(under, "_")
	var parts []string
	for i := 0; i < len(words); {
		n := 1
		for _, c := range compounds {
			if i+len(c) <= len(words) && equalWords(words[i:i+len(c)], c) {
				n = len(c)
				break
			}
		}
		parts = append(parts, strings.Join(words[i:i+n], "_"))
		i += n
	}
	return strings.Join(parts, ".")
}

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// canonicalGuess is the Module.Name Read gives a kohya module name.
func canonicalGuess(path, kohya string) (string, error) {
	switch {
	case strings.HasPrefix(kohya, prefixUNet):
		return UNet + "." + dotted(kohya[len(prefixUNet):]), nil
	case strings.HasPrefix(kohya, prefixText):
		return TextEncoder + "." + dotted(kohya[len(prefixText):]), nil
	case strings.HasPrefix(kohya, "lora_te1_"), strings.HasPrefix(kohya, "lora_te2_"):
		return "", fmt.Errorf("%s: module %s is for SDXL's text encoders; SDXL LoRAs are not supported", base(path), kohya)
	}
	return "", fmt.Errorf("%s: unknown module %s (kohya LoRA modules start with lora_unet_ or lora_te_)", base(path), kohya)
}

func base(path string) string {
	if path == "" {
		return "LoRA"
	}
	return filepath.Base(path)
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// check validates one module's shapes and values' lengths. what names it
// in errors.
func (m *Module) check(what string) error {
	ds, us := m.DownShape, m.UpShape
	switch {
	case len(ds) != 2 && len(ds) != 4:
		return fmt.Errorf("%s: lora_down has shape %v; want [rank, in] or [rank, in, kh, kw]", what, ds)
	case len(us) != 2 && len(us) != 4:
		return fmt.Errorf("%s: lora_up has shape %v; want [out, rank] or [out, rank, 1, 1]", what, us)
	case len(us) == 4 && (us[2] != 1 || us[3] != 1):
		return fmt.Errorf("%s: lora_up has shape %v; a convolution's up must be [out, rank, 1, 1]", what, us)
	case ds[0] != us[1]:
		return fmt.Errorf("%s: lora_down %v and lora_up %v disagree on the rank (%d and %d)", what, ds, us, ds[0], us[1])
	}
	for _, d := range append(append([]int(nil), ds...), us...) {
		if d <= 0 {
			return fmt.Errorf("%s: lora_down %v and lora_up %v must have positive extents", what, ds, us)
		}
	}
	if len(m.Down) != numel(ds) || len(m.Up) != numel(us) {
		return fmt.Errorf("%s: %d down and %d up values for shapes %v and %v", what, len(m.Down), len(m.Up), ds, us)
	}
	if math.IsNaN(float64(m.Alpha)) || math.IsInf(float64(m.Alpha), 0) {
		return fmt.Errorf("%s: alpha is %v", what, m.Alpha)
	}
	return nil
}

// Read reads a kohya LoRA file. Errors name the file and the problem: not
// a safetensors file, not a LoRA, a module without its up or down half,
// down and up disagreeing on the rank, a module of an unknown component
// or an unsupported kind (LyCORIS LoHa/LoKr, DoRA).
func Read(path string) (*File, error) {
	st, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	names := st.Names()
	if err := notALoRA(path, names); err != nil {
		return nil, err
	}
	type parts struct{ down, up, alpha string }
	mods := map[string]*parts{}
	var order []string
	for _, n := range names {
		var mod string
		p := &parts{}
		switch {
		case strings.HasSuffix(n, suffixDown):
			mod = n[:len(n)-len(suffixDown)]
			p.down = n
		case strings.HasSuffix(n, suffixUp):
			mod = n[:len(n)-len(suffixUp)]
			p.up = n
		case strings.HasSuffix(n, suffixAlpha):
			mod = n[:len(n)-len(suffixAlpha)]
			p.alpha = n
		default:
			return nil, fmt.Errorf("%s: tensor %s is not part of a kohya LoRA module (.lora_down.weight, .lora_up.weight, .alpha)%s",
				base(path), n, kindHint(n))
		}
		have, ok := mods[mod]
		if !ok {
			mods[mod] = p
			order = append(order, mod)
			continue
		}
		// safetensors names are unique, so each field is set once.
		if p.down != "" {
			have.down = p.down
		}
		if p.up != "" {
			have.up = p.up
		}
		if p.alpha != "" {
			have.alpha = p.alpha
		}
	}
	sort.Strings(order)
	f := &File{Metadata: map[string]string{}}
	for k, v := range st.Metadata() {
		f.Metadata[k] = v
	}
	seen := map[string]string{}
	for _, k := range order {
		p := mods[k]
		what := base(path) + ": module " + k
		switch {
		case p.down == "" && p.up == "":
			return nil, fmt.Errorf("%s has an alpha but no lora_down.weight and lora_up.weight", what)
		case p.up == "":
			return nil, fmt.Errorf("%s has lora_down.weight but no lora_up.weight", what)
		case p.down == "":
			return nil, fmt.Errorf("%s has lora_up.weight but no lora_down.weight", what)
		}
		name, err := canonicalGuess(path, k)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s: modules %s and %s name the same weight", base(path), prev, k)
		}
		seen[name] = k
		m := Module{Name: name}
		if m.Down, m.DownShape, err = readFloat(st, p.down); err != nil {
			return nil, err
		}
		if m.Up, m.UpShape, err = readFloat(st, p.up); err != nil {
			return nil, err
		}
		if len(m.DownShape) > 0 {
			m.Alpha = float32(m.DownShape[0]) // alpha missing: scale 1
		}
		if p.alpha != "" {
			a, shape, err := readFloat(st, p.alpha)
			if err != nil {
				return nil, err
			}
			if len(a) != 1 {
				return nil, fmt.Errorf("%s: alpha has shape %v; want a scalar", what, shape)
			}
			m.Alpha = a[0]
		}
		if err := m.check(what); err != nil {
			return nil, err
		}
		f.Modules = append(f.Modules, m)
	}
	return f, nil
}

func readFloat(st *safetensors.File, name string) ([]float32, []int, error) {
	info, _ := st.Info(name)
	v, err := st.Float32(name)
	if err != nil {
		return nil, nil, err
	}
	return v, append([]int(nil), info.Shape...), nil
}

// notALoRA says what a file without a single kohya LoRA tensor is.
func notALoRA(path string, names []string) error {
	for _, n := range names {
		if strings.HasPrefix(n, "lora_") && (strings.HasSuffix(n, suffixDown) || strings.HasSuffix(n, suffixUp)) {
			return nil
		}
	}
	what := "no lora_unet_*/lora_te_* .lora_down.weight tensors"
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "model.diffusion_model.") || strings.HasPrefix(n, "first_stage_model.") ||
			strings.HasPrefix(n, "down_blocks.") || strings.HasPrefix(n, "encoder.") || strings.HasPrefix(n, "text_model."):
			what = "it holds model weights (" + n + ")"
		case strings.Contains(n, ".lora_A.") || strings.Contains(n, ".lora.down.") || strings.Contains(n, ".lora_linear_layer."):
			what = "it is a diffusers/PEFT LoRA (" + n + "); only the kohya/A1111 format is supported"
		default:
			continue
		}
		break
	}
	if len(names) == 0 {
		what = "it holds no tensors"
	}
	return fmt.Errorf("%s: not a kohya LoRA file: %s", base(path), what)
}

// kindHint names a LyCORIS module kind that this package does not apply.
func kindHint(n string) string {
	switch {
	case strings.Contains(n, ".hada_"):
		return "; LyCORIS LoHa modules are not supported"
	case strings.Contains(n, ".lokr_"):
		return "; LyCORIS LoKr modules are not supported"
	case strings.Contains(n, ".lora_mid."):
		return "; LoCon modules with a Tucker mid tensor are not supported"
	case strings.HasSuffix(n, ".dora_scale"):
		return "; DoRA modules are not supported"
	}
	return ""
}

// Write stores f at path in kohya's naming with F32 tensors (what the
// trainer computed is what Read gives back, bit for bit; halve the size
// with a converter if wanted), alpha as an F32 scalar, and f.Metadata in
// the header. It writes a temporary file and renames it, and refuses to
// overwrite an existing file.
func Write(path string, f *File) error {
	var tensors []safetensors.NamedTensor
	seen := map[string]string{}
	for i := range f.Modules {
		m := &f.Modules[i]
		k := KohyaName(m.Name)
		what := fmt.Sprintf("%s: module %s", base(path), m.Name)
		if !strings.HasPrefix(k, prefixUNet) && !strings.HasPrefix(k, prefixText) {
			return fmt.Errorf("%s: the name must start with %q or %q", what, UNet+".", TextEncoder+".")
		}
		if prev, dup := seen[k]; dup {
			return fmt.Errorf("%s: same kohya name %s as module %s", what, k, prev)
		}
		seen[k] = m.Name
		if err := m.check(what); err != nil {
			return err
		}
		tensors = append(tensors,
			safetensors.F32Tensor(k+suffixDown, m.DownShape, m.Down),
			safetensors.F32Tensor(k+suffixUp, m.UpShape, m.Up),
			safetensors.F32Tensor(k+suffixAlpha, []int{}, []float32{m.Alpha}))
	}
	if len(tensors) == 0 {
		return fmt.Errorf("%s: a LoRA needs at least one module", base(path))
	}
	return safetensors.Write(path, tensors, f.Metadata)
}

// Hash is the SHA-256, in hex, of a safetensors file's data after its
// header: the "addnet" hash that AUTOMATIC1111 and kohya's tools record
// for LoRAs (A1111's "Lora hashes" show its first 12 digits). Metadata
// edits leave it unchanged.
func Hash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", base(path), unwrapPath(err))
	}
	defer f.Close()
	var n [8]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		return "", fmt.Errorf("%s: too short for a safetensors file", base(path))
	}
	off := binary.LittleEndian.Uint64(n[:])
	if off > math.MaxInt64-8 {
		return "", fmt.Errorf("%s: header length %d is impossible", base(path), off)
	}
	if _, err := f.Seek(int64(off)+8, io.SeekStart); err != nil {
		return "", fmt.Errorf("%s: %w", base(path), err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: reading: %w", base(path), unwrapPath(err))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
