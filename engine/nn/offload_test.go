package nn_test

import (
	"math"
	"slices"
	"testing"

	"glimmer/engine"
	"glimmer/engine/enginetest"
	"glimmer/engine/nn"
)

// TestOffload checks that Out frees tensors in order until the asked-for
// bytes (counted in their dtypes) are off the device, that the backend's
// MemCounter sees the memory go and come back, that In restores the
// values bit for bit into the same *engine.Tensor values (F16 and F32,
// infinities included), and that repeating Out or In changes nothing.
func TestOffload(t *testing.T) {
	var runs []enginetest.Backend
	for _, be := range enginetest.Backends() {
		runs = append(runs, be)
		if be.Name == "gl" {
			// The GL backend parks the tensors in host memory the GPU
			// copies itself, or with GLIMMER_GL_PARK=0 keeps Go copies.
			unparked := be
			unparked.Name = "gl unparked"
			open := be.Open
			unparked.Open = func(t testing.TB) engine.Backend {
				t.Setenv("GLIMMER_GL_PARK", "0")
				return open(t)
			}
			runs = append(runs, unparked)
		}
	}
	for _, be := range runs {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			vals := func(n int, s float32) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = s * float32(math.Sin(float64(i)+0.3))
				}
				return v
			}
			big := b.New(engine.F16, 8, 16) // [8, 16]: 256 bytes
			mid := b.New(engine.F32, 40)    // [40]: 160 bytes
			small := b.New(engine.F16, 6)   // [6]: 12 bytes
			b.Write(big, vals(128, 3))
			b.Write(mid, vals(40, 1e-3))
			b.Write(small, vals(6, 1e5)) // beyond F16's range: ±Inf
			ts := []*engine.Tensor{big, mid, small}
			read := func() [][]float32 {
				var out [][]float32
				for _, x := range ts {
					v, err := b.Read(x)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, v)
				}
				return out
			}
			want := read()
			base := current(t, b)
			o := nn.NewOffload(b, ts)

			if err := o.Out(300); err != nil { // big alone (256) is not enough
				t.Fatal(err)
			}
			if got := o.OutBytes(); got != 256+160 {
				t.Errorf("Out(300) took %d bytes off, want big and mid's 416", got)
			}
			afterOut := current(t, b)
			if afterOut >= base {
				t.Errorf("Out(300): the backend holds %d bytes, %d before", afterOut, base)
			}
			if err := o.Out(100); err != nil || o.OutBytes() != 416 || current(t, b) != afterOut {
				t.Errorf("Out(100) after Out(300) changed something: %d bytes out, %v", o.OutBytes(), err)
			}
			o.In()
			if o.OutBytes() != 0 || current(t, b) != base {
				t.Errorf("after In: %d bytes out, backend holds %d, want 0 and %d", o.OutBytes(), current(t, b), base)
			}
			got := read()
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("tensor %d after Out and In: %v, want %v", i, got[i], want[i])
				}
			}
			if err := o.Out(math.MaxInt64); err != nil || o.OutBytes() != 428 {
				t.Errorf("Out(all): %d bytes out, %v", o.OutBytes(), err)
			}
			o.In()
			o.In()
			if got := read(); !slices.Equal(got[2], want[2]) || current(t, b) != base {
				t.Errorf("after Out(all), In, In: %v, backend holds %d (want %v, %d)", got[2], current(t, b), want[2], base)
			}
			for _, x := range ts {
				b.Free(x)
			}
		})
	}
}
