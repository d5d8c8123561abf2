// Package mmap maps model files read-only into memory where the platform
// supports it (unix, with syscall.Mmap). Elsewhere Map fails and callers
// fall back to reading with ReadAt, so every caller must handle both.
//
// A mapped slice is valid until Unmap and must never be written: the
// pages are read-only and a write faults. If another process truncates
// the file while it is mapped, touching the lost pages raises SIGBUS;
// model files are not expected to change while open.
package mmap
