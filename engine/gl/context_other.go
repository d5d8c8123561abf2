//go:build !linux && !windows

package gl

import (
	"errors"
	"runtime"
)

func openContext() (platformContext, error) {
	return nil, errors.New("OpenGL 4.3 compute is not available on " + runtime.GOOS + "; use the CPU backend")
}
