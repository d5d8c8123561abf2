package ui

import (
	"sync"

	"fyne.io/fyne/v2"

	"glimmer/app"
)

// bridge is the one way from other goroutines into the UI: the runner's
// job events and the native file dialogs' answers. It is the only code
// that calls fyne.Do; everything it schedules runs on Fyne's goroutine.
//
// Step events are coalesced: at most one UI update is scheduled per step,
// and when the UI falls behind, only the newest step is drawn.
type bridge struct {
	do func(func()) // fyne.Do; tests run the queue on their own goroutine

	mu      sync.Mutex
	pending *app.Event // newest step not drawn yet
	stopped bool       // the window is closing: drop everything
	onEvent func(app.Event)
}

func newBridge(onEvent func(app.Event)) *bridge {
	return &bridge{do: fyne.Do, onEvent: onEvent}
}

// event is the runner's callback; it runs on the runner's goroutine and
// never blocks on the UI.
func (b *bridge) event(e app.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	if e.Kind == app.EventStep {
		scheduled := b.pending != nil
		b.pending = &e
		if !scheduled {
			b.do(b.flushStep)
		}
		return
	}
	// Draw a step still waiting before this event, so events keep their
	// order; the step's own scheduled flush then finds nothing to do.
	step := b.pending
	b.pending = nil
	b.do(func() {
		if step != nil {
			b.onEvent(*step)
		}
		b.onEvent(e)
	})
}

func (b *bridge) flushStep() {
	b.mu.Lock()
	step := b.pending
	b.pending = nil
	stopped := b.stopped
	b.mu.Unlock()
	if step != nil && !stopped {
		b.onEvent(*step)
	}
}

// run schedules f on Fyne's goroutine (answers of native dialogs).
func (b *bridge) run(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.stopped {
		b.do(f)
	}
}

// stop drops every later event and answer.
func (b *bridge) stop() {
	b.mu.Lock()
	b.stopped = true
	b.pending = nil
	b.mu.Unlock()
}
