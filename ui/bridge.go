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
// Events wait in order in a queue that one scheduled drain empties. A step
// replaces a step still waiting at the queue's end, so there is at most
// one UI update per step, and when the UI falls behind only the newest
// step is drawn.
type bridge struct {
	do func(func()) // fyne.Do; tests run the queue on their own goroutine

	mu      sync.Mutex
	queue   []app.Event // events not shown yet, oldest first
	stopped bool        // the window is closing: drop everything
	onEvent func(app.Event)
}

func newBridge(onEvent func(app.Event)) *bridge {
	return &bridge{do: fyne.Do, onEvent: onEvent}
}

// event is the runner's callback; it runs on the runner's goroutine and
// never blocks on the UI. The lock is never held while scheduling: after
// Fyne's loop has ended, fyne.Do runs the function at once.
func (b *bridge) event(e app.Event) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	n := len(b.queue)
	if e.Kind == app.EventStep && n > 0 && b.queue[n-1].Kind == app.EventStep {
		b.queue[n-1] = e
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, e)
	b.mu.Unlock()
	if n == 0 {
		b.do(b.drain)
	}
}

// drain shows the waiting events, on Fyne's goroutine.
func (b *bridge) drain() {
	b.mu.Lock()
	q := b.queue
	b.queue = nil
	stopped := b.stopped
	b.mu.Unlock()
	if stopped {
		return
	}
	for _, e := range q {
		b.onEvent(e)
	}
}

// run schedules f on Fyne's goroutine (answers of native dialogs).
func (b *bridge) run(f func()) {
	b.do(func() {
		if !b.isStopped() {
			f()
		}
	})
}

func (b *bridge) isStopped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped
}

// stop drops every later event and answer.
func (b *bridge) stop() {
	b.mu.Lock()
	b.stopped = true
	b.queue = nil
	b.mu.Unlock()
}
