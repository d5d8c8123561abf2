package ui

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"glimmer/app"
)

// TestGenerate runs a whole generation through the window: the sd1-tiny
// fixture (random weights) on the CPU backend at 64x64.
func TestGenerate(t *testing.T) {
	tw := newTestWindow(t, false, nil)
	f := tw.form
	test.Type(f.prompt, "a lighthouse at dusk")
	test.Type(f.negative, "fog")
	f.lock.SetChecked(true)
	f.seed.SetText("1234")
	f.batch.SetText("2")

	previews := 0
	var steps []string
	inner := tw.bridge.onEvent
	tw.bridge.onEvent = func(e app.Event) {
		inner(e)
		if e.Kind == app.EventStep {
			steps = append(steps, tw.progress.text)
			if e.Preview != nil && tw.view.shown == e.Preview {
				previews++
			}
		}
	}

	start := time.Now()
	test.Tap(f.generate)
	if !f.generate.Disabled() || f.cancel.Disabled() {
		t.Errorf("while running: generate disabled %v, cancel disabled %v", f.generate.Disabled(), f.cancel.Disabled())
	}
	tw.idle(t)
	t.Logf("load + 2 images (3 steps, 64x64, CPU) through the window: %v", time.Since(start).Round(time.Millisecond))
	if tw.overlays() != 0 {
		t.Fatalf("a dialog: %s", tw.topText())
	}
	if f.generate.Disabled() || !f.cancel.Disabled() {
		t.Error("buttons not back to idle")
	}

	// Progress: one update per step at most, step x/y with it/s and ETA.
	if len(steps) == 0 || len(steps) > 6 {
		t.Errorf("%d step updates for 6 steps", len(steps))
	}
	for _, s := range steps {
		if !strings.Contains(s, "step ") || !strings.Contains(s, "it/s") || !strings.Contains(s, "ETA") && !strings.HasSuffix(s, "decoding…") {
			t.Errorf("progress text %q", s)
		}
	}
	if previews == 0 {
		t.Error("no preview was shown")
	}
	if tw.progress.bar.Value != 1 || !strings.Contains(tw.progress.text, "done: 2") {
		t.Errorf("progress at the end: %g %q", tw.progress.bar.Value, tw.progress.text)
	}

	// The gallery holds both images; the last is shown large.
	if len(tw.gallery.items) != 2 {
		t.Fatalf("%d images in the gallery", len(tw.gallery.items))
	}
	last := tw.gallery.items[1]
	if tw.view.shown != last.img || last.img.Bounds() != image.Rect(0, 0, 64, 64) {
		t.Errorf("the large view shows %v, not the last result", tw.view.shown)
	}
	if !strings.Contains(tw.view.caption.Text, "seed 1235") {
		t.Errorf("caption %q", tw.view.caption.Text)
	}
	for i, it := range tw.gallery.items {
		if it.params.Seed != 1234+int64(i) || it.params.Prompt != "a lighthouse at dusk" || it.params.Negative != "fog" {
			t.Errorf("image %d params %+v", i, it.params)
		}
		if filepath.Dir(it.path) != tw.out {
			t.Errorf("image %d saved to %s, not the output folder %s", i, it.path, tw.out)
		}
		p, err := app.ReadParams(it.path)
		if err != nil {
			t.Fatal(err)
		}
		if p != it.params {
			t.Errorf("image %d: the PNG says %+v, want %+v", i, p, it.params)
		}
	}
	if !strings.Contains(tw.progress.status.Text, "Saved "+last.path) {
		t.Errorf("status %q", tw.progress.status.Text)
	}

	// Tapping the first thumbnail shows it; Copy parameters copies its.
	test.Tap(tw.gallery.thumbs[0])
	if tw.view.shown != tw.gallery.items[0].img {
		t.Error("tapping a thumbnail did not show it")
	}
	test.Tap(tw.copyParams)
	if got := tw.app.Clipboard().Content(); got != tw.gallery.items[0].params.Format() {
		t.Errorf("clipboard %q", got)
	}

	// Save As writes a copy with the parameters, and never over a file.
	dst := filepath.Join(t.TempDir(), "copy")
	tw.dialogs.saveAs = dst
	test.Tap(tw.saveAs)
	tw.until(t, "Save As", func() bool { _, err := os.Stat(dst + ".png"); return err == nil })
	if p, err := app.ReadParams(dst + ".png"); err != nil || p != tw.gallery.items[0].params {
		t.Errorf("saved copy: %+v, %v", p, err)
	}
	tw.dialogs.saveAs = dst + ".png"
	test.Tap(tw.saveAs)
	tw.until(t, "the refusal to overwrite", func() bool { return tw.overlays() > 0 })
	if !strings.Contains(tw.topText(), "already exists") {
		t.Errorf("Save As over a file: %s", tw.topText())
	}
}

// TestCancelThenGenerate cancels a long run with Esc after its first step;
// the window stays usable and a second generation works.
func TestCancelThenGenerate(t *testing.T) {
	tw := newTestWindow(t, false, nil)
	f := tw.form
	test.Type(f.prompt, "a slow picture")
	f.steps.SetValue(150)
	test.Tap(f.generate)
	tw.until(t, "the first step", func() bool { return strings.HasPrefix(tw.progress.text, "step ") })
	tw.win.Canvas().Focus(f.prompt)
	f.prompt.TypedKey(&fyne.KeyEvent{Name: fyne.KeyEscape})
	if !strings.Contains(tw.progress.status.Text, "Cancelling") {
		t.Errorf("status after Esc: %q", tw.progress.status.Text)
	}
	tw.idle(t)
	if tw.progress.text != "cancelled" || len(tw.gallery.items) != 0 || tw.overlays() != 0 {
		t.Errorf("after cancel: progress %q, %d images, %d dialogs", tw.progress.text, len(tw.gallery.items), tw.overlays())
	}
	if files, _ := os.ReadDir(tw.out); len(files) != 0 {
		t.Errorf("a cancelled run wrote %d files", len(files))
	}
	if f.generate.Disabled() || !f.cancel.Disabled() {
		t.Error("buttons not back to idle after cancel")
	}

	f.steps.SetValue(2)
	test.Tap(f.generate)
	tw.idle(t)
	if len(tw.gallery.items) != 1 || tw.overlays() != 0 {
		t.Fatalf("second run: %d images, dialog %s", len(tw.gallery.items), tw.topText())
	}
	if files, _ := os.ReadDir(tw.out); len(files) != 1 {
		t.Errorf("%d files after the second run", len(files))
	}
}

// TestPickModel opens a model with the (fake) native dialog: it becomes
// the model, goes first in the recent list and is loaded at once; a model
// that fails to load shows the loader's error.
func TestPickModel(t *testing.T) {
	tw := newTestWindow(t, false, nil)
	model := tw.set.Model
	tw.dialogs.folder = filepath.Join(filepath.Dir(model), "diffusers")
	test.Tap(tw.model.openFolder)
	tw.until(t, "the pick", func() bool { return tw.set.Model == tw.dialogs.folder })
	tw.idle(t)
	if tw.set.Model != tw.dialogs.folder || tw.model.recent.Selected != tw.dialogs.folder || tw.store.String("model") != tw.dialogs.folder {
		t.Errorf("model %s, selected %s, stored %s", tw.set.Model, tw.model.recent.Selected, tw.store.String("model"))
	}
	if tw.overlays() != 0 || !strings.HasPrefix(tw.progress.status.Text, "Loaded diffusers on ") {
		t.Errorf("after loading: status %q, dialog %s", tw.progress.status.Text, tw.topText())
	}

	bad := filepath.Join(t.TempDir(), "broken.safetensors")
	if err := os.WriteFile(bad, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	tw.dialogs.file = bad
	test.Tap(tw.model.openFile)
	tw.until(t, "the pick", func() bool { return tw.set.Model == bad })
	tw.idle(t)
	if tw.overlays() != 1 || !strings.Contains(tw.topText(), "broken.safetensors") {
		t.Errorf("broken model: %d dialogs: %s", tw.overlays(), tw.topText())
	}
	tw.dismiss()

	// The recent list switches back.
	tw.model.recent.SetSelected(model)
	tw.idle(t)
	if tw.set.Model != model || len(tw.set.Recent) != 3 || tw.set.Recent[0] != model {
		t.Errorf("after picking a recent model: %s, recent %q", tw.set.Model, tw.set.Recent)
	}
	// Picking the loaded model again loads nothing and says it is ready.
	tw.pickModel(model)
	tw.idle(t)
	if tw.progress.text != "model ready" || tw.overlays() != 0 {
		t.Errorf("the same model again: progress %q, dialog %s", tw.progress.text, tw.topText())
	}
}
