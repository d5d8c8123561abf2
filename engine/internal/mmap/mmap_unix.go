//go:build unix

package mmap

import (
	"errors"
	"os"
	"syscall"
)

// Map maps the first size bytes of f read-only. Pages are read from disk
// only when touched, so mapping a 4 GB file costs address space, not
// memory.
func Map(f *os.File, size int64) ([]byte, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, errors.New("cannot map a file of this size")
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

// Unmap releases a mapping made by Map.
func Unmap(b []byte) error { return syscall.Munmap(b) }
