package ui

import (
	"sync"
	"time"

	"fyne.io/fyne/v2"

	"glimmer/app"
)

// bridge is the one way from other goroutines into the UI: the runner's
// job events, the trainer's updates and the native file dialogs' answers.
// It is the only code that calls fyne.Do; everything it schedules runs on
// Fyne's goroutine.
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

	// Training updates (see train): the one waiting to be drawn, with
	// the older ones merged into it, and when the last was drawn.
	trainPending *app.TrainUpdate
	trainDrawn   time.Time
	onTrain      func(app.TrainUpdate)
}

// trainGap is the least time between two training updates of the UI: at
// most 20 a second, however fast the trainer's steps come.
const trainGap = 50 * time.Millisecond

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

// train is the Trainer's callback; it runs on the training goroutine and
// never blocks. An update waits until trainGap has passed since the last
// one was drawn; updates arriving meanwhile merge into it (see
// mergeTrain), so each event causes at most one UI update and the UI
// draws at most 20 a second.
func (b *bridge) train(u app.TrainUpdate) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	if b.trainPending != nil {
		m := mergeTrain(*b.trainPending, u)
		b.trainPending = &m
		b.mu.Unlock()
		return
	}
	b.trainPending = &u
	wait := trainGap - time.Since(b.trainDrawn)
	b.mu.Unlock()
	if wait <= 0 {
		b.do(b.drainTrain)
		return
	}
	time.AfterFunc(wait, func() { b.do(b.drainTrain) })
}

// mergeTrain folds a newer update into one not drawn yet: the newer one
// wins, keeping the older one's sample, saved path and message where it
// has none, and the end of a run.
func mergeTrain(old, u app.TrainUpdate) app.TrainUpdate {
	if old.Run != u.Run {
		return u
	}
	if u.Event.Sample == nil {
		u.Event.Sample = old.Event.Sample
	}
	if u.Event.Saved == "" {
		u.Event.Saved = old.Event.Saved
	}
	if u.Event.Message == "" {
		u.Event.Message = old.Event.Message
	}
	if old.Final && !u.Final {
		u.Final, u.State, u.Err = true, old.State, old.Err
	}
	return u
}

// drainTrain draws the waiting training update, on Fyne's goroutine.
func (b *bridge) drainTrain() {
	b.mu.Lock()
	u := b.trainPending
	b.trainPending = nil
	b.trainDrawn = time.Now()
	stopped := b.stopped
	b.mu.Unlock()
	if u != nil && !stopped && b.onTrain != nil {
		b.onTrain(*u)
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
	b.trainPending = nil
	b.mu.Unlock()
}
