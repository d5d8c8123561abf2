package nn_test

import (
	"math"
	"testing"

	"glimmer/engine"
	"glimmer/engine/enginetest"
	"glimmer/engine/nn"
)

// Kinds of planPass.
const (
	asRehearsed = iota
	otherSize   // the fourth Get asks for another size
	latePut     // the first tensor comes back at the end, not before the third Get
)

// planValue is element j of the tensor planPass numbers id: exact in
// float32, as are 2v+1 and the values' products.
func planValue(id, j int) float32 { return float32(id) + float32(j%17)/16 }

// planPass takes and gives back tensors as a network's pass does: some
// outlive others, they come back in another order than taken, one (kept)
// stays out past the pass. Each is filled with its own values when taken
// and checked when given back, and a Scale and a MatMul run on them, so
// two live tensors sharing memory, or an op touching memory outside its
// tensors, fail it. On ShapeOnly (a rehearsal) nothing is checked.
func planPass(t *testing.T, b engine.Backend, p *nn.Pool, kind int) (kept *engine.Tensor) {
	t.Helper()
	_, rehearsal := b.(nn.ShapeOnly)
	fill := func(x *engine.Tensor, id int) {
		v := make([]float32, x.Numel())
		for j := range v {
			v[j] = planValue(id, j)
		}
		b.Write(x, v)
	}
	check := func(x *engine.Tensor, want func(j int) float64, tol float64) {
		if rehearsal {
			return
		}
		got, err := b.Read(x)
		if err != nil {
			t.Fatal(err)
		}
		for j, g := range got {
			if w := want(j); math.Abs(float64(g)-w) > tol*math.Abs(w) {
				t.Fatalf("%v element %d: %g, want %g", x.Shape(), j, g, w)
			}
		}
	}
	filled := func(id int) func(int) float64 {
		return func(j int) float64 { return float64(planValue(id, j)) }
	}

	a := p.Get(64, 100) // [64, 100]
	fill(a, 1)
	bb := p.Get(3200) // [3200]
	fill(bb, 2)
	if kind != latePut {
		check(a, filled(1), 0)
		p.Put(a)
	}
	c := p.Get(3, 3200) // [3, 3200]: too big for a's memory
	fill(c, 3)
	rows := 30
	if kind == otherSize {
		rows = 31
	}
	kept = p.Get(rows, 64) // [rows, 64]
	fill(kept, 4)
	check(bb, filled(2), 0)
	p.Put(bb)
	b.Scale(c, c, 2, 1) // [3, 3200]: 2c + 1
	w := p.Get(3200, 4) // [3200, 4]: where a was
	fill(w, 5)
	e := p.Get(3, 4)                              // [3, 4]
	b.MatMul(e, c, w, nil, engine.MatMulParams{}) // [3, 4]
	// 3200 float32 products of exact values, all positive, summed in
	// float32: within 3200 roundings of 2^-24 each, relative.
	check(e, func(j int) float64 {
		r, col := j/4, j%4
		s := 0.0
		for k := range 3200 {
			s += (2*float64(planValue(3, r*3200+k)) + 1) * float64(planValue(5, k*4+col))
		}
		return s
	}, 3200*math.Exp2(-24))
	check(c, func(j int) float64 { return 2*float64(planValue(3, j)) + 1 }, 0)
	check(w, filled(5), 0)
	p.Put(c, w, e)
	if kind == latePut {
		check(a, filled(1), 0)
		p.Put(a)
	}
	d := p.Get(12800) // [12800]
	fill(d, 6)
	check(d, filled(6), 0)
	p.Put(d)
	check(kept, filled(4), 0)
	return kept
}

// TestPoolPlan checks a planned pool on every backend: passes that follow
// the rehearsal take their tensors from one arena, smaller than best fit's
// buffers and no smaller than what is live at once, and allocate nothing
// after the first; a pass that leaves the plan (another size, or a tensor
// given back later than rehearsed, whose memory the plan reuses) gets best
// fit from there on, correct values, and End reports it, after which Plan
// lays out anew.
func TestPoolPlan(t *testing.T) {
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			align := b.(engine.Suballocator).SubAlign()
			up := func(n int) int64 { return int64(4 * ((n + align - 1) / align * align)) }

			// Best fit: a's buffer cannot hold c, nor b's w; the kept
			// tensor takes a's, e b's.
			bf := nn.NewPool(b)
			bf.Put(planPass(t, b, bf, asRehearsed))
			bestFit := bf.Peak
			bf.Free()
			if want := int64(4 * (6400 + 3200 + 9600 + 12800)); bestFit != want {
				t.Errorf("best fit held %d bytes, want %d", bestFit, want)
			}

			base := current(t, b)
			p := nn.NewPool(b)
			defer p.Free()
			rehearsals := 0
			rehearse := func() {
				p.Plan("pass", func(rb engine.Backend, rp *nn.Pool) {
					rehearsals++
					planPass(t, rb, rp, asRehearsed)
				})
			}
			rehearse()
			// Live at once, at most: c, w and e (the kept tensor has a
			// buffer of its own).
			arena := p.Bytes
			if live := up(9600) + up(12800) + up(12); arena < live || arena >= bestFit {
				t.Errorf("arena of %d bytes: want at least %d live and under best fit's %d", arena, live, bestFit)
			}
			var held int64
			for i := range 3 {
				p.Begin()
				kept := planPass(t, b, p, asRehearsed)
				if !p.End() {
					t.Fatalf("pass %d left the plan", i)
				}
				p.Put(kept)
				if i == 0 {
					held = current(t, b) - base
				} else if now := current(t, b) - base; now != held {
					t.Errorf("pass %d: backend holds %d bytes, %d after the first", i, now, held)
				}
			}
			if want := arena + 4*30*64; held != want || p.Peak != want {
				t.Errorf("backend holds %d bytes, pool peak %d, want the arena and the kept tensor's %d", held, p.Peak, want)
			}

			for _, kind := range []int{otherSize, latePut} {
				p.Begin()
				p.Put(planPass(t, b, p, kind))
				if p.End() {
					t.Errorf("pass of kind %d followed the plan", kind)
				}
				rehearse() // the plan went stale: laid out anew
				p.Begin()
				p.Put(planPass(t, b, p, asRehearsed))
				if !p.End() {
					t.Errorf("after kind %d, a pass as rehearsed left the new plan", kind)
				}
			}
			if rehearsals != 3 {
				t.Errorf("%d rehearsals, want 3 (the first plan and two after stale ones)", rehearsals)
			}
			// Free takes the arena; the next Plan of the key makes it again
			// from the layout it kept, without a rehearsal.
			p.Free()
			if got := current(t, b) - base; got != 0 || p.Bytes != 0 {
				t.Errorf("after Free: backend holds %d bytes, pool says %d", got, p.Bytes)
			}
			rehearse()
			p.Begin()
			p.Put(planPass(t, b, p, asRehearsed))
			if followed := p.End(); !followed || rehearsals != 3 || p.Bytes != arena+4*30*64 {
				t.Errorf("after Free: pass followed the plan %v, %d rehearsals, pool holds %d bytes (want the arena's %d and the kept tensor's)",
					followed, rehearsals, p.Bytes, arena)
			}
			p.Free()
			if got := current(t, b) - base; got != 0 || p.Bytes != 0 {
				t.Errorf("after Free: backend holds %d bytes, pool says %d", got, p.Bytes)
			}
		})
	}
}

// TestPoolHome checks Pool.Home on every backend: a plan's arena placed
// in a region the caller owns is the size ArenaSize reports, takes
// nothing from the backend, keeps its tensors apart (planPass checks
// their values) and touches nothing of the region outside its place;
// a home too small for the arena, or none, gives the arena a buffer of
// its own again.
func TestPoolHome(t *testing.T) {
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			align := b.(engine.Suballocator).SubAlign()
			pass := func(rb engine.Backend, rp *nn.Pool) { planPass(t, rb, rp, asRehearsed) }
			size := nn.ArenaSize(align, pass)
			keptBytes := int64(4 * 30 * 64)
			// A pass first on a pool of its own, so that what the backend
			// keeps for itself (the GL backend's split-K scratch) is made
			// before the counts below.
			warm := nn.NewPool(b)
			warm.Put(planPass(t, b, warm, asRehearsed))
			warm.Free()

			off := 3 * align
			region := b.New(engine.F32, off+size+2*align) // [before, arena, after]
			defer b.Free(region)
			poison := make([]float32, region.Numel())
			for i := range poison {
				poison[i] = -7.25
			}
			b.Write(region, poison)
			base := current(t, b)
			p := nn.NewPool(b)
			defer p.Free()
			p.Home(region, off, size)
			p.Plan("pass", pass)
			p.Begin()
			kept := planPass(t, b, p, asRehearsed)
			if !p.End() {
				t.Fatalf("the pass left its plan")
			}
			p.Put(kept)
			if got := current(t, b) - base; got != keptBytes || p.Bytes != keptBytes {
				t.Errorf("homed arena: backend holds %d more bytes, pool says %d; want the kept tensor's %d alone", got, p.Bytes, keptBytes)
			}
			got, err := b.Read(region)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range got {
				if (i < off || i >= off+size) && v != -7.25 {
					t.Fatalf("region element %d (arena at %d..%d) is %g: the pass wrote outside its place", i, off, off+size, v)
				}
			}
			// Moving the arena while one of its tensors is out is refused.
			p.Plan("pass", pass)
			p.Begin()
			first := p.Get(64, 100) // planPass's first tensor, from the arena
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("Home with an arena's tensor out did not panic")
					}
				}()
				p.Home(nil, 0, 0)
			}()
			p.Put(first)
			p.End()
			p.Free()

			for _, c := range []struct {
				name   string
				region *engine.Tensor
				n      int
			}{{"too small", region, size - 1}, {"none", nil, 0}} {
				p.Home(c.region, off, c.n)
				p.Plan("pass", pass)
				p.Begin()
				p.Put(planPass(t, b, p, asRehearsed))
				p.End()
				if want := 4*int64(size) + keptBytes; p.Bytes != want || current(t, b)-base != want {
					t.Errorf("home %s: pool holds %d bytes, backend %d more, want the arena's own buffer and the kept tensor's: %d",
						c.name, p.Bytes, current(t, b)-base, want)
				}
				p.Free()
			}
		})
	}
}
