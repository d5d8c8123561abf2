// Package cpu is Glimmer's pure-Go backend: every engine op as plain Go
// loops, split over all cores. It is the fallback where OpenGL 4.3 compute
// is missing (macOS) and runs everywhere Go does, with no cgo.
//
// Tensors live in host memory as []float32. An F16 tensor holds float32
// values already rounded to half precision, so every op reads one element
// type. Ops run synchronously: when a call returns, dst holds the result.
package cpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/x448/float16"

	"glimmer/engine"
)

// Backend runs the engine's ops on the host CPU. Its zero value is not
// usable; call New.
type Backend struct {
	engine.MemCounter
	workers int // goroutines an op may split into
	minWork int // work below which an op stays on one goroutine
}

var (
	_ engine.Backend      = (*Backend)(nil)
	_ engine.Suballocator = (*Backend)(nil)
)

// New returns a CPU backend that uses runtime.GOMAXPROCS goroutines.
func New() *Backend {
	return &Backend{workers: max(runtime.GOMAXPROCS(0), 1), minWork: minParallelWork}
}

// Name reports the backend and its thread count.
func (be *Backend) Name() string {
	return fmt.Sprintf("cpu (%s/%s, %d threads)", runtime.GOOS, runtime.GOARCH, be.workers)
}

// Sync returns nil: CPU ops finish before they return.
func (be *Backend) Sync() error { return nil }

// Close frees nothing: tensors are garbage collected.
func (be *Backend) Close() error { return nil }

// storage is the CPU backend's engine.Storage: one float32 per element,
// whatever the tensor's dtype.
type storage struct {
	data []float32 // nil once freed
	sub  bool      // part of another's data (Sub): Free leaves it
}

// Bytes is the host memory the storage holds.
func (s *storage) Bytes() int { return 4 * len(s.data) }

var errFreed = errors.New("tensor was freed")

// New allocates a zeroed tensor.
func (be *Backend) New(dtype engine.DType, shape ...int) *engine.Tensor {
	if dtype != engine.F32 && dtype != engine.F16 {
		panic(fmt.Sprintf("cpu: New: unknown dtype %v", dtype))
	}
	n := engine.Shape(shape).Numel()
	be.Alloc(int64(4 * n))
	return engine.NewTensor(shape, dtype, &storage{data: make([]float32, n)})
}

// buf returns t's elements. It panics for a tensor of another backend or
// one already freed: both are programmer errors.
func buf(t *engine.Tensor) []float32 {
	s, ok := t.Storage().(*storage)
	if !ok {
		panic(fmt.Sprintf("cpu: %v does not belong to the CPU backend", t))
	}
	if s.data == nil && t.Numel() > 0 {
		panic(fmt.Sprintf("cpu: %v used after Free", t))
	}
	return s.data[:t.Numel()]
}

// Write copies src into t, rounding to half precision for F16.
func (be *Backend) Write(t *engine.Tensor, src []float32) {
	dst := buf(t)
	if len(src) != len(dst) {
		panic(fmt.Sprintf("cpu: Write of %d values into %v", len(src), t))
	}
	if t.DType() == engine.F16 {
		for i, v := range src {
			dst[i] = float16.Fromfloat32(v).Float32()
		}
		return
	}
	copy(dst, src)
}

// WriteRaw decodes little-endian F32 or F16 bytes into t.
func (be *Backend) WriteRaw(t *engine.Tensor, src []byte) {
	dst := buf(t)
	size := t.DType().Size()
	if len(src) != len(dst)*size {
		panic(fmt.Sprintf("cpu: WriteRaw of %d bytes into %v (want %d)", len(src), t, len(dst)*size))
	}
	if t.DType() == engine.F16 {
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(src[2*i:])).Float32()
		}
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// Read returns a copy of t's values.
func (be *Backend) Read(t *engine.Tensor) ([]float32, error) {
	s, ok := t.Storage().(*storage)
	if !ok {
		return nil, fmt.Errorf("cpu: read %v: not a CPU tensor", t)
	}
	if s.data == nil && t.Numel() > 0 {
		return nil, fmt.Errorf("cpu: read %v: %w", t, errFreed)
	}
	return append([]float32(nil), s.data[:t.Numel()]...), nil
}

// Sub returns a tensor of the dtype and shape over t's elements from off
// (engine.Suballocator). The backend holds every dtype as float32s, one
// an element, so a sub of any dtype spans its element count.
func (be *Backend) Sub(t *engine.Tensor, off int, dtype engine.DType, shape ...int) *engine.Tensor {
	s, ok := t.Storage().(*storage)
	n := engine.Shape(shape).Numel()
	if !ok || s.sub || t.DType() != engine.F32 || off < 0 || off+n > len(s.data) {
		panic(fmt.Sprintf("cpu: Sub %v %v at %d of %v", dtype, shape, off, t))
	}
	return engine.NewTensor(shape, dtype, &storage{data: s.data[off : off+n : off+n], sub: true})
}

// SubAlign is 1: any element may start a sub.
func (be *Backend) SubAlign() int { return 1 }

// SubSpan is n: one float32 an element, whatever the dtype.
func (be *Backend) SubSpan(dtype engine.DType, n int) int { return n }

// Free drops t's storage; t and its views must not be used afterwards.
// A Sub's storage belongs to the tensor it was cut from: Free leaves it.
func (be *Backend) Free(t *engine.Tensor) {
	if s, ok := t.Storage().(*storage); ok && s.data != nil && !s.sub {
		be.Release(int64(4 * len(s.data)))
		s.data = nil
	}
}
