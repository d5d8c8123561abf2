// Package f32 holds float32 arithmetic that rounds exactly where C code
// compiled for x86 rounds, for reproducing torch's and numpy's float32
// results bit for bit (engine/rng, engine/sample).
package f32

import "math"

// FMA returns a*b+c rounded once to float32 (round to nearest, ties to
// even), like the x86 VFMADD instructions. The product of two float32
// values is exact in float64; the float64 sum may round, so its rounding
// error is recovered (TwoSum) and used where the float64 sum lands exactly
// on a float32 rounding boundary, the only case where rounding twice
// differs from rounding once. Inputs and results are assumed finite.
func FMA(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	cc := float64(c)
	s := p + cc
	bv := s - p
	e := (p - (s - bv)) + (cc - bv) // s + e == p + c exactly
	r := float32(s)
	if e == 0 || float64(r) == s {
		return r
	}
	var lo, hi float32
	if float64(r) > s {
		lo, hi = math.Nextafter32(r, float32(math.Inf(-1))), r
	} else {
		lo, hi = r, math.Nextafter32(r, float32(math.Inf(1)))
	}
	if mid := (float64(lo) + float64(hi)) / 2; s != mid {
		return r
	}
	if e > 0 {
		return hi
	}
	return lo
}

// Sqrt is the correctly rounded float32 square root.
func Sqrt(x float32) float32 { return float32(math.Sqrt(float64(x))) }
