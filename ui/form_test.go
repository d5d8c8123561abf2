package ui

import (
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"

	"glimmer/app"
	"glimmer/settings"
)

func TestFormDefaultsFromSettings(t *testing.T) {
	tw := newTestWindow(t, true, func(st settings.Store) {
		st.SetString("sampler", "dpmpp_2m")
		st.SetString("schedule", "karras")
		st.SetString("steps", "33")
		st.SetString("cfg", "6.5")
		st.SetString("width", "768")
		st.SetString("height", "448")
	})
	f := tw.form
	if f.sampler.Selected != "DPM++ 2M" || f.schedule.Selected != "Karras schedule" || f.steps.Value != 33 || f.cfg.Value != 6.5 ||
		f.width.Text != "768" || f.height.Text != "448" || f.batch.Text != "1" || f.lock.Checked {
		t.Errorf("form from settings: %s %s %v %v %sx%s batch %s lock %v", f.sampler.Selected, f.schedule.Selected,
			f.steps.Value, f.cfg.Value, f.width.Text, f.height.Text, f.batch.Text, f.lock.Checked)
	}
	if strings.TrimSpace(f.stepsLabel.Text) != "33" || strings.TrimSpace(f.cfgLabel.Text) != "6.5" {
		t.Errorf("labels %q, %q", f.stepsLabel.Text, f.cfgLabel.Text)
	}
	if tw.overlays() != 0 {
		t.Errorf("a dialog at start with valid settings: %s", tw.topText())
	}
}

func TestFormValidation(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	f := tw.form
	test.Type(f.prompt, "a red fox")
	if _, _, err := f.params(); err != nil {
		t.Fatalf("default form: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func()
		want string // "" = valid
	}{
		{"empty prompt", func() { f.prompt.SetText("  ") }, "Prompt"},
		{"width not a multiple of 8", func() { f.width.SetText("100") }, "Width: 100 is not a multiple of 8"},
		{"custom width, a multiple of 8", func() { f.width.SetText("72") }, ""},
		{"height too small", func() { f.height.SetText("56") }, "Height: 56 is not between 64 and 2048"},
		{"height too large", func() { f.height.SetText("2056") }, "Height"},
		{"height not a number", func() { f.height.SetText("big") }, "Height"},
		{"seed not a number", func() { f.lock.SetChecked(true); f.seed.SetText("abc") }, "Seed"},
		{"negative seed", func() { f.lock.SetChecked(true); f.seed.SetText("-5") }, "Seed"},
		{"batch 0", func() { f.batch.SetText("0") }, "Batch"},
		{"batch 101", func() { f.batch.SetText("101") }, "Batch"},
		{"batch 4", func() { f.batch.SetText("4") }, ""},
		{"ddim has no karras", func() { f.sampler.SetSelected("DDIM"); f.schedule.SetSelected("Karras schedule") }, "DDIM has no Karras"},
		{"euler a has no karras", func() { f.sampler.SetSelected("Euler a"); f.schedule.SetSelected("Karras schedule") }, "Euler a has no Karras"},
		{"dpm++ with karras", func() { f.sampler.SetSelected("DPM++ 2M"); f.schedule.SetSelected("Karras schedule") }, ""},
	} {
		f.setDefaults(tw.set)
		f.prompt.SetText("a red fox")
		c.edit()
		_, _, err := f.params()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.want)
		}
	}
	// The entries flag bad values as they are typed.
	f.setDefaults(tw.set)
	f.width.SetText("")
	test.Type(f.width, "100")
	if f.width.Validate() == nil {
		t.Error("width entry accepts 100")
	}

	// Generate with a bad form: an error dialog, no job.
	f.prompt.SetText("a red fox")
	test.Tap(f.generate)
	if tw.job != 0 || tw.overlays() != 1 || !strings.Contains(tw.topText(), "multiple of 8") {
		t.Errorf("bad form: job %d, %d dialogs: %s", tw.job, tw.overlays(), tw.topText())
	}
	tw.dismiss()
	// Without a model: the built-in starter model makes the picture.
	f.setDefaults(tw.set)
	f.prompt.SetText("a red circle on a blue background")
	test.Tap(f.generate)
	if tw.job == 0 || !strings.Contains(tw.progress.text, "starter model") {
		t.Errorf("no model: job %d, progress %q", tw.job, tw.progress.text)
	}
	tw.idle(t)
	if !strings.Contains(tw.progress.status.Text, "Saved") {
		t.Errorf("no model: the starter job ended with %q", tw.progress.status.Text)
	}
}

func TestStepsAndCFGBounds(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	f := tw.form
	if f.steps.Min != 1 || f.steps.Max != 150 || f.steps.Step != 1 {
		t.Errorf("steps slider %g..%g by %g", f.steps.Min, f.steps.Max, f.steps.Step)
	}
	if f.cfg.Min != 1 || f.cfg.Max != 30 || f.cfg.Step != 0.5 {
		t.Errorf("CFG slider %g..%g by %g", f.cfg.Min, f.cfg.Max, f.cfg.Step)
	}
	p := app.DefaultParams()
	p.Prompt = "x"
	for _, c := range []struct {
		steps     int
		cfg       float64
		wantSteps float64
		wantCFG   float64
	}{
		{500, 45, 150, 30}, {0, 0.2, 1, 1}, {25, 7.3, 25, 7.5}, {150, 1, 150, 1},
	} {
		p.Steps, p.CFG = c.steps, c.cfg
		f.set(p)
		if f.steps.Value != c.wantSteps || f.cfg.Value != c.wantCFG {
			t.Errorf("steps %d, CFG %g shown as %g, %g; want %g, %g", c.steps, c.cfg, f.steps.Value, f.cfg.Value, c.wantSteps, c.wantCFG)
		}
		got, _, err := f.params()
		if err != nil || float64(got.Steps) != c.wantSteps || got.CFG != c.wantCFG {
			t.Errorf("params after set(%d, %g): %d, %g, %v", c.steps, c.cfg, got.Steps, got.CFG, err)
		}
	}
	// Dragging/typing past the ends clamps.
	f.steps.SetValue(1000)
	f.cfg.SetValue(-3)
	if f.steps.Value != 150 || f.cfg.Value != 1 || strings.TrimSpace(f.stepsLabel.Text) != "150" {
		t.Errorf("clamped to %g, %g (%q)", f.steps.Value, f.cfg.Value, f.stepsLabel.Text)
	}
}

func TestSeedDiceAndLock(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	f := tw.form
	f.prompt.SetText("a red fox")

	// Unlocked: every Generate rolls a new seed into the field.
	f.lock.SetChecked(false)
	f.seed.SetText("12345")
	p1, _, err := f.params()
	if err != nil {
		t.Fatal(err)
	}
	p2, _, _ := f.params()
	if p1.Seed == 12345 || p1.Seed == p2.Seed || f.seed.Text != strconv.FormatInt(p2.Seed, 10) {
		t.Errorf("unlocked seeds %d then %d (field %s)", p1.Seed, p2.Seed, f.seed.Text)
	}

	// Locked: the field's seed is used as is, every time.
	test.Tap(f.lock)
	if !f.lock.Checked {
		t.Fatal("tapping Lock did not lock")
	}
	f.seed.SetText("")
	test.Type(f.seed, "987654321")
	for range 2 {
		if p, _, err := f.params(); err != nil || p.Seed != 987654321 {
			t.Errorf("locked seed: %d, %v", p.Seed, err)
		}
	}

	// The dice rolls a new valid seed, even when locked, and keeps it.
	seen := map[string]bool{}
	for range 5 {
		test.Tap(f.dice)
		seen[f.seed.Text] = true
		if f.seed.Validate() != nil {
			t.Errorf("dice gave %q", f.seed.Text)
		}
	}
	if len(seen) < 4 {
		t.Errorf("five rolls gave %d different seeds", len(seen))
	}
	rolled := f.seed.Text
	if p, _, _ := f.params(); strconv.FormatInt(p.Seed, 10) != rolled {
		t.Errorf("locked after a roll: seed %d, field %s", p.Seed, rolled)
	}
}

var desktopShortcutEnter = desktop.CustomShortcut{KeyName: fyne.KeyEnter, Modifier: fyne.KeyModifierShortcutDefault}

func TestShortcuts(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	f := tw.form
	generated, cancelled := 0, 0
	e := newKeyEntry(true, func() { generated++ }, func() { cancelled++ })
	test.NewTempWindow(t, e)
	e.TypedShortcut(generateShortcut)
	e.TypedShortcut(&desktopShortcutEnter)
	e.TypedKey(&fyne.KeyEvent{Name: fyne.KeyEscape})
	e.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn}) // a plain Return is a new line
	if generated != 2 || cancelled != 1 || e.Text != "\n" {
		t.Errorf("generate %d, cancel %d, text %q", generated, cancelled, e.Text)
	}
	// The real prompt entry: Ctrl+Enter starts a job (on the starter
	// model, as none is picked), which proves it reached Generate.
	f.prompt.SetText("a red fox")
	tw.win.Canvas().Focus(f.prompt)
	f.prompt.TypedShortcut(generateShortcut)
	if tw.job == 0 {
		t.Errorf("Ctrl+Enter in the prompt did not reach Generate: %s", tw.topText())
	}
	tw.idle(t)
}
