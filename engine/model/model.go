// Package model opens Stable Diffusion models — a single .safetensors or
// .ckpt file in the original LDM naming, or a diffusers folder — and
// presents their tensors under one canonical naming, the diffusers names
// prefixed by component:
//
//	unet/time_embedding.linear_1.weight
//	vae/decoder.mid_block.attentions.0.to_q.weight
//	text_encoder/text_model.encoder.layers.0.self_attn.q_proj.weight
//
// with the diffusers shapes (the LDM VAE's 1x1-conv attention weights are
// presented as the Linear [C, C] they are). Opening reads headers only;
// tensor data is read, or paged in from a memory map, when asked for.
//
// The model family and every hyper-parameter are derived from the tensors
// (and from the config files of a diffusers folder) into a Config, and
// the tensors are checked against the full list that Config implies
// (Config.Expected): a model that opens is complete and every tensor has
// the shape its network needs.
package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"glimmer/engine"
	"glimmer/engine/internal/regular"
	"glimmer/engine/safetensors"
)

// Options adjust Open.
type Options struct {
	// Prediction overrides the prediction type ("" keeps the scheduler
	// config's, or for single files the v_pred marker or epsilon).
	Prediction Prediction
	// PreferFP16 picks a diffusers folder's .fp16 weight files over the
	// full-precision ones when both exist.
	PreferFP16 bool
}

// TensorInfo describes one canonical tensor.
type TensorInfo struct {
	Name   string       // canonical, "unet/conv_in.weight"
	Shape  engine.Shape // canonical (diffusers) shape
	Stored safetensors.DType
	// DType is what Raw returns: F16 for F16 tensors, F32 for F32, BF16
	// and F64 (converted).
	DType engine.DType
	File  string // the file it is read from
	Key   string // its name in that file
}

// Data is a tensor's values as bytes.
type Data struct {
	DType engine.DType // F16 or F32
	Shape engine.Shape
	// Bytes holds the elements little-endian, row-major. It may alias the
	// file's memory map: never modify it, and do not use it after Close.
	Bytes []byte
}

type entry struct {
	info   TensorInfo
	src    source
	lo, hi int64 // byte range in the stored tensor
}

// Model is an opened model. Its read methods are safe for concurrent use.
type Model struct {
	Path   string
	Layout Layout
	// Format is the files' format: "safetensors" or "ckpt"; "mixed" when
	// a diffusers folder has both.
	Format string
	Config Config
	// Ignored are stored tensors deliberately left out (noise-schedule
	// buffers, EMA weights, SD2's unused last text layer, ...).
	Ignored []Ignored
	// Unexpected are stored tensors that are not part of the model as
	// understood. They are kept out of the canonical set.
	Unexpected []string
	// Files lists the weight files read, per component for diffusers.
	Files []string
	// Notes are remarks for the user (which variant was picked, ...).
	Notes []string

	entries  map[string]*entry
	names    []string
	sources  []source
	badDType map[string]string // canonical name → error, for non-float tensors
}

// Open opens the model at path: a .safetensors/.ckpt/.pt file or a
// diffusers folder. Errors name the file and what is wrong.
func Open(path string, opts Options) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file or folder", path)
		}
		return nil, fmt.Errorf("%s: %v", path, unwrapPathError(err))
	}
	var m *Model
	if err := regular.Check(path); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if st.IsDir() {
		m, err = openDiffusers(path, opts)
	} else {
		m, err = openSingle(path, opts)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func base(path string) string { return filepath.Base(path) }

func openSingle(path string, opts Options) (*Model, error) {
	src, err := openFile(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Path: path, Layout: SingleFile, Files: []string{path}, entries: map[string]*entry{}, sources: []source{src}}
	if _, ok := src.(ckptSource); ok {
		m.Format = "ckpt"
	} else {
		m.Format = "safetensors"
	}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	keys := src.Names()
	if what := foreignKeys(keys); what != "" {
		return nil, &UnsupportedError{Path: path, What: what}
	}
	mp := mapLDM(keys)
	if len(mp.bindings) == 0 {
		if what := notAModel(keys); what != "" {
			return nil, &UnsupportedError{Path: path, What: what}
		}
		s := "s"
		if len(keys) == 1 {
			s = ""
		}
		return nil, fmt.Errorf("%s: no Stable Diffusion tensors found (%d tensor%s, e.g. %s)", base(path), len(keys), s, someKeys(keys))
	}
	m.Ignored, m.Unexpected = mp.ignored, mp.unexpected
	for _, part := range []struct{ prefix, what, keys string }{
		{"unet/", "U-Net", ldmUNet + "*"}, {"vae/", "VAE", ldmVAE + "*"}, {"text_encoder/", "text encoder", "cond_stage_model.*"},
	} {
		found := false
		for _, b := range mp.bindings {
			if strings.HasPrefix(b.canon, part.prefix) {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: the file has no %s (no %s tensors); a complete SD 1.x/2.x checkpoint has one", base(path), part.what, part.keys)
		}
	}
	for _, b := range mp.bindings {
		if err := m.add(src, b); err != nil {
			return nil, err
		}
	}
	sh := m.shapes()
	// The text tower tells the family: transformers' CLIP ViT-L is SD 1.x,
	// OpenCLIP ViT-H is SD 2.x.
	family := SD1
	if mp.textLayout == "openclip" {
		family = SD2
	}
	cfg := Config{Family: family, Schedule: defaultSchedule(), Tokenizer: defaultTokenizer(family)}
	if cfg.UNet, err = deriveUNet(sh); err != nil {
		return nil, fmt.Errorf("%s: %v", base(path), err)
	}
	if err := familyHeads(family, &cfg.UNet); err != nil {
		return nil, fmt.Errorf("%s: %v", base(path), err)
	}
	if cfg.VAE, err = deriveVAE(sh); err != nil {
		return nil, fmt.Errorf("%s: %v", base(path), err)
	}
	if cfg.Text, err = deriveText(sh, family); err != nil {
		return nil, fmt.Errorf("%s: %v", base(path), err)
	}
	cfg.Prediction, cfg.PredictionSource = Epsilon, "default for single-file checkpoints"
	for _, ig := range mp.ignored {
		if ig.Key == "v_pred" {
			cfg.Prediction, cfg.PredictionSource = VPrediction, "the file's v_pred marker"
		}
	}
	if opts.Prediction != "" {
		cfg.Prediction, cfg.PredictionSource = opts.Prediction, "override"
	}
	m.Config = cfg
	if err := m.validate(); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

func someKeys(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	s := keys[:min(3, len(keys))]
	return strings.Join(s, ", ")
}

// add registers one canonical tensor bound to a stored one.
func (m *Model) add(src source, b binding) error {
	dt, shape, ok := src.info(b.key)
	if !ok {
		return fmt.Errorf("%s: tensor %s listed but not found", base(src.Path()), b.key)
	}
	if _, dup := m.entries[b.canon]; dup {
		return fmt.Errorf("%s: two tensors map to %s (the second is %s)", base(src.Path()), b.canon, b.key)
	}
	if !dt.IsFloat() {
		// Not a weight; reported as unexpected, or as the wrong type if a
		// network needs it (validate).
		m.Unexpected = append(m.Unexpected, b.key)
		if m.badDType == nil {
			m.badDType = map[string]string{}
		}
		m.badDType[b.canon] = fmt.Sprintf("%s: tensor %s is %s; weights must be F16, BF16, F32 or F64", base(src.Path()), b.key, dt)
		return nil
	}
	n := int64(dt.Size())
	for _, d := range shape {
		n *= int64(d)
	}
	canon, err := canonicalShape(b, shape)
	if err != nil {
		return fmt.Errorf("%s: tensor %s %v", base(src.Path()), b.key, err)
	}
	e := &entry{src: src, lo: 0, hi: n}
	if b.parts > 0 {
		part := n / int64(b.parts)
		e.lo, e.hi = int64(b.part)*part, int64(b.part+1)*part
	}
	e.info = TensorInfo{Name: b.canon, Shape: canon, Stored: dt, DType: engine.F32, File: src.Path(), Key: b.key}
	if dt == safetensors.F16 {
		e.info.DType = engine.F16
	}
	m.entries[b.canon] = e
	m.names = append(m.names, b.canon)
	return nil
}

// canonicalShape is the shape a binding presents a stored tensor as: one
// row block of a fused tensor, or a 1x1 convolution squeezed to a Linear.
func canonicalShape(b binding, stored []int) (engine.Shape, error) {
	canon := engine.Shape(append([]int(nil), stored...))
	if b.parts > 0 {
		if len(canon) == 0 || canon[0]%b.parts != 0 {
			return nil, fmt.Errorf("has shape %v, which does not split into %d equal parts", canon, b.parts)
		}
		canon[0] /= b.parts
	}
	if b.squeeze && len(canon) == 4 && canon[2] == 1 && canon[3] == 1 {
		canon = canon[:2]
	}
	return canon, nil
}

func (m *Model) shapes() shapes {
	s := make(shapes, len(m.entries))
	for n, e := range m.entries {
		s[n] = e.info.Shape
	}
	return s
}

// validate checks the tensors against the full list the Config implies:
// nothing missing, every shape right. Canonical tensors outside the list
// move to Unexpected.
func (m *Model) validate() error {
	want := m.Config.Expected()
	var missing []string
	expected := make(map[string]bool, len(want))
	for _, w := range want {
		expected[w.Name] = true
		e, ok := m.entries[w.Name]
		if !ok {
			if msg, bad := m.badDType[w.Name]; bad {
				return errors.New(msg)
			}
			missing = append(missing, w.Name)
			continue
		}
		if !e.info.Shape.Equal(w.Shape) {
			return fmt.Errorf("%s: tensor %s (%s) has shape %v, want %v for this %s", base(e.src.Path()), e.info.Key, w.Name, e.info.Shape, w.Shape, componentTitle(w.Name))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %d tensor%s missing, e.g. %s", base(m.Path), len(missing), plural(len(missing)), strings.Join(missing[:min(3, len(missing))], ", "))
	}
	kept := m.names[:0]
	for _, n := range m.names {
		if expected[n] {
			kept = append(kept, n)
			continue
		}
		m.Unexpected = append(m.Unexpected, m.entries[n].info.Key)
		delete(m.entries, n)
	}
	m.names = kept
	sort.Strings(m.names)
	sort.Strings(m.Unexpected)
	return nil
}

func plural(n int) string {
	if n == 1 {
		return " is"
	}
	return "s are"
}

func componentTitle(name string) string {
	switch {
	case strings.HasPrefix(name, "unet/"):
		return "U-Net"
	case strings.HasPrefix(name, "vae/"):
		return "VAE"
	}
	return "text encoder"
}

// Names lists the canonical tensor names, sorted.
func (m *Model) Names() []string { return append([]string(nil), m.names...) }

// Len is the number of canonical tensors.
func (m *Model) Len() int { return len(m.names) }

// Info describes a canonical tensor.
func (m *Model) Info(name string) (TensorInfo, bool) {
	e, ok := m.entries[name]
	if !ok {
		return TensorInfo{}, false
	}
	ti := e.info
	ti.Shape = ti.Shape.Clone()
	return ti, true
}

// Raw returns a tensor's bytes: F16 tensors as stored (2 bytes per
// element), everything else as F32 (BF16 and F64 converted). For F16 and
// F32 tensors the bytes may alias the file's memory map (see Data).
func (m *Model) Raw(name string) (Data, error) {
	e, ok := m.entries[name]
	if !ok {
		return Data{}, fmt.Errorf("%s: no tensor %s", base(m.Path), name)
	}
	b, err := e.src.ReadRange(e.info.Key, e.lo, e.hi)
	if err != nil {
		return Data{}, err
	}
	d := Data{DType: e.info.DType, Shape: e.info.Shape.Clone(), Bytes: b}
	switch e.info.Stored {
	case safetensors.F16, safetensors.F32:
		return d, nil
	}
	f, err := safetensors.ToFloat32(e.info.Stored, b)
	if err != nil {
		return Data{}, fmt.Errorf("%s: tensor %s: %v", base(e.src.Path()), e.info.Key, err)
	}
	d.Bytes = make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(d.Bytes[4*i:], math.Float32bits(v))
	}
	return d, nil
}

// Float32 returns a tensor's values as a new []float32 the caller owns.
func (m *Model) Float32(name string) ([]float32, error) {
	e, ok := m.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %s", base(m.Path), name)
	}
	b, err := e.src.ReadRange(e.info.Key, e.lo, e.hi)
	if err != nil {
		return nil, err
	}
	f, err := safetensors.ToFloat32(e.info.Stored, b)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %s: %v", base(e.src.Path()), e.info.Key, err)
	}
	return f, nil
}

// Weights is one component's view: names without the component prefix.
type Weights struct {
	m      *Model
	prefix string
}

// Component returns the view of "unet", "vae" or "text_encoder".
func (m *Model) Component(name string) Weights { return Weights{m: m, prefix: name + "/"} }

// Sub narrows the view to one module: Component("unet").Sub("mid_block")
// reads "resnets.0.conv1.weight" as unet/mid_block.resnets.0.conv1.weight.
func (w Weights) Sub(module string) Weights {
	return Weights{m: w.m, prefix: w.prefix + module + "."}
}

// Prefix is the canonical-name prefix the view adds ("unet/mid_block.").
func (w Weights) Prefix() string { return w.prefix }

// Names lists the component's tensors, without the prefix.
func (w Weights) Names() []string {
	var out []string
	for _, n := range w.m.names {
		if rest, ok := strings.CutPrefix(n, w.prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// Info describes a tensor of the component ("conv_in.weight").
func (w Weights) Info(name string) (TensorInfo, bool) { return w.m.Info(w.prefix + name) }

// Raw returns a tensor's bytes; see Model.Raw.
func (w Weights) Raw(name string) (Data, error) { return w.m.Raw(w.prefix + name) }

// Float32 returns a tensor's values; see Model.Float32.
func (w Weights) Float32(name string) ([]float32, error) { return w.m.Float32(w.prefix + name) }

// ComponentStats summarises one component.
type ComponentStats struct {
	Name    string
	Tensors int
	Params  int64
	DTypes  map[safetensors.DType]int // stored dtype → tensor count
	Bytes   int64                     // stored bytes
}

// Stats summarises each component, in Components order.
func (m *Model) Stats() []ComponentStats {
	var out []ComponentStats
	for _, c := range Components {
		cs := ComponentStats{Name: c, DTypes: map[safetensors.DType]int{}}
		for _, n := range m.names {
			if !strings.HasPrefix(n, c+"/") {
				continue
			}
			e := m.entries[n]
			cs.Tensors++
			numel := int64(e.info.Shape.Numel())
			cs.Params += numel
			cs.DTypes[e.info.Stored]++
			cs.Bytes += numel * int64(e.info.Stored.Size())
		}
		out = append(out, cs)
	}
	return out
}

// Close releases the files. Data slices aliasing memory maps become
// invalid.
func (m *Model) Close() error {
	var err error
	for _, s := range m.sources {
		if e := s.Close(); err == nil {
			err = e
		}
	}
	m.sources = nil
	return err
}
