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
	for _, be := range offloadBackends() {
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
			read := func() [][]float32 { return readAll(t, b, ts) }
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

// offloadBackends are the backends, the GL one twice: it parks the
// tensors in host memory the GPU copies itself, or with GLIMMER_GL_PARK=0
// keeps Go copies.
func offloadBackends() []enginetest.Backend {
	var runs []enginetest.Backend
	for _, be := range enginetest.Backends() {
		runs = append(runs, be)
		if be.Name == "gl" {
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
	return runs
}

// readAll reads every tensor of ts back.
func readAll(t *testing.T, b engine.Backend, ts []*engine.Tensor) [][]float32 {
	t.Helper()
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

// TestOffloadHome checks Offload.Home on every backend: tensors homed in
// a region come back into it, bit for bit, after the region held other
// values meanwhile (as --offload's region holds other networks' weights
// and activations in turn), and Out and In then allocate and free nothing;
// the places follow HomeSpan, one tensor's never overlapping the next;
// Close leaves homed tensors out, with nothing to free; Home(nil) makes
// In allocate again. The GL backend runs parked and unparked.
func TestOffloadHome(t *testing.T) {
	for _, be := range offloadBackends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			sub := b.(engine.Suballocator)
			vals := func(n int, s float32) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = s * float32(math.Cos(float64(i)+0.7))
				}
				return v
			}
			// An odd F16 count, so the next tensor's place must skip a
			// half-filled word and align.
			a := b.New(engine.F16, 3, 7) // [3, 7]
			c := b.New(engine.F32, 5)    // [5]
			d := b.New(engine.F16, 1)    // [1]
			b.Write(a, vals(21, 2))
			b.Write(c, vals(5, 1e-3))
			b.Write(d, []float32{1e5}) // +Inf in F16
			ts := []*engine.Tensor{a, c, d}
			read := func() [][]float32 { return readAll(t, b, ts) }
			want := read()
			o := nn.NewOffload(b, ts)
			if err := o.Out(math.MaxInt64); err != nil {
				t.Fatal(err)
			}
			span := nn.HomeSpan(sub, ts, 0)
			if min := nn.HomeSpan(sub, ts[:2], 0) + sub.SubSpan(engine.F16, 1); span < min {
				t.Fatalf("HomeSpan %d elements, less than the tensors take (%d)", span, min)
			}
			region := b.New(engine.F32, span) // [span]
			o.Home(region, 0)
			base := current(t, b)
			for round := range 3 {
				b.Write(region, vals(span, 9)) // another network's turn
				o.In()
				if current(t, b) != base {
					t.Errorf("round %d: In allocated: %d bytes held, %d before", round, current(t, b), base)
				}
				if got := read(); !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) || !slices.Equal(got[2], want[2]) {
					t.Errorf("round %d: after In %v, want %v", round, got, want)
				}
				if err := o.Out(math.MaxInt64); err != nil || current(t, b) != base {
					t.Errorf("round %d: Out freed or allocated: %d bytes held, %d before (%v)", round, current(t, b), base, err)
				}
			}
			o.Home(nil, 0)
			b.Write(region, vals(span, -9))
			o.In() // into storage of their own again
			if got := read(); current(t, b) <= base || !slices.Equal(got[0], want[0]) || !slices.Equal(got[2], want[2]) {
				t.Errorf("In after Home(nil): %v, %d bytes held (want %v, more than %d)", got, current(t, b), want, base)
			}
			if err := o.Out(math.MaxInt64); err != nil || current(t, b) != base {
				t.Errorf("Out of unhomed tensors: %d bytes held, want %d (%v)", current(t, b), base, err)
			}
			o.Home(region, 0)
			o.In()
			if err := o.Out(math.MaxInt64); err != nil {
				t.Fatal(err)
			}
			o.Close() // all out, all homed: nothing to bring back
			if current(t, b) != base {
				t.Errorf("Close of homed tensors changed the memory held: %d, %d before", current(t, b), base)
			}
			for _, x := range ts {
				b.Free(x) // dead subs of the region: nothing
			}
			b.Free(region)
			if got := current(t, b); got != base-4*int64(span) {
				t.Errorf("after freeing the region %d bytes held, want %d", got, base-4*int64(span))
			}
		})
	}
}
