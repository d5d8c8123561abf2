package gl

import (
	"math/bits"
	"sync"

	"glimmer/engine"
)

// Scratch buffers for the backward ops' partial sums and statistics.
// Allocating a GL buffer per call cost as much as the reductions
// themselves on the H200, so released buffers are kept per backend and
// reused. Reuse is safe as soon as a buffer is released: GL runs the
// queued dispatches in order, with a barrier after each.

// scratchKeep bounds what a backend keeps unused: at most this many
// buffers and scratchKeepBytes bytes; more are freed on release.
const (
	scratchKeep      = 32
	scratchKeepBytes = 256 << 20
)

type scratchPool struct {
	mu    sync.Mutex
	free  map[int][]*engine.Tensor // by element count, a power of two
	count int
	bytes int
}

var scratchPools sync.Map // *Backend -> *scratchPool

func (b *Backend) scratchPool() *scratchPool {
	p, _ := scratchPools.LoadOrStore(b, &scratchPool{free: map[int][]*engine.Tensor{}})
	return p.(*scratchPool)
}

// scratch returns an F32 buffer of at least n elements, contents
// undefined; give it back with release.
func (b *Backend) scratch(n int) *engine.Tensor {
	size := 1 << bits.Len(uint(max(n, 1)-1)) // n rounded up to a power of two
	p := b.scratchPool()
	p.mu.Lock()
	if l := p.free[size]; len(l) > 0 {
		t := l[len(l)-1]
		p.free[size] = l[:len(l)-1]
		p.count--
		p.bytes -= 4 * size
		p.mu.Unlock()
		return t
	}
	p.mu.Unlock()
	return b.New(engine.F32, size) // [size]
}

// release returns a scratch buffer once the dispatches that use it are
// queued.
func (b *Backend) release(t *engine.Tensor) {
	p := b.scratchPool()
	p.mu.Lock()
	if p.count < scratchKeep && p.bytes+4*t.Numel() <= scratchKeepBytes {
		p.free[t.Numel()] = append(p.free[t.Numel()], t)
		p.count++
		p.bytes += 4 * t.Numel()
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	b.Free(t)
}
