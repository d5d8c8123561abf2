package nn

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/x448/float16"

	"glimmer/engine"
	"glimmer/engine/model"
)

// toFloat32 decodes a tensor's bytes (F16 or F32, little-endian).
func toFloat32(d model.Data) []float32 {
	n := d.Shape.Numel()
	out := make([]float32, n)
	if d.DType == engine.F16 {
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(d.Bytes[2*i:])).Float32()
		}
		return out
	}
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d.Bytes[4*i:]))
	}
	return out
}

// Float32 decodes a tensor's values on the host (embedding tables).
func Float32(d model.Data) []float32 { return toFloat32(d) }

// transposed returns the [cols, rows] transpose of src, a row-major
// [rows, cols] matrix.
func transposed[T any](src []T, rows, cols int) []T {
	dst := make([]T, len(src))
	const tile = 32 // blocks of 32x32 keep both sides in cache
	for r0 := 0; r0 < rows; r0 += tile {
		for c0 := 0; c0 < cols; c0 += tile {
			for r := r0; r < min(r0+tile, rows); r++ {
				for c := c0; c < min(c0+tile, cols); c++ {
					dst[c*rows+r] = src[r*cols+c]
				}
			}
		}
	}
	return dst
}

// transposedBytes is transposed for a matrix of size-byte elements held
// as raw bytes (2: F16, 4: F32).
func transposedBytes(src []byte, rows, cols, size int) []byte {
	n := rows * cols
	switch size {
	case 2:
		v := transposed(unsafe.Slice((*[2]byte)(unsafe.Pointer(unsafe.SliceData(src))), n), rows, cols)
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 2*n)
	case 4:
		v := transposed(unsafe.Slice((*[4]byte)(unsafe.Pointer(unsafe.SliceData(src))), n), rows, cols)
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*n)
	}
	panic(fmt.Sprintf("nn: no transpose for %d-byte elements", size))
}
