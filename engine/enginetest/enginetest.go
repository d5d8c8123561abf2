// Package enginetest is test support shared by the engine's packages: the
// backends every network and pipeline test runs on. Nothing in the program
// imports it.
package enginetest

import (
	"os"
	"testing"

	"glimmer/engine"
	"glimmer/engine/cpu"
	"glimmer/engine/gl"
)

// Backend is one backend a test runs on.
type Backend struct {
	Name string
	Open func(t testing.TB) engine.Backend
}

// Backends are the CPU backend and the OpenGL one.
func Backends() []Backend {
	return []Backend{
		{"cpu", func(testing.TB) engine.Backend { return cpu.New() }},
		{"gl", OpenGL},
	}
}

// OpenGL opens the GL backend. CI has Mesa llvmpipe, so under CI=true a
// GL that does not open fails the test; elsewhere (a machine with no
// OpenGL 4.3) the test is skipped with the reason.
func OpenGL(t testing.TB) engine.Backend {
	t.Helper()
	b, err := gl.New()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenGL backend: %v", err)
		}
		t.Skipf("OpenGL backend: %v", err)
	}
	return b
}
