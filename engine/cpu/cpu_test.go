package cpu_test

import (
	"testing"

	"glimmer/engine"
	"glimmer/engine/conformance"
	"glimmer/engine/cpu"
)

func newBackend() engine.Backend { return cpu.New() }

// TestConformance holds every op to the float64 reference.
func TestConformance(t *testing.T) { conformance.Run(t, newBackend) }

// TestGrad holds every backward op to the float64 reference.
func TestGrad(t *testing.T) {
	conformance.RunGrad(t, func() engine.TrainBackend { return cpu.New() })
}

// BenchmarkOps times every op at an SD-like size (GLIMMER_BENCH_BIG=1 adds
// a 4096³ MatMul).
func BenchmarkOps(b *testing.B) { conformance.Bench(b, newBackend) }

// BenchmarkGrad times every backward op at the sizes BenchmarkOps uses.
func BenchmarkGrad(b *testing.B) {
	conformance.BenchGrad(b, func() engine.TrainBackend { return cpu.New() })
}
