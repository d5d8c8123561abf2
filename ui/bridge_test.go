package ui

import (
	"testing"

	"glimmer/app"
)

func TestBridgeCoalescesSteps(t *testing.T) {
	var seen []app.Event
	b := newBridge(func(e app.Event) { seen = append(seen, e) })
	q := &uiQueue{}
	b.do = q.do

	// Steps arriving faster than the UI runs: only the newest is drawn,
	// and an event after them keeps its place behind it.
	for i := 1; i <= 3; i++ {
		b.event(app.Event{Kind: app.EventStep, Step: i, Steps: 5})
	}
	b.event(app.Event{Kind: app.EventImage, Index: 0})
	b.event(app.Event{Kind: app.EventStep, Step: 4, Steps: 5})
	q.drain()
	want := []struct {
		kind app.EventKind
		step int
	}{{app.EventStep, 3}, {app.EventImage, 0}, {app.EventStep, 4}}
	if len(seen) != len(want) {
		t.Fatalf("%d UI updates, want %d: %+v", len(seen), len(want), seen)
	}
	for i, w := range want {
		if seen[i].Kind != w.kind || seen[i].Step != w.step {
			t.Errorf("update %d: %v step %d, want %v step %d", i, seen[i].Kind, seen[i].Step, w.kind, w.step)
		}
	}

	// A UI that keeps up gets every step, one update each.
	seen = nil
	for i := 1; i <= 3; i++ {
		b.event(app.Event{Kind: app.EventStep, Step: i})
		q.drain()
	}
	if len(seen) != 3 {
		t.Errorf("%d updates for 3 steps drawn in time", len(seen))
	}

	// After stop nothing reaches the UI, not even work already queued.
	seen = nil
	b.event(app.Event{Kind: app.EventFinished})
	b.run(func() { seen = append(seen, app.Event{}) })
	b.stop()
	b.event(app.Event{Kind: app.EventStep, Step: 1})
	q.drain()
	if len(seen) != 0 {
		t.Errorf("%d updates after stop", len(seen))
	}
}
