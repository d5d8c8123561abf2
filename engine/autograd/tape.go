// Package autograd makes the engine's networks trainable without a second
// copy of them: a Tape is an engine.Backend that runs every op on a real
// backend and records it, so the U-Net, VAE and CLIP code written for
// inference runs unchanged on a Tape, and Backward then walks the record
// in reverse with the backend's GradOps.
//
// Inference code reuses buffers (activation pools, in-place residual adds,
// ops whose destination is one of their inputs), which would overwrite
// values the backward pass needs. The Tape therefore versions storage: a
// tape tensor's storage points at its current physical tensor (a node),
// and an op that writes a storage whose node a recorded op has already
// read or written gets a fresh node instead — every recorded value stays
// intact until Reset. Views made by Reshape or View share the storage, so
// they follow the redirection; a node may be larger than a view of it (a
// pool's buffer reused for a smaller tensor), whose values are the node's
// first elements.
//
// Gradients are kept per node. Parameters are marked with Param; only
// records on a path from a parameter compute gradients, so frozen parts of
// a network (a LoRA's base weights, a frozen text encoder) cost only their
// forward pass and the activation gradients that flow through them.
package autograd

import (
	"fmt"

	"glimmer/engine"
)

// node is one immutable-once-recorded value: a physical tensor on the
// real backend with its gradient.
type node struct {
	t        *engine.Tensor // physical, flat [numel]
	needGrad bool           // depends on a parameter
	used     bool           // read or written by a record: never written again
	grad     *engine.Tensor // d loss / d t, flat [numel] F32; nil until reached
	freed    bool
}

// vstore is the Storage of a tape tensor: a pointer to its current node.
type vstore struct {
	cur   *node
	bytes int
	dead  bool // Free was called
	param bool // a trainable parameter: its nodes need gradients
}

func (s *vstore) Bytes() int { return s.bytes }

// Tape records ops for the backward pass. It is an engine.Backend; its
// tensors belong to it and must only be passed to its own methods.
type Tape struct {
	b       engine.TrainBackend
	records []record
	nodes   []*node   // every node ever made, for Reset
	stores  []*vstore // every live storage
	paused  int       // >0: ops run without recording
	// spare holds freed physical tensors for reuse by size, so a training
	// loop stops allocating device memory after its first step.
	spare map[spareKey][]*engine.Tensor
}

type spareKey struct {
	dtype engine.DType
	numel int
}

var _ engine.Backend = (*Tape)(nil)

// New makes an empty tape over b.
func New(b engine.TrainBackend) *Tape {
	return &Tape{b: b, spare: map[spareKey][]*engine.Tensor{}}
}

// Backend is the real backend the tape runs on.
func (tp *Tape) Backend() engine.TrainBackend { return tp.b }

func (tp *Tape) Name() string { return tp.b.Name() }
func (tp *Tape) Sync() error  { return tp.b.Sync() }

// Close frees every tensor the tape made; the real backend stays open.
func (tp *Tape) Close() error {
	tp.records = nil
	for _, n := range tp.nodes {
		tp.freeNode(n)
	}
	for _, list := range tp.spare {
		for _, t := range list {
			tp.b.Free(t)
		}
	}
	tp.nodes, tp.stores, tp.spare = nil, nil, map[spareKey][]*engine.Tensor{}
	return nil
}

// MemoryStats reports the real backend's memory when it counts it.
func (tp *Tape) MemoryStats() engine.MemoryStats {
	if r, ok := tp.b.(engine.MemoryReporter); ok {
		return r.MemoryStats()
	}
	return engine.MemoryStats{}
}

func (tp *Tape) newNode(dtype engine.DType, numel int) *node {
	n := &node{t: tp.alloc(dtype, numel)} // [numel]
	tp.nodes = append(tp.nodes, n)
	return n
}

// alloc returns a physical tensor [numel], reusing a spare one.
func (tp *Tape) alloc(dtype engine.DType, numel int) *engine.Tensor {
	k := spareKey{dtype, numel}
	if list := tp.spare[k]; len(list) > 0 {
		t := list[len(list)-1]
		tp.spare[k] = list[:len(list)-1]
		return t
	}
	return tp.b.New(dtype, numel) // [numel]
}

// release keeps a physical tensor for reuse.
func (tp *Tape) release(t *engine.Tensor) {
	t = t.Reshape(t.Numel())
	k := spareKey{t.DType(), t.Numel()}
	tp.spare[k] = append(tp.spare[k], t)
}

func (tp *Tape) freeNode(n *node) {
	if !n.freed {
		tp.release(n.t)
		n.freed = true
	}
	if n.grad != nil {
		tp.release(n.grad)
		n.grad = nil
	}
}

func store(t *engine.Tensor) *vstore {
	s, ok := t.Storage().(*vstore)
	if !ok {
		panic(fmt.Sprintf("autograd: %v is not a tape tensor", t))
	}
	if s.dead {
		panic(fmt.Sprintf("autograd: %v was freed", t))
	}
	return s
}

// phys is t's current value on the real backend, shaped as t.
func phys(t *engine.Tensor) *engine.Tensor {
	return store(t).cur.t.View(t.Shape()...)
}

// New allocates a tape tensor with undefined contents.
func (tp *Tape) New(dtype engine.DType, shape ...int) *engine.Tensor {
	n := engine.Shape(shape).Numel()
	s := &vstore{cur: tp.newNode(dtype, n), bytes: n * dtype.Size()}
	tp.stores = append(tp.stores, s)
	return engine.NewTensor(shape, dtype, s)
}

// Phys returns t's current value on the real backend, shaped as t: the
// optimiser updates parameters through it.
func (tp *Tape) Phys(t *engine.Tensor) *engine.Tensor { return phys(t) }

// output prepares t's storage to be written by an op: a recorded node is
// never overwritten, so it gets a fresh one, as does a node smaller than
// t (written through a smaller view of the storage).
func (tp *Tape) output(t *engine.Tensor) *node {
	s := store(t)
	if s.cur.used || s.cur.t.Numel() < t.Numel() {
		s.cur = tp.newNode(t.DType(), t.Numel())
	}
	s.cur.needGrad = s.param
	return s.cur
}

func (tp *Tape) Write(t *engine.Tensor, src []float32) {
	tp.b.Write(tp.output(t).t.View(t.Shape()...), src)
}

func (tp *Tape) WriteRaw(t *engine.Tensor, src []byte) {
	tp.b.WriteRaw(tp.output(t).t.View(t.Shape()...), src)
}

func (tp *Tape) Read(t *engine.Tensor) ([]float32, error) { return tp.b.Read(phys(t)) }

// Free marks t's storage dead. Its nodes live until Reset, as the record
// may still need them.
func (tp *Tape) Free(t *engine.Tensor) {
	s := store(t)
	s.dead = true
	if !s.cur.used {
		tp.freeNode(s.cur)
	}
}

// Param marks t as a trainable parameter: ops that read it record
// gradients. Its values must be F32.
func (tp *Tape) Param(t *engine.Tensor) {
	if t.DType() != engine.F32 {
		panic(fmt.Sprintf("autograd: parameter %v must be F32", t))
	}
	s := store(t)
	s.param = true
	s.cur.needGrad = true
}

// Grad is d loss / d t after Backward, shaped as t, or nil when no
// gradient reached t.
func (tp *Tape) Grad(t *engine.Tensor) *engine.Tensor {
	g := store(t).cur.grad
	if g == nil {
		return nil
	}
	return g.Reshape(t.Shape()...)
}

// NoGrad runs f with recording paused (sampling during training): ops
// write their destinations in place and nothing is kept for Backward.
func (tp *Tape) NoGrad(f func()) {
	tp.paused++
	defer func() { tp.paused-- }()
	f()
}

// Reset forgets the record and every gradient and frees the nodes no
// live tensor points at, ready for the next step. Parameters and live
// buffers keep their current values.
func (tp *Tape) Reset() {
	tp.records = tp.records[:0]
	current := map[*node]bool{}
	live := tp.stores[:0]
	for _, s := range tp.stores {
		if !s.dead {
			current[s.cur] = true
			live = append(live, s)
		}
	}
	tp.stores = live
	kept := tp.nodes[:0]
	for _, n := range tp.nodes {
		if current[n] {
			if n.grad != nil {
				tp.release(n.grad)
				n.grad = nil
			}
			n.used = false
			kept = append(kept, n)
			continue
		}
		tp.freeNode(n)
	}
	clear(tp.nodes[len(kept):])
	tp.nodes = kept
}
