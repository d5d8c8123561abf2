package nn

import (
	"encoding/binary"
	"math"

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
