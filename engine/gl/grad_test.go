package gl_test

import (
	"testing"

	"glimmer/engine"
	"glimmer/engine/conformance"
	"glimmer/engine/gl"
)

// TestGradConformance holds every backward shader to the float64
// reference. Like TestConformance, a machine without OpenGL 4.3 fails
// here rather than skipping.
func TestGradConformance(t *testing.T) {
	conformance.RunGrad(t, func() engine.TrainBackend {
		b, err := gl.New()
		if err != nil {
			t.Fatalf("OpenGL backend: %v", err)
		}
		return b
	})
}
