package ui

import (
	"html"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"glimmer/engine/fixtures"
	"glimmer/settings"
)

// uiQueue stands in for fyne.Do: the bridge queues UI work here and the
// test runs it on its own goroutine, as Fyne's loop would, so widgets are
// only ever touched from one goroutine.
type uiQueue struct {
	mu sync.Mutex
	q  []func()
}

func (u *uiQueue) do(f func()) {
	u.mu.Lock()
	u.q = append(u.q, f)
	u.mu.Unlock()
}

func (u *uiQueue) drain() {
	for {
		u.mu.Lock()
		if len(u.q) == 0 {
			u.mu.Unlock()
			return
		}
		f := u.q[0]
		u.q = u.q[1:]
		u.mu.Unlock()
		f()
	}
}

// fakeDialogs answers file dialogs with preset paths.
type fakeDialogs struct {
	mu                   sync.Mutex
	file, folder, saveAs string
	asked                []string
}

func (f *fakeDialogs) answer(title, path string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, title)
	return path, nil
}

func (f *fakeDialogs) OpenFile(title, _, _ string, _ ...string) (string, error) {
	return f.answer(title, f.file)
}

func (f *fakeDialogs) OpenFolder(title, _ string) (string, error) { return f.answer(title, f.folder) }

func (f *fakeDialogs) SaveFile(title, _, _, _ string, _ ...string) (string, error) {
	return f.answer(title, f.saveAs)
}

type testWindow struct {
	*Window
	q       *uiQueue
	dialogs *fakeDialogs
	out     string // the output folder
	store   settings.Store
}

// newTestWindow opens the window in Fyne's test app with settings for the
// sd1-tiny fixture on the CPU backend (unless noModel), previews on, and
// a temporary output folder. edit may change the stored settings first.
func newTestWindow(t *testing.T, noModel bool, edit func(settings.Store)) *testWindow {
	t.Helper()
	a := test.NewTempApp(t)
	st := a.Preferences()
	s := settings.Defaults()
	s.OutputDir = t.TempDir()
	s.Backend = "cpu"
	s.Preview = "latent"
	s.Width, s.Height, s.Steps = 64, 64, 3
	if !noModel {
		s.UseModel(fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"))
		s.Tokenizer = fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz")
	}
	s.Save(st)
	if edit != nil {
		edit(st)
	}
	q := &uiQueue{}
	d := &fakeDialogs{}
	w := New(a, Options{Store: st, Dialogs: d, do: q.do})
	w.win.Show()
	t.Cleanup(func() {
		w.Close()
		w.win.Close()
	})
	return &testWindow{Window: w, q: q, dialogs: d, out: s.OutputDir, store: st}
}

// until runs queued UI work until cond holds.
func (tw *testWindow) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		tw.q.drain()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (status %q, progress %q)", what, tw.progress.status.Text, tw.progress.text)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// idle waits until no job runs.
func (tw *testWindow) idle(t *testing.T) {
	t.Helper()
	tw.until(t, "the job to end", func() bool { return tw.job == 0 })
}

// overlays is the number of dialogs showing.
func (tw *testWindow) overlays() int { return len(tw.win.Canvas().Overlays().List()) }

// dismiss closes every dialog.
func (tw *testWindow) dismiss() {
	o := tw.win.Canvas().Overlays()
	for o.Top() != nil {
		o.Remove(o.Top())
	}
}

// topText is the text in the top dialog, lower-cased, for asserting what
// an error says.
func (tw *testWindow) topText() string {
	top := tw.win.Canvas().Overlays().Top()
	if top == nil {
		return ""
	}
	var texts []string
	for _, line := range strings.Split(test.RenderObjectToMarkup(top), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "<text") && strings.HasSuffix(line, "</text>") {
			texts = append(texts, html.UnescapeString(line[strings.Index(line, ">")+1:len(line)-len("</text>")]))
		}
	}
	return strings.ToLower(strings.Join(texts, " | "))
}
