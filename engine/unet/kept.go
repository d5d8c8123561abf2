package unet

import "glimmer/engine"

// keptStore makes the tensors a generation keeps from its first step to
// its last, each step's time embeddings (KeepTimesteps) and the text's
// keys and values (KeepContext), in the part of a region HomeKept gave,
// one after another, where they fit; else the backend allocates them.
// The pipeline gives it the part of its region that the U-Net's weights
// and activations leave idle during the steps (without --offload, 448 MB
// at 512x512 against their 18.6 MB), so they need no memory of their own.
type keptStore struct {
	b      engine.Backend
	sub    engine.Suballocator
	region *engine.Tensor // nil: allocate
	off    int            // the part's first element
	end    int            // the element after it
	next   int            // where the next tensor goes
	live   map[engine.Storage]bool
}

// home gives the store elements [off, off+n) of region (nil: none); the
// tensors it made there must be freed before.
func (k *keptStore) home(region *engine.Tensor, off, n int) {
	k.sub, _ = k.b.(engine.Suballocator)
	if k.sub == nil {
		region = nil
	}
	k.region, k.off, k.end, k.next = region, off, off+n, off
	k.live = map[engine.Storage]bool{}
}

// new returns an F32 tensor of the shape, contents undefined.
func (k *keptStore) new(shape ...int) *engine.Tensor {
	if k.region != nil {
		if start, end := engine.SubPlace(k.sub, k.next, engine.F32, engine.Shape(shape).Numel()); end <= k.end {
			t := k.sub.Sub(k.region, start, engine.F32, shape...)
			k.next = end
			k.live[t.Storage()] = true
			return t
		}
	}
	return k.b.New(engine.F32, shape...)
}

// free gives t (from new) back; the part starts over once all of its
// tensors are back.
func (k *keptStore) free(t *engine.Tensor) {
	if !k.live[t.Storage()] {
		k.b.Free(t)
		return
	}
	delete(k.live, t.Storage())
	if len(k.live) == 0 {
		k.next = k.off
	}
}
