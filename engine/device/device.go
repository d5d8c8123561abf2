// Package device opens a compute backend by name: "gl" (OpenGL compute
// shaders), "cpu" (pure Go) or "auto" (GL when the machine has OpenGL 4.3,
// else the CPU, saying why).
package device

import (
	"fmt"

	"glimmer/engine"
	"glimmer/engine/cpu"
	"glimmer/engine/gl"
)

// Names lists the accepted backend names.
var Names = []string{"auto", "gl", "cpu"}

// Open returns the named backend. For "auto", notice explains a fallback
// to the CPU (empty when GL was opened); callers show it to the user, so
// the fallback is never silent.
func Open(name string) (b engine.Backend, notice string, err error) {
	switch name {
	case "cpu":
		return cpu.New(), "", nil
	case "gl":
		g, err := gl.New()
		if err != nil {
			return nil, "", err
		}
		return g, "", nil
	case "auto", "":
		g, err := gl.New()
		if err != nil {
			return cpu.New(), fmt.Sprintf("OpenGL compute unavailable (%v); using the CPU backend", err), nil
		}
		return g, "", nil
	}
	return nil, "", fmt.Errorf("unknown backend %q (want auto, gl or cpu)", name)
}
