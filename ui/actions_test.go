package ui

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"

	"glimmer/app"
)

// writePNG writes a small PNG with the given text chunks.
func writePNG(t *testing.T, name string, text [][2]string) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	img.Set(1, 1, color.NRGBA{255, 0, 0, 255})
	data, err := app.EncodePNG(img, text)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// An AUTOMATIC1111 PNG's parameters: the old "DPM++ 2M Karras" sampler
// name, a multi-line prompt, a size off the presets.
const a1111Text = `masterpiece, a castle on a hill
at sunset
Negative prompt: low quality, blurry
Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3141592653, Size: 576x832, Model hash: abc123, Model: dreamshaper_8, Version: v1.9.4`

func TestRestoreFromPNG(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	f := tw.form
	path := writePNG(t, "castle.png", [][2]string{{"Software", "x"}, {"parameters", a1111Text}})
	tw.dialogs.file = path
	test.Tap(tw.openPNG)
	tw.until(t, "the restore", func() bool { return f.prompt.Text != "" })
	want := map[string]string{
		"prompt":   "masterpiece, a castle on a hill\nat sunset",
		"negative": "low quality, blurry",
		"sampler":  "DPM++ 2M", "schedule": "Karras schedule",
		"steps": "28", "cfg": "6.5", "seed": "3141592653", "width": "576", "height": "832",
	}
	got := map[string]string{
		"prompt": f.prompt.Text, "negative": f.negative.Text,
		"sampler": f.sampler.Selected, "schedule": f.schedule.Selected,
		"steps": strings.TrimSpace(f.stepsLabel.Text), "cfg": strings.TrimSpace(f.cfgLabel.Text),
		"seed": f.seed.Text, "width": f.width.Text, "height": f.height.Text,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s restored as %q, want %q", k, got[k], v)
		}
	}
	if !f.lock.Checked {
		t.Error("a restored seed is not locked")
	}
	p, _, err := f.params()
	if err != nil || p.Seed != 3141592653 || p.Steps != 28 || p.Sampler != "dpmpp_2m" || p.Schedule != "karras" {
		t.Errorf("restored form gives %+v, %v", p, err)
	}
	if !strings.Contains(tw.progress.status.Text, "castle.png") {
		t.Errorf("status %q", tw.progress.status.Text)
	}

	// Dropping a Glimmer PNG on the window restores it too.
	own := app.DefaultParams()
	own.Prompt, own.Seed, own.Steps, own.Sampler, own.Width, own.Height = "a fox", 7, 12, "ddim", 64, 128
	dropped := writePNG(t, "fox.png", [][2]string{{"parameters", own.Format()}})
	tw.dropped(fyne.NewPos(10, 10), []fyne.URI{storage.NewFileURI(dropped)})
	if p, _, err := f.params(); err != nil || p.Prompt != "a fox" || p.Seed != 7 || p.Sampler != "ddim" || p.Height != 128 {
		t.Errorf("after the drop: %+v, %v", p, err)
	}

	// A PNG without parameters, a file that is no PNG: error dialogs, the
	// form is kept.
	for _, bad := range []string{
		writePNG(t, "plain.png", nil),
		filepath.Join(t.TempDir(), "missing.png"),
	} {
		tw.dropped(fyne.Position{}, []fyne.URI{storage.NewFileURI(bad)})
		if tw.overlays() != 1 || !strings.Contains(tw.topText(), filepath.Base(bad)) {
			t.Errorf("%s: %d dialogs: %s", filepath.Base(bad), tw.overlays(), tw.topText())
		}
		tw.dismiss()
		if f.prompt.Text != "a fox" {
			t.Errorf("a bad file changed the prompt to %q", f.prompt.Text)
		}
	}
	notPNG := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notPNG, []byte("hi"), 0o644)
	tw.dropped(fyne.Position{}, []fyne.URI{storage.NewFileURI(notPNG)})
	if !strings.Contains(tw.topText(), "drop a png") {
		t.Errorf("dropping a text file: %s", tw.topText())
	}
}

func TestNoImageActions(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	test.Tap(tw.saveAs)
	if !strings.Contains(tw.topText(), "no image yet") {
		t.Errorf("Save As with no image: %s", tw.topText())
	}
	tw.dismiss()
	test.Tap(tw.copyParams)
	if !strings.Contains(tw.topText(), "no image yet") {
		t.Errorf("Copy parameters with no image: %s", tw.topText())
	}
}
