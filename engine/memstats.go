package engine

import "sync/atomic"

// MemoryStats is the device memory a backend's tensors hold, in bytes.
type MemoryStats struct {
	Current, Peak int64
}

// MemoryReporter is implemented by backends that count their tensors'
// memory (both of Glimmer's do).
type MemoryReporter interface {
	MemoryStats() MemoryStats
}

// MemCounter counts allocated bytes and their high-water mark; backends
// embed it and call Alloc and Release. Safe for concurrent use.
type MemCounter struct {
	cur, peak atomic.Int64
}

// Alloc records n more bytes.
func (c *MemCounter) Alloc(n int64) {
	v := c.cur.Add(n)
	for {
		p := c.peak.Load()
		if v <= p || c.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// Release records n bytes freed.
func (c *MemCounter) Release(n int64) { c.cur.Add(-n) }

// ResetPeak lowers the high-water mark to the bytes held now, so the next
// MemoryStats' Peak is that of what ran since (one Generate, say).
func (c *MemCounter) ResetPeak() { c.peak.Store(c.cur.Load()) }

// MemoryStats reports current and peak bytes.
func (c *MemCounter) MemoryStats() MemoryStats {
	return MemoryStats{Current: c.cur.Load(), Peak: c.peak.Load()}
}
