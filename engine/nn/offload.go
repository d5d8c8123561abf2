package nn

import (
	"encoding/binary"
	"fmt"

	"github.com/x448/float16"

	"glimmer/engine"
)

// Offload gives the device memory of weight tensors back while they are
// idle and restores them, bit for bit, before they are used again: Out
// copies a tensor's values to the host (the first time only; weights do
// not change afterwards) and frees its storage, In uploads it into fresh
// storage that the same *engine.Tensor points at, so the layers holding
// the tensors need not know. Reshaped views taken before an Out must not
// be used after it. Where the backend is an engine.HostStore, the host
// copy is one the device copies to and from itself (parked); else a Go
// byte slice, read back and uploaded.
//
// Fresh storage is a device allocation each time, and on the H100 those
// cost --offload more than the copies did (docs/perf-notes.md, p25).
// Home gives each tensor a place in a region, a buffer made once and
// shared with other networks' weights and activations in turn, that In
// copies it back into instead.
type Offload struct {
	b      engine.Backend
	hs     engine.HostStore // b's, or nil
	ts     []*engine.Tensor
	host   [][]byte        // a tensor's bytes in its dtype once it has been out
	parked []engine.Parked // or its parked copy
	out    []bool

	sub    engine.Suballocator // b's, with a region
	region *engine.Tensor      // Home's, or nil
	home   []int               // each tensor's first element in region
	homed  []bool              // the tensor's storage is a Sub of a region (In put it there)
}

// NewOffload makes an Offload of ts (F32 or F16) on b, all on the device
// now. Out takes them in the order given.
func NewOffload(b engine.Backend, ts []*engine.Tensor) *Offload {
	hs, _ := b.(engine.HostStore)
	return &Offload{b: b, hs: hs, ts: ts, host: make([][]byte, len(ts)), parked: make([]engine.Parked, len(ts)),
		out: make([]bool, len(ts)), homed: make([]bool, len(ts))}
}

// HomeSpan is the elements of a region that Home places ts in from
// element off takes: each at the first multiple of sub's alignment after
// the one before. It returns the element after the last.
func HomeSpan(sub engine.Suballocator, ts []*engine.Tensor, off int) int {
	for _, t := range ts {
		_, off = engine.SubPlace(sub, off, t.DType(), t.Numel())
	}
	return off
}

// Home places the tensors in region, an F32 tensor from New on a backend
// that is an engine.Suballocator, from element off, as HomeSpan lays them
// out: from now on In copies a tensor that is out into its place there
// instead of into fresh storage, and Out frees nothing (the region is the
// caller's, who keeps it until the tensors are out and Home has moved
// them, and who uses the region for other things only while they are
// out). A nil region ends it: In allocates again. Tensors that are in
// stay where they are until they go out.
func (o *Offload) Home(region *engine.Tensor, off int) {
	if region == nil {
		o.region, o.home = nil, nil
		return
	}
	sub, ok := o.b.(engine.Suballocator)
	if !ok {
		panic(fmt.Sprintf("nn: Offload.Home on %s, which cannot cut tensors out of others", o.b.Name()))
	}
	o.sub, o.region, o.home = sub, region, make([]int, len(o.ts))
	for i, t := range o.ts {
		o.home[i], off = engine.SubPlace(sub, off, t.DType(), t.Numel())
	}
}

// Out frees tensors, in order, until at least min bytes of them are off
// the device (all of them if they hold less), counting those already out;
// a tensor In put in a region (Home) is only marked out, its place there
// the region owner's to use until In.
func (o *Offload) Out(min int64) error {
	var freed int64
	for i, t := range o.ts {
		if freed >= min {
			break
		}
		freed += int64(t.Bytes())
		if o.out[i] {
			continue
		}
		if o.host[i] == nil && o.parked[i] == nil && o.hs != nil {
			o.parked[i], _ = o.hs.Park(t)
		}
		if o.host[i] == nil && o.parked[i] == nil {
			v, err := o.b.Read(t)
			if err != nil {
				return fmt.Errorf("nn: offloading %v: %w", t, err)
			}
			if o.host[i], err = encode(v, t.DType()); err != nil {
				return fmt.Errorf("nn: offloading %v: %w", t, err)
			}
		}
		o.b.Free(t) // nothing, for a Sub of a region
		o.out[i] = true
	}
	return nil
}

// OutBytes is the device memory the tensors that are out would take.
func (o *Offload) OutBytes() int64 {
	var n int64
	for i, t := range o.ts {
		if o.out[i] {
			n += int64(t.Bytes())
		}
	}
	return n
}

// In uploads every tensor that is out.
func (o *Offload) In() { o.in(false) }

// in brings back the tensors that are out, but for those out of a region
// with keepHomed.
func (o *Offload) in(keepHomed bool) {
	for i, t := range o.ts {
		if !o.out[i] || keepHomed && o.homed[i] {
			continue
		}
		var fresh *engine.Tensor
		if o.region != nil {
			fresh = o.sub.Sub(o.region, o.home[i], t.DType(), t.Shape()...) // [t's shape]
		} else {
			fresh = o.b.New(t.DType(), t.Shape()...) // [t's shape]
		}
		o.homed[i] = o.region != nil
		if p := o.parked[i]; p != nil {
			o.hs.Unpark(fresh, p)
		} else {
			o.b.WriteRaw(fresh, o.host[i])
		}
		t.SetStorage(fresh.Storage())
		o.out[i] = false
	}
}

// Close brings every tensor back (In) and frees the host copies, except
// that tensors out of a region stay out: their storage ends with the
// region, and freeing them does nothing.
func (o *Offload) Close() {
	o.in(true)
	for i, p := range o.parked {
		if p != nil {
			o.hs.Drop(p)
			o.parked[i] = nil
		}
	}
	clear(o.host)
}

// encode writes values (exactly representable in dtype, as a Read of a
// dtype tensor gives them) as dtype's little-endian bytes.
func encode(v []float32, dtype engine.DType) ([]byte, error) {
	switch dtype {
	case engine.F16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(float16.Fromfloat32(x)))
		}
		return out, nil
	case engine.F32:
		return float32Bytes(v), nil
	}
	return nil, fmt.Errorf("no offload for dtype %v", dtype)
}
