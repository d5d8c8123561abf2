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
type Offload struct {
	b      engine.Backend
	hs     engine.HostStore // b's, or nil
	ts     []*engine.Tensor
	host   [][]byte        // a tensor's bytes in its dtype once it has been out
	parked []engine.Parked // or its parked copy
	out    []bool
}

// NewOffload makes an Offload of ts (F32 or F16) on b, all on the device
// now. Out takes them in the order given.
func NewOffload(b engine.Backend, ts []*engine.Tensor) *Offload {
	hs, _ := b.(engine.HostStore)
	return &Offload{b: b, hs: hs, ts: ts, host: make([][]byte, len(ts)), parked: make([]engine.Parked, len(ts)), out: make([]bool, len(ts))}
}

// Out frees tensors, in order, until at least min bytes of them are off
// the device (all of them if they hold less), counting those already out.
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
		o.b.Free(t)
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
func (o *Offload) In() {
	for i, t := range o.ts {
		if !o.out[i] {
			continue
		}
		fresh := o.b.New(t.DType(), t.Shape()...) // [t's shape]
		if p := o.parked[i]; p != nil {
			o.hs.Unpark(fresh, p)
		} else {
			o.b.WriteRaw(fresh, o.host[i])
		}
		t.SetStorage(fresh.Storage())
		o.out[i] = false
	}
}

// Close brings every tensor back (In) and frees the host copies.
func (o *Offload) Close() {
	o.In()
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
