// Package nn holds the layers the networks are built from — Linear,
// Conv2d, GroupNorm, LayerNorm — with their weights bound by checkpoint
// name, and a Pool that recycles activation buffers between passes.
//
// Construction reads weights through a Loader, which remembers the first
// error (a missing tensor, a wrong shape) so model code reads like the
// paper: one line per layer, one error check at the end.
package nn

import (
	"fmt"

	"glimmer/engine"
	"glimmer/engine/model"
)

// Source gives named tensors: model.Weights, or a single-file adapter.
type Source interface {
	Raw(name string) (model.Data, error)
}

// Loader uploads named weights to a backend. Names are joined to the
// loader's prefix with a dot, as in checkpoints.
type Loader struct {
	B      engine.Backend
	src    Source
	prefix string
	st     *loadState
}

type loadState struct {
	err     error
	tensors []*engine.Tensor
	names   []string // full name of each tensor
	bytes   int64
	f32     bool
	linT    bool                                            // Linear weights stored [In, Out] (TransposeLinears)
	init    func(name string, shape engine.Shape) []float32 // NewInitLoader
}

// NewLoader reads weights from src onto b. With f32 every weight is
// widened to F32 on upload; otherwise F16 weights stay F16 (the ops do
// their math in float32 either way).
func NewLoader(b engine.Backend, src Source, f32 bool) *Loader {
	return &Loader{B: b, src: src, st: &loadState{f32: f32}}
}

// NewInitLoader makes F32 weights from scratch instead of reading them:
// init returns the values of each named tensor of the given shape (a
// network is built once to learn its tensors, then trained).
func NewInitLoader(b engine.Backend, init func(name string, shape engine.Shape) []float32) *Loader {
	return &Loader{B: b, st: &loadState{f32: true, init: init}}
}

// Sub returns a loader for the names under prefix.name.
func (l *Loader) Sub(name string) *Loader {
	return &Loader{B: l.B, src: l.src, prefix: l.join(name), st: l.st}
}

// Subf is Sub with a formatted name: l.Subf("down_blocks.%d", i).
func (l *Loader) Subf(format string, args ...any) *Loader {
	return l.Sub(fmt.Sprintf(format, args...))
}

func (l *Loader) join(name string) string {
	if l.prefix == "" {
		return name
	}
	return l.prefix + "." + name
}

// Err is the first error met while loading.
func (l *Loader) Err() error { return l.st.err }

// Bytes is the device memory the loaded weights take.
func (l *Loader) Bytes() int64 { return l.st.bytes }

// Tensors lists every tensor uploaded through this loader or its subs.
func (l *Loader) Tensors() []*engine.Tensor { return l.st.tensors }

// Names lists the full checkpoint name of each tensor in Tensors.
func (l *Loader) Names() []string { return l.st.names }

// TransposeLinears makes the Linear layers bound through this loader and
// its subs hold their weights transposed on the device, [In, Out]
// (Linear.Transposed): the GL backend's products read a weight faster
// along Out than along In. For inference: training and LoRA code expect
// the checkpoint's [Out, In].
func (l *Loader) TransposeLinears() { l.st.linT = true }

// TransposesLinears reports whether TransposeLinears was called (on this
// loader or the one it is a Sub of): inference.
func (l *Loader) TransposesLinears() bool { return l.st.linT }

// Tensor uploads the named weight, checking it has the given shape. After
// an error it returns nil and records the error.
func (l *Loader) Tensor(name string, shape ...int) *engine.Tensor {
	return l.tensor(name, shape, layout{})
}

// layout is how a weight's device copy differs from the checkpoint's.
type layout struct {
	transpose bool // a matrix [R, C] held as its transpose [C, R]
	pair      bool // the last axis's halves interleaved: j of the first at 2j, of the second at 2j+1
}

// tensor is Tensor, with the device copy laid out as lay says.
func (l *Loader) tensor(name string, shape []int, lay layout) *engine.Tensor {
	dtype, dev, raw, ok := l.host(name, shape, lay)
	if !ok {
		return nil
	}
	t := l.B.New(dtype, dev...) // dev
	l.B.WriteRaw(t, raw)
	l.record(l.join(name), t)
	return t
}

// host reads the named weight, checks its shape, and lays it out on the
// host as its device copy will be: its dtype, shape and bytes. After an
// error it records it and returns !ok.
func (l *Loader) host(name string, shape []int, lay layout) (dtype engine.DType, dev []int, raw []byte, ok bool) {
	if l.st.err != nil {
		return 0, nil, nil, false
	}
	full := l.join(name)
	dev = shape
	if lay.transpose {
		dev = []int{shape[1], shape[0]}
	}
	rows, cols := 0, 0 // pair: the device tensor as rows x cols
	if lay.pair {
		cols = dev[len(dev)-1]
		if cols%2 != 0 {
			l.st.err = fmt.Errorf("tensor %s: %d columns do not pair", full, cols)
			return 0, nil, nil, false
		}
		rows = engine.Shape(dev).Numel() / cols
	}
	// arrange lays out values read as float32 (init, or F16 widened).
	arrange := func(v []float32) []byte {
		if lay.transpose {
			v = transposed(v, shape[0], shape[1])
		}
		if lay.pair {
			v = interleavedHalves(v, rows, cols)
		}
		return float32Bytes(v)
	}
	if l.st.init != nil {
		return engine.F32, dev, arrange(l.st.init(full, shape)), true
	}
	d, err := l.src.Raw(full)
	if err != nil {
		l.st.err = err
		return 0, nil, nil, false
	}
	if !d.Shape.Equal(shape) {
		l.st.err = fmt.Errorf("tensor %s has shape %v, want %v", full, d.Shape, engine.Shape(shape))
		return 0, nil, nil, false
	}
	if l.st.f32 && d.DType != engine.F32 {
		return engine.F32, dev, arrange(toFloat32(d)), true
	}
	raw = d.Bytes
	if lay.transpose {
		raw = transposedBytes(raw, shape[0], shape[1], d.DType.Size())
	}
	if lay.pair {
		raw = interleavedHalvesBytes(raw, rows, cols, d.DType.Size())
	}
	return d.DType, dev, raw, true
}

func (l *Loader) record(name string, t *engine.Tensor) {
	l.st.tensors = append(l.st.tensors, t)
	l.st.names = append(l.st.names, name)
	l.st.bytes += int64(t.Bytes())
}

// Free releases every tensor the loader uploaded.
func (l *Loader) Free() {
	for _, t := range l.st.tensors {
		l.B.Free(t)
	}
	l.st.tensors = nil
}
