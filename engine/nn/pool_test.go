package nn_test

import (
	"testing"

	"glimmer/engine"
	"glimmer/engine/enginetest"
	"glimmer/engine/nn"
)

func current(t *testing.T, b engine.Backend) int64 {
	t.Helper()
	mr, ok := b.(engine.MemoryReporter)
	if !ok {
		t.Fatalf("%s does not count its memory", b.Name())
	}
	return mr.MemoryStats().Current
}

// TestPoolReusesBiggerBuffer checks that Get hands out the smallest idle
// buffer that fits, as a view of the shape asked for, allocating nothing,
// and that Trim and Free give the memory back, as the backend's
// MemCounter sees it.
func TestPoolReusesBiggerBuffer(t *testing.T) {
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			base := current(t, b)
			p := nn.NewPool(b)
			big := p.Get(4, 8, 8) // [4, 8, 8]: 256 elements
			mid := p.Get(2, 8, 8) // [2, 8, 8]: 128
			small := p.Get(3, 10) // [3, 10]: 30
			if got, want := current(t, b)-base, int64(4*(256+128+30)); got != want || p.Bytes != want {
				t.Fatalf("three buffers: backend holds %d bytes, pool says %d, want %d", got, p.Bytes, want)
			}
			p.Put(big, mid, small)

			// 100 elements fit in the 128- and 256-element buffers: the smaller.
			a := p.Get(4, 25) // [4, 25]
			if a.Storage() != mid.Storage() || !a.Shape().Equal(engine.Shape{4, 25}) || a.Cap() != 128 {
				t.Errorf("Get(4, 25) = %v of %d elements, want a view of the 128-element buffer", a, a.Cap())
			}
			c := p.Get(129) // [129]: only the 256-element buffer fits
			if c.Storage() != big.Storage() {
				t.Errorf("Get(129) did not reuse the 256-element buffer")
			}
			if got := current(t, b) - base; got != int64(4*(256+128+30)) {
				t.Errorf("reusing bigger buffers allocated: backend holds %d bytes", got)
			}
			// A view reads and writes its own elements.
			vals := make([]float32, 100)
			for i := range vals {
				vals[i] = float32(i) - 50
			}
			b.Write(a, vals)
			b.Scale(a, a, 2, 1) // [4, 25]
			got, err := b.Read(a)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range got {
				if v != 2*vals[i]+1 {
					t.Fatalf("view element %d: %g, want %g", i, v, 2*vals[i]+1)
				}
			}

			// Trim frees the idle 30-element buffer only; the views stay valid.
			p.Trim()
			if got, want := current(t, b)-base, int64(4*(256+128)); got != want || p.Bytes != want {
				t.Errorf("after Trim: backend holds %d bytes, pool says %d, want %d", got, p.Bytes, want)
			}
			if got, err := b.Read(a); err != nil || got[99] != 2*vals[99]+1 {
				t.Errorf("a buffer in use after Trim: %v, %v", got[99:], err)
			}
			p.Put(a, c.Reshape(3, 43)) // a reshaped view gives its buffer back too
			if n := p.Get(40); n.Storage() != mid.Storage() {
				t.Errorf("after Put, Get(40) did not reuse the 128-element buffer")
			}
			if p.Peak != int64(4*(256+128+30)) {
				t.Errorf("Peak %d, want %d", p.Peak, 4*(256+128+30))
			}
			p.Free() // the buffer handed out too
			if got := current(t, b) - base; got != 0 || p.Bytes != 0 {
				t.Errorf("after Free: backend holds %d bytes, pool says %d", got, p.Bytes)
			}
		})
	}
}

// TestPoolPutErrors checks that giving back a tensor twice, or one the
// pool did not hand out, panics: either would let two live tensors share
// a buffer.
func TestPoolPutErrors(t *testing.T) {
	b := enginetest.Backends()[0].Open(t)
	defer b.Close()
	p := nn.NewPool(b)
	defer p.Free()
	x := p.Get(2, 3) // [2, 3]
	p.Put(x)
	foreign := b.New(engine.F32, 6) // [6]
	defer b.Free(foreign)
	for name, put := range map[string]func(){
		"twice":   func() { p.Put(x) },
		"foreign": func() { p.Put(foreign) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Put %s did not panic", name)
				}
			}()
			put()
		}()
	}
}

// TestViewTouchesOnlyItsElements checks the contract pools rely on: an op
// on a view smaller than its storage reads and writes only the view's
// elements, the storage's first Numel, on every backend.
func TestViewTouchesOnlyItsElements(t *testing.T) {
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			const n, m, k = 5, 7, 9 // awkward sizes
			buf := func(cap int, v float32) *engine.Tensor {
				x := b.New(engine.F32, cap) // [cap]
				all := make([]float32, cap)
				for i := range all {
					all[i] = v + float32(i%13)
				}
				b.Write(x, all)
				return x
			}
			aBuf, wBuf, yBuf := buf(n*k+11, 1), buf(m*k+5, 2), buf(n*m+17, -1000)
			a, w, y := aBuf.View(n, k), wBuf.View(m, k), yBuf.View(n, m) // [N, K], [M, K], [N, M]
			b.MatMul(y, a, w, nil, engine.MatMulParams{TransB: true})    // [N, M]
			b.Binary(y, y, a.View(n, 1), engine.Add)                     // [N, M] + [N, 1]
			got, err := b.Read(yBuf)
			if err != nil {
				t.Fatal(err)
			}
			av, _ := b.Read(aBuf)
			wv, _ := b.Read(wBuf)
			for i := range n {
				for j := range m {
					var s float64
					for l := range k {
						s += float64(av[i*k+l]) * float64(wv[j*k+l])
					}
					s += float64(av[i]) // a's first n elements viewed as [N, 1]
					if d := float64(got[i*m+j]) - s; d > 1e-3 || d < -1e-3 {
						t.Errorf("y[%d, %d] = %g, want %g", i, j, got[i*m+j], s)
					}
				}
			}
			for i := n * m; i < len(got); i++ {
				if want := -1000 + float32(i%13); got[i] != want {
					t.Fatalf("element %d past the view was overwritten: %g, want %g", i, got[i], want)
				}
			}
		})
	}
}
