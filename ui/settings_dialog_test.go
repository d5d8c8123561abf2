package ui

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"glimmer/settings"
)

func TestSettingsDialog(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	d := tw.newSettingsDialog()
	d.dlg.Show()
	out := filepath.Join(t.TempDir(), "new-out")
	d.outputDir.SetText(out)
	d.template.SetText("{seed}")
	d.backend.SetSelected("gl")
	d.preview.SetSelected("none")
	d.steps.SetText("42")
	d.cfg.SetText("4.5")
	d.width.SetText("640")
	d.sampler.SetSelected("DDIM")
	d.offload.SetChecked(true)
	tw.applySettings(d)
	if tw.overlays() != 1 { // the settings dialog itself
		t.Fatalf("saving valid settings: %s", tw.topText())
	}
	s, notices := settings.Load(tw.store)
	if len(notices) != 0 || s.OutputDir != out || s.NameTemplate != "{seed}" || s.Backend != "gl" || s.Preview != "none" ||
		s.Steps != 42 || s.CFG != 4.5 || s.Width != 640 || s.Sampler != "ddim" || !s.Offload {
		t.Errorf("stored %+v, notices %q", s, notices)
	}
	if !reflect.DeepEqual(tw.set, s) {
		t.Errorf("window settings %+v, stored %+v", tw.set, s)
	}

	// Invalid values are flagged in the dialog and not saved.
	for _, c := range []struct {
		edit func(*settingsDialog)
		want string
	}{
		{func(d *settingsDialog) { d.template.SetText("{bogus}") }, "unknown field"},
		{func(d *settingsDialog) { d.outputDir.SetText("relative") }, "not an absolute path"},
		{func(d *settingsDialog) { d.steps.SetText("0") }, "steps"},
		{func(d *settingsDialog) { d.cfg.SetText("7.2") }, "multiple of 0.5"},
		{func(d *settingsDialog) { d.height.SetText("100") }, "multiple of 8"},
		{func(d *settingsDialog) { d.preview.SetSelected("taesd") }, "taesd"},
		{func(d *settingsDialog) { d.sampler.SetSelected("DDIM"); d.schedule.SetSelected("Karras schedule") }, "karras"},
	} {
		tw.dismiss()
		d := tw.newSettingsDialog()
		d.dlg.Show()
		c.edit(d)
		tw.applySettings(d)
		if !strings.Contains(tw.topText(), c.want) {
			t.Errorf("want an error with %q, got %s", c.want, tw.topText())
		}
		if s2, _ := settings.Load(tw.store); !reflect.DeepEqual(s2, s) {
			t.Errorf("invalid settings were stored: %+v", s2)
		}
	}
	tw.dismiss()
	d = tw.newSettingsDialog()
	d.template.SetText("{bogus}")
	if d.template.Validate() == nil {
		t.Error("the template entry accepts {bogus}")
	}
}

func TestSettingsNoticesAtStart(t *testing.T) {
	tw := newTestWindow(t, true, func(st settings.Store) {
		st.SetString("steps", "9000")
		st.SetString("backend", "metal")
	})
	if tw.overlays() != 1 {
		t.Fatalf("%d dialogs at start", tw.overlays())
	}
	text := tw.topText()
	if !strings.Contains(text, "9000") || !strings.Contains(text, "metal") {
		t.Errorf("the notices dialog does not name the bad values: %s", text)
	}
	if tw.set.Steps != settings.Defaults().Steps || tw.set.Backend != "auto" || tw.form.steps.Value != float64(settings.Defaults().Steps) {
		t.Errorf("bad values not replaced: %+v", tw.set)
	}
}
