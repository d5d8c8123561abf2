package nn

import (
	"fmt"

	"glimmer/engine"
)

// Pool recycles F32 activation buffers: a network takes scratch tensors
// with Get and gives them back with Put as soon as they are dead, so a
// denoising loop reuses the same device memory every step instead of
// allocating. Get hands out the smallest idle buffer that is big enough,
// as a View of the shape asked for, so shapes may vary; Trim frees the
// idle buffers between stages whose sizes differ (a decoder's resolution
// levels), Free all of them when a network is done for a while.
//
// A pass that repeats can also be planned ahead into one arena (Plan,
// plan.go), where the backend can cut tensors out of a buffer.
//
// Buffers are told apart by their storage, so every buffer a backend makes
// must have its own (pointer) Storage value, as Glimmer's backends do.
type Pool struct {
	b    engine.Backend
	idle []*engine.Tensor                  // free buffers, each [capacity]
	busy map[engine.Storage]*engine.Tensor // buffers handed out, by storage
	// Bytes is the device memory the pool holds now; Peak is the most it
	// has held since NewPool.
	Bytes, Peak int64

	plan      *plan                       // the pass laid out in an arena (plan.go), or nil
	pass      passState                   // between Begin and End
	fromArena map[engine.Storage]arenaRef // tensors handed out from an arena
	rec       *recording                  // a rehearsal's, else nil

	home           *engine.Tensor // where arenas go (Home), or nil
	homeOff, homeN int            // from element homeOff, at most homeN elements
}

// NewPool makes an empty pool on b.
func NewPool(b engine.Backend) *Pool {
	return &Pool{b: b, busy: map[engine.Storage]*engine.Tensor{}, fromArena: map[engine.Storage]arenaRef{}}
}

// Get returns an F32 tensor of the shape, with undefined contents: in a
// planned pass (Begin), its place in the arena; else a view of the
// smallest idle buffer of at least its element count (the one put back
// last among equals), or a new buffer of exactly its size.
func (p *Pool) Get(shape ...int) *engine.Tensor {
	n := engine.Shape(shape).Numel()
	if t, ok := p.planned(n, shape); ok {
		return t
	}
	best := -1
	for i, t := range p.idle {
		if c := t.Numel(); c >= n && (best < 0 || c <= p.idle[best].Numel()) {
			best = i
		}
	}
	var buf *engine.Tensor
	if best >= 0 {
		buf = p.idle[best]
		p.idle = append(p.idle[:best], p.idle[best+1:]...)
	} else {
		buf = p.b.New(engine.F32, n) // [n]
		p.Bytes += int64(4 * n)
		p.Peak = max(p.Peak, p.Bytes)
	}
	p.busy[buf.Storage()] = buf
	t := buf.View(shape...)
	if p.rec != nil {
		p.rec.get(t, n)
	}
	return t
}

// Put returns tensors from Get (or views of them) to the pool; they must
// not be used afterwards. nil is ignored; a tensor the pool did not hand
// out, or one already put back, is a programmer error and panics.
func (p *Pool) Put(ts ...*engine.Tensor) {
	for _, t := range ts {
		if t == nil || p.putArena(t) {
			continue
		}
		if p.rec != nil {
			p.rec.put(t)
		}
		buf, ok := p.busy[t.Storage()]
		if !ok {
			panic(fmt.Sprintf("nn: Pool.Put of %v, which the pool did not hand out or already has back", t))
		}
		delete(p.busy, t.Storage())
		p.idle = append(p.idle, buf)
	}
}

// Trim frees the idle buffers; those handed out stay valid.
func (p *Pool) Trim() {
	for _, t := range p.idle {
		p.b.Free(t)
		p.Bytes -= int64(4 * t.Numel())
	}
	clear(p.idle)
	p.idle = p.idle[:0]
}

// Free releases every buffer the pool made, the arena too (a plan's
// layout stays: its next Plan makes the arena again without rehearsing);
// tensors handed out and not put back must not be used afterwards.
func (p *Pool) Free() {
	p.Trim()
	for _, t := range p.busy {
		p.b.Free(t)
	}
	for _, r := range p.fromArena {
		p.freeArena(r.pl)
	}
	if p.plan != nil { // the layout stays for the next Plan of its key
		p.freeArena(p.plan)
		clear(p.plan.out)
		p.plan.nOut = 0
	}
	p.busy, p.Bytes = map[engine.Storage]*engine.Tensor{}, 0
	clear(p.fromArena)
}
