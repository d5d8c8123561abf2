package engine

import (
	"fmt"
	"strings"
)

// DType is the storage type of a tensor's elements.
type DType uint8

const (
	F32 DType = iota // IEEE-754 binary32
	F16              // IEEE-754 binary16, storage only: math is done in F32
)

// Size is the number of bytes one element occupies.
func (d DType) Size() int {
	if d == F16 {
		return 2
	}
	return 4
}

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Shape lists a tensor's extents, outermost first.
type Shape []int

// Numel is the number of elements, the product of the extents.
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Equal reports whether two shapes have the same extents.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy that does not alias s.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

// Last is the extent of the innermost axis (1 for a scalar).
func (s Shape) Last() int {
	if len(s) == 0 {
		return 1
	}
	return s[len(s)-1]
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Storage is a backend's memory behind a tensor. Each backend defines its
// own; the engine only asks how many bytes it holds.
type Storage interface {
	Bytes() int
}

// Tensor is a dense, contiguous n-d array owned by one backend.
// The zero Tensor is not usable; backends create tensors with New.
//
// A tensor's elements are the first Numel elements of its storage. The
// storage may hold more (a View onto a larger buffer, as activation pools
// hand out): backends read and write only that prefix, and Free releases
// the whole storage.
type Tensor struct {
	shape   Shape
	dtype   DType
	storage Storage
}

// NewTensor wraps a backend's storage. Backends call it; users call
// Backend.New.
func NewTensor(shape Shape, dtype DType, s Storage) *Tensor {
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("engine: negative extent in shape %v", shape))
		}
	}
	return &Tensor{shape: shape.Clone(), dtype: dtype, storage: s}
}

func (t *Tensor) Shape() Shape         { return t.shape }
func (t *Tensor) DType() DType         { return t.dtype }
func (t *Tensor) Numel() int           { return t.shape.Numel() }
func (t *Tensor) Storage() Storage     { return t.storage }
func (t *Tensor) Dim(i int) int        { return t.shape[i] }
func (t *Tensor) Rank() int            { return len(t.shape) }
func (t *Tensor) String() string       { return fmt.Sprintf("Tensor%v %v", t.shape, t.dtype) }
func (t *Tensor) SetStorage(s Storage) { t.storage = s }

// Bytes is what t's elements take in its dtype (its storage may hold
// more: word padding, or a View onto a larger buffer).
func (t *Tensor) Bytes() int { return t.Numel() * t.dtype.Size() }

// Cap is the number of elements t's storage can hold: Numel, or more when
// t is a View onto a larger buffer.
func (t *Tensor) Cap() int { return t.storage.Bytes() / t.dtype.Size() }

// View returns a tensor of the given shape over the first elements of t's
// storage, which must hold them all (Numel(shape) <= Cap). It shares
// storage with t, as Reshape does, but may be smaller: a pool reuses a
// buffer for any tensor that fits in it.
func (t *Tensor) View(shape ...int) *Tensor {
	s := Shape(shape)
	for _, d := range s {
		if d < 0 {
			panic(fmt.Sprintf("engine: negative extent in shape %v", s))
		}
	}
	if s.Numel() > t.Cap() {
		panic(fmt.Sprintf("engine: a view %v does not fit the %d elements of %v's storage", s, t.Cap(), t.shape))
	}
	return &Tensor{shape: s.Clone(), dtype: t.dtype, storage: t.storage}
}

// Reshape returns a view of t with another shape of the same element count.
// The view shares storage with t.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	s := Shape(shape)
	if s.Numel() != t.Numel() {
		panic(fmt.Sprintf("engine: cannot reshape %v to %v", t.shape, s))
	}
	return &Tensor{shape: s.Clone(), dtype: t.dtype, storage: t.storage}
}
