package nn

import (
	"cmp"
	"fmt"
	"slices"

	"glimmer/engine"
)

// A pass that repeats (a U-Net step: the same Gets and Puts, in the same
// order, every time) need not take its tensors best fit. Best fit cannot
// see ahead, so a buffer made for a small tensor early is too small for a
// large one later and the pool grows past what is ever live at once: SD
// 1.5's U-Net at 512x512 with CFG held 186 MB of buffers for at most 89 MB
// of live tensors. Plan instead rehearses the pass on ShapeOnly, places every
// tensor the pass gives back at an offset in one arena, largest first, at
// the lowest offset clear of every tensor live at the same time, and
// makes the arena: 89 MB for that U-Net (TestPlanSD15UNet). Begin and End
// bracket the real passes, whose Gets the plan serves in order.

// plan is a rehearsed pass laid out in an arena.
type plan struct {
	key   string
	size  int            // the arena's elements
	arena *engine.Tensor // [size]: the backend's, cut with Sub; nil after Free
	root  *engine.Tensor // what the Gets are cut from: arena, or the pool's home (Home) that arena is a Sub of
	at    int            // arena's first element in root
	sub   engine.Suballocator
	gets  []plannedGet // the pass's Gets in order
	out   []bool       // gets[k]'s tensor is handed out
	nOut  int          // how many are
}

// arenaRef is a tensor handed out from a plan's arena: its plan and Get.
type arenaRef struct {
	pl *plan
	k  int
}

// plannedGet is a rehearsed Get: its element count and offset in the
// arena (-1: the pass kept it, so it takes a buffer of its own), and the
// earlier Gets whose memory it reuses, each of which must be back in the
// pool before it is handed out.
type plannedGet struct {
	n, off int
	reuses []int
}

// recording is what a rehearsal saw: for each Get its element count and
// the event index of its Put (-1 while out), events counting Gets and
// Puts together.
type recording struct {
	n, start, end []int
	events        int
	index         map[engine.Storage]int // a handed-out tensor's Get
}

func (r *recording) get(t *engine.Tensor, n int) {
	r.index[t.Storage()] = len(r.n)
	r.n = append(r.n, n)
	r.start = append(r.start, r.events)
	r.end = append(r.end, -1)
	r.events++
}

func (r *recording) put(t *engine.Tensor) {
	r.end[r.index[t.Storage()]] = r.events
	r.events++
}

// layout places the recorded Gets given back within the pass in an arena
// (offsets multiples of align elements) and returns them with the
// arena's size in elements.
func (r *recording) layout(align int) ([]plannedGet, int) {
	gets := make([]plannedGet, len(r.n))
	order := []int{}
	for i, n := range r.n {
		gets[i] = plannedGet{n: n, off: -1}
		if r.end[i] >= 0 {
			order = append(order, i)
		}
	}
	// Largest first (then in pass order): the big tensors settle the
	// arena's size and the small ones fill the gaps they leave.
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(r.n[b], r.n[a]) })
	// An empty tensor takes an element, so every range lies in the arena.
	span := func(i int) int { return engine.AlignUp(max(r.n[i], 1), align) }
	size := 0
	var placed []int
	for _, i := range order {
		// The placed tensors live while i is, by offset.
		var clash []int
		for _, j := range placed {
			if r.start[j] < r.end[i] && r.start[i] < r.end[j] {
				clash = append(clash, j)
			}
		}
		slices.SortFunc(clash, func(a, b int) int { return cmp.Compare(gets[a].off, gets[b].off) })
		off := 0
		for _, j := range clash {
			if off+span(i) <= gets[j].off {
				break
			}
			off = max(off, gets[j].off+span(j))
		}
		gets[i].off = off
		size = max(size, off+span(i))
		placed = append(placed, i)
	}
	// A Get reuses the memory of the earlier Gets it overlaps there.
	for _, i := range placed {
		for _, j := range placed {
			if r.start[j] < r.start[i] && gets[j].off < gets[i].off+span(i) && gets[i].off < gets[j].off+span(j) {
				gets[i].reuses = append(gets[i].reuses, j)
			}
		}
	}
	return gets, size
}

// Plan lays out the pass that pass makes, under key, unless the plan in
// use has that key already: pass runs once on ShapeOnly with a pool of
// its own (Rehearsing reports true there), and the pool makes an arena
// for the Gets it gave back; those it kept come best fit, as before. A
// pass that must not change what it runs on in a rehearsal (a cache
// filled at the first real pass, say) asks Rehearsing. On a backend
// without engine.Suballocator Plan does nothing.
func (p *Pool) Plan(key string, pass func(b engine.Backend, rec *Pool)) {
	if pl := p.plan; pl != nil && pl.key == key {
		if pl.arena == nil && pl.size > 0 { // Free took it: the layout stands
			p.Trim()
			p.makeArena(pl)
		}
		return
	}
	sub, ok := p.b.(engine.Suballocator)
	if !ok {
		return
	}
	gets, size := rehearse(sub.SubAlign(), pass)
	p.dropPlan()
	p.Trim()
	pl := &plan{key: key, sub: sub, gets: gets, size: size, out: make([]bool, len(gets))}
	p.makeArena(pl)
	p.plan = pl
}

// rehearse runs pass on ShapeOnly with a recording pool of its own and
// lays out the Gets it gave back, at offsets of align elements.
func rehearse(align int, pass func(b engine.Backend, rec *Pool)) ([]plannedGet, int) {
	rec := NewPool(ShapeOnly{})
	rec.rec = &recording{index: map[engine.Storage]int{}}
	pass(ShapeOnly{}, rec)
	return rec.rec.layout(align)
}

// ArenaSize is the arena, in elements, that Plan on a backend with
// alignment align lays pass out in.
func ArenaSize(align int, pass func(b engine.Backend, rec *Pool)) int {
	_, size := rehearse(align, pass)
	return size
}

// Home makes the pool cut the arenas of its plans out of region (an F32
// tensor of the backend's, which the caller owns) from element off where
// they take at most n elements, rather than allocate buffers of their
// own; a larger arena still gets its own. The plan in use gives up its
// arena now and takes its new one at its next Plan, so no tensor of it
// may be out (a programmer error: Home panics). A nil region ends it.
func (p *Pool) Home(region *engine.Tensor, off, n int) {
	if len(p.fromArena) > 0 {
		panic(fmt.Sprintf("nn: Pool.Home with %d tensors of an arena still out", len(p.fromArena)))
	}
	p.home, p.homeOff, p.homeN = region, off, n
	if pl := p.plan; pl != nil {
		p.freeArena(pl)
	}
}

func (p *Pool) makeArena(pl *plan) {
	switch {
	case pl.size == 0:
	case p.home != nil && pl.size <= p.homeN:
		pl.arena = pl.sub.Sub(p.home, p.homeOff, engine.F32, pl.size) // [size]
		pl.root, pl.at = p.home, p.homeOff
	default:
		pl.arena = p.b.New(engine.F32, pl.size) // [size]
		pl.root, pl.at = pl.arena, 0
		p.Bytes += int64(4 * pl.size)
		p.Peak = max(p.Peak, p.Bytes)
	}
}

// Rehearsing reports whether the pool records a rehearsal for Plan.
func (p *Pool) Rehearsing() bool { return p.rec != nil }

// Begin starts a pass of the plan: its Gets come from the arena, in the
// order rehearsed. A Get that differs from the rehearsal's (another size,
// or memory still held that the plan reuses) ends the plan for the rest
// of the pass, and that Get and the rest come best fit.
func (p *Pool) Begin() {
	p.pass = passState{on: p.plan != nil && (p.plan.arena != nil || p.plan.size == 0)}
}

// End ends a pass; it reports whether the pass followed the plan to the
// end. A pass that did not leaves the plan stale: the next Plan lays the
// pass out again, whatever its key.
func (p *Pool) End() bool {
	followed := !p.pass.on || !p.pass.left && p.pass.next == len(p.plan.gets)
	if p.pass.on && !followed {
		p.plan.key = "" // stale: no key matches it
	}
	p.pass = passState{}
	return followed
}

// passState is a planned pass under way: the index of its next Get, and
// whether it has left the plan.
type passState struct {
	on, left bool
	next     int
}

// planned hands out the pass's next Get from the arena when it matches
// the plan; ok is false for a Get the plan does not place (the rest of
// the pass, once it leaves the plan).
func (p *Pool) planned(n int, shape []int) (t *engine.Tensor, ok bool) {
	if !p.pass.on || p.pass.left {
		return nil, false
	}
	k := p.pass.next
	p.pass.next++
	if k >= len(p.plan.gets) || p.plan.gets[k].n != n {
		p.pass.left = true
		return nil, false
	}
	g := p.plan.gets[k]
	if g.off < 0 {
		return nil, false
	}
	pl := p.plan
	for _, j := range g.reuses {
		if pl.out[j] {
			p.pass.left = true
			return nil, false
		}
	}
	t = pl.sub.Sub(pl.root, pl.at+g.off, engine.F32, shape...)
	pl.out[k] = true
	pl.nOut++
	p.fromArena[t.Storage()] = arenaRef{pl, k}
	return t, true
}

// putArena takes back a tensor handed out from an arena; ok is false for
// any other. An arena retired meanwhile (dropPlan) is freed with its
// last tensor.
func (p *Pool) putArena(t *engine.Tensor) (ok bool) {
	r, ok := p.fromArena[t.Storage()]
	if !ok {
		return false
	}
	delete(p.fromArena, t.Storage())
	r.pl.out[r.k] = false
	r.pl.nOut--
	if r.pl != p.plan && r.pl.nOut == 0 {
		p.freeArena(r.pl)
	}
	return true
}

// dropPlan ends the plan in use: its arena is freed now, or, while
// tensors from it are still out, when the last comes back.
func (p *Pool) dropPlan() {
	if pl := p.plan; pl != nil && pl.nOut == 0 {
		p.freeArena(pl)
	}
	p.plan = nil
}

func (p *Pool) freeArena(pl *plan) {
	if pl.arena != nil && pl.root == pl.arena { // a buffer of its own, not a Sub of a home
		p.b.Free(pl.arena)
		p.Bytes -= int64(4 * pl.arena.Numel())
	}
	pl.arena = nil
}
