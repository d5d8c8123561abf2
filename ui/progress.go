package ui

import (
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"glimmer/app"
)

// progressView is the progress bar (step x/y, it/s, ETA) and the status
// line under it (loading stages, notices, where an image was saved).
type progressView struct {
	bar     *widget.ProgressBar
	status  *widget.Label
	text    string
	content fyne.CanvasObject
}

func newProgressView() *progressView {
	p := &progressView{bar: widget.NewProgressBar(), status: widget.NewLabel("Ready.")}
	p.bar.TextFormatter = func() string { return p.text }
	p.status.Truncation = fyne.TextTruncateEllipsis
	p.content = container.NewVBox(p.bar, p.status)
	return p
}

// step shows one step's progress over the whole batch.
func (p *progressView) step(e app.Event) {
	done := e.Index*e.Steps + e.Step
	total := max(e.Count, 1) * e.Steps
	p.set(stepText(e), float64(done)/float64(total))
}

func stepText(e app.Event) string {
	s := fmt.Sprintf("step %d/%d", e.Step, e.Steps)
	if e.Count > 1 {
		s = fmt.Sprintf("image %d/%d, %s", e.Index+1, e.Count, s)
	}
	if e.Step == e.Steps && e.Index+1 == max(e.Count, 1) {
		return fmt.Sprintf("%s · %.2f it/s · decoding…", s, e.Rate)
	}
	return fmt.Sprintf("%s · %.2f it/s · ETA %s", s, e.Rate, formatETA(e.ETA))
}

func formatETA(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// reset empties the bar with a text on it.
func (p *progressView) reset(text string) {
	p.set(text, 0)
}

// finish fills the bar.
func (p *progressView) finish(text string) {
	p.set(text, 1)
}

func (p *progressView) set(text string, v float64) {
	p.text = text
	p.bar.Value = v
	p.bar.Refresh()
}

func (p *progressView) setStatus(s string) { p.status.SetText(s) }
