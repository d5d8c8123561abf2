package gl_test

import (
	"testing"

	"glimmer/engine"
	"glimmer/engine/conformance"
	"glimmer/engine/gl"
)

// newBackend opens the GL backend or fails the test: a machine running
// these tests must have OpenGL 4.3 (CI has Mesa llvmpipe); skipping would
// hide a broken backend.
func newBackend(tb testing.TB) func() engine.Backend {
	return func() engine.Backend {
		b, err := gl.New()
		if err != nil {
			tb.Fatalf("OpenGL backend: %v", err)
		}
		return b
	}
}

// TestConformance holds every op's shader to the float64 reference.
func TestConformance(t *testing.T) { conformance.Run(t, newBackend(t)) }

// BenchmarkOps times every op at an SD-like size (GLIMMER_BENCH_BIG=1 adds
// a 4096³ MatMul).
func BenchmarkOps(b *testing.B) { conformance.Bench(b, newBackend(b)) }
