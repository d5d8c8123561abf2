package nn

import "glimmer/engine"

// Pool recycles F32 activation buffers: a network takes scratch tensors
// with Get and gives them back with Put as soon as they are dead, so a
// denoising loop reuses the same device memory every step instead of
// allocating. Buffers are matched by element count, so shapes may vary.
type Pool struct {
	b    engine.Backend
	free map[int][]*engine.Tensor // by element count
	all  []*engine.Tensor
	// Bytes is the device memory the pool holds.
	Bytes int64
}

// NewPool makes an empty pool on b.
func NewPool(b engine.Backend) *Pool {
	return &Pool{b: b, free: map[int][]*engine.Tensor{}}
}

// Get returns an F32 tensor of the shape, with undefined contents.
func (p *Pool) Get(shape ...int) *engine.Tensor {
	n := engine.Shape(shape).Numel()
	if list := p.free[n]; len(list) > 0 {
		t := list[len(list)-1]
		p.free[n] = list[:len(list)-1]
		return t.Reshape(shape...)
	}
	t := p.b.New(engine.F32, shape...)
	p.all = append(p.all, t)
	p.Bytes += int64(4 * n)
	return t
}

// Put returns tensors to the pool; they must not be used afterwards.
func (p *Pool) Put(ts ...*engine.Tensor) {
	for _, t := range ts {
		if t != nil {
			p.free[t.Numel()] = append(p.free[t.Numel()], t)
		}
	}
}

// Free releases every buffer the pool ever made.
func (p *Pool) Free() {
	for _, t := range p.all {
		p.b.Free(t)
	}
	p.all, p.free, p.Bytes = nil, map[int][]*engine.Tensor{}, 0
}
