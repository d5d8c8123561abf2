package rng

import "glimmer/engine/internal/f32"

// Float32 arithmetic helpers. Go may fuse x*y+z into one FMA on some
// architectures (the spec allows it; arm64 does it); an explicit float32
// conversion forbids that, so every product that feeds a sum is written
// mul32(x, y) to round it exactly where the C code being reproduced rounds.

func mul32(a, b float32) float32 { return float32(a * b) }

// fma32 is a*b+c rounded once, as x86's VFMADD (see f32.FMA).
func fma32(a, b, c float32) float32 { return f32.FMA(a, b, c) }

func sqrt32(x float32) float32 { return f32.Sqrt(x) }
