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
	bytes   int64
	f32     bool
}

// NewLoader reads weights from src onto b. With f32 every weight is
// widened to F32 on upload; otherwise F16 weights stay F16 (the ops do
// their math in float32 either way).
func NewLoader(b engine.Backend, src Source, f32 bool) *Loader {
	return &Loader{B: b, src: src, st: &loadState{f32: f32}}
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

// Has reports whether the source holds the named tensor.
func (l *Loader) Has(name string) bool {
	_, err := l.src.Raw(l.join(name))
	return err == nil
}

// Tensor uploads the named weight, checking it has the given shape. After
// an error it returns nil and records the error.
func (l *Loader) Tensor(name string, shape ...int) *engine.Tensor {
	if l.st.err != nil {
		return nil
	}
	full := l.join(name)
	d, err := l.src.Raw(full)
	if err != nil {
		l.st.err = err
		return nil
	}
	if !d.Shape.Equal(shape) {
		l.st.err = fmt.Errorf("tensor %s has shape %v, want %v", full, d.Shape, engine.Shape(shape))
		return nil
	}
	dtype := d.DType
	if l.st.f32 {
		dtype = engine.F32
	}
	t := l.B.New(dtype, shape...)
	switch {
	case d.DType == dtype:
		l.B.WriteRaw(t, d.Bytes)
	default:
		l.B.Write(t, toFloat32(d))
	}
	l.st.tensors = append(l.st.tensors, t)
	l.st.bytes += int64(t.Numel() * dtype.Size())
	return t
}

// Free releases every tensor the loader uploaded.
func (l *Loader) Free() {
	for _, t := range l.st.tensors {
		l.B.Free(t)
	}
	l.st.tensors = nil
}
