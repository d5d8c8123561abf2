package ui

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"glimmer/app"
)

// The image actions: restore parameters from a PNG, Save As, copy
// parameters.

func (w *Window) askPNG() {
	w.files.ask(func(d Dialogs) (string, error) {
		return d.OpenFile("Open a PNG to restore its parameters", w.set.OutputDir, "PNG images", "png")
	}, w.restore)
}

// restore fills the form from the parameters a PNG carries (Glimmer's or
// AUTOMATIC1111's "parameters" text chunk).
func (w *Window) restore(path string) {
	p, err := app.ReadParams(path)
	if err != nil {
		w.showError(err)
		return
	}
	w.form.set(p)
	msg := "Restored the parameters of " + filepath.Base(path)
	if p.Model != "" && w.set.Model != "" && p.Model != modelBase(w.set.Model) {
		msg += fmt.Sprintf(" (made with model %s; the current model is %s)", p.Model, modelBase(w.set.Model))
	}
	w.progress.setStatus(msg + ".")
}

func modelBase(path string) string {
	base := filepath.Base(filepath.Clean(path))
	return base[:len(base)-len(filepath.Ext(base))]
}

var errNoImage = errors.New("no image yet: generate one, or pick one in the gallery")

func (w *Window) askSaveAs() {
	it, ok := w.gallery.current()
	if !ok {
		w.showError(errNoImage)
		return
	}
	name := filepath.Base(it.path)
	if it.path == "" {
		name = app.ExpandName(w.set.NameTemplate, it.params, time.Now(), 0)
	}
	w.files.ask(func(d Dialogs) (string, error) {
		return d.SaveFile("Save image as", w.set.OutputDir, name, "PNG images", "png")
	}, func(path string) { w.saveImage(it, path) })
}

// saveImage writes it with its parameters; it never replaces a file.
func (w *Window) saveImage(it galleryItem, path string) {
	if filepath.Ext(path) == "" {
		path += ".png"
	}
	data, err := app.EncodePNG(it.img, [][2]string{{"parameters", it.params.Format()}})
	if err == nil {
		err = app.WriteNew(path, data)
	}
	if err != nil {
		w.showError(err)
		return
	}
	w.progress.setStatus("Saved " + path)
}

func (w *Window) copyParameters() {
	it, ok := w.gallery.current()
	if !ok {
		w.showError(errNoImage)
		return
	}
	w.app.Clipboard().SetContent(it.params.Format())
	w.progress.setStatus("Copied the parameters of seed " + fmt.Sprint(it.params.Seed) + ".")
}
