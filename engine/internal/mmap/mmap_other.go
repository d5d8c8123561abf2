//go:build !unix

package mmap

import (
	"errors"
	"os"
)

// Map always fails here: on platforms without syscall.Mmap (Windows, wasm,
// plan9) callers read with ReadAt instead.
func Map(f *os.File, size int64) ([]byte, error) {
	return nil, errors.New("memory maps are not used on this platform")
}

// Unmap does nothing here.
func Unmap(b []byte) error { return nil }
