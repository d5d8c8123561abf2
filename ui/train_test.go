package ui

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"glimmer/app"
	"glimmer/engine/dataset"
	"glimmer/engine/train"
)

// trainUntil runs queued UI work until cond holds.
func (tw *testWindow) trainUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		tw.q.drain()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (status %q, error %q, progress %q)", what,
				tw.train.status.Text, tw.train.formErr.Text, tw.train.barText)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tinyFullForm fills the tab for a Full run small enough for two cores:
// 8 images of 64x64 trained at 32x32 (a multiple of 4, as the starter
// VAE's three levels need), one autoencoder step, batch 2, a sample every
// 2 steps. It returns the output folder.
func tinyFullForm(t *testing.T, tab *trainTab, steps string) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := dataset.WriteFolder(data, 8, 64, 1, dataset.Train); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model")
	tab.mode.SetSelected(modeFull)
	tab.data.SetText(data)
	tab.out.SetText(out)
	tab.steps.SetText(steps)
	tab.vaeSteps.SetText("1")
	tab.batch.SetText("2")
	tab.size.SetText("32")
	tab.sampleEvery.SetText("2")
	return out
}

func TestTrainTabBuilds(t *testing.T) {
	tw := newTestWindow(t, false, nil)
	tab := tw.train
	// The LoRA defaults, and the settings' model as the base model.
	lora := train.Config{Mode: train.LoRA}.Defaults()
	if tab.mode.Selected != modeLoRA || tab.steps.Text != "500" || tab.lr.Text != "0.0001" || tab.noiseOffset.Text != "0" ||
		tab.size.Text != "512" || tab.rank.Text != "4" || tab.batch.Text != "1" || lora.Steps != 500 {
		t.Errorf("LoRA defaults: mode %s steps %s lr %s size %s rank %s batch %s",
			tab.mode.Selected, tab.steps.Text, tab.lr.Text, tab.size.Text, tab.rank.Text, tab.batch.Text)
	}
	if tab.model.Text != tw.set.Model || tab.model.Disabled() || !tab.vaeSteps.Disabled() {
		t.Errorf("base model %q (settings %q), disabled %v; VAE steps disabled %v",
			tab.model.Text, tw.set.Model, tab.model.Disabled(), tab.vaeSteps.Disabled())
	}
	// Full: its defaults, the base model and rank off, VAE steps on.
	tab.mode.SetSelected(modeFull)
	if tab.steps.Text != "4000" || tab.batch.Text != "32" || tab.size.Text != "64" || tab.vaeSteps.Text != "1500" ||
		tab.noiseOffset.Text != "0.2" {
		t.Errorf("Full defaults: steps %s batch %s size %s vae %s noise offset %s",
			tab.steps.Text, tab.batch.Text, tab.size.Text, tab.vaeSteps.Text, tab.noiseOffset.Text)
	}
	if !tab.model.Disabled() || !tab.rank.Disabled() || tab.vaeSteps.Disabled() {
		t.Error("Full mode: base model or rank enabled, or VAE steps disabled")
	}
	if tab.start.Disabled() || tab.resume.Disabled() || !tab.stop.Disabled() {
		t.Error("idle buttons: Start and Resume on, Stop off")
	}
	// The folder picker fills the dataset entry.
	tw.dialogs.folder = t.TempDir()
	test.Tap(tab.dataBtn)
	tw.trainUntil(t, "the folder dialog", func() bool { return tab.data.Text == tw.dialogs.folder })
}

// TestTrainTabValidation: bad input shows one line under the buttons, no
// dialog, and starts nothing.
func TestTrainTabValidation(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	tab := tw.train
	out := tinyFullForm(t, tab, "2")
	exists := t.TempDir()
	for _, c := range []struct {
		name   string
		edit   func()
		resume bool
		want   string
	}{
		{"no dataset", func() { tab.data.SetText("") }, false, "dataset folder"},
		{"missing dataset", func() { tab.data.SetText(filepath.Join(exists, "nope")) }, false, "no such file"},
		{"output exists", func() { tab.out.SetText(exists) }, false, "already exists"},
		{"no output", func() { tab.out.SetText("") }, false, "output"},
		{"steps not a number", func() { tab.steps.SetText("ten") }, false, "steps: \"ten\""},
		{"learning rate", func() { tab.lr.SetText("fast") }, false, "learning rate"},
		{"noise offset", func() { tab.noiseOffset.SetText("2") }, false, "noise offset"},
		{"size not /4", func() { tab.size.SetText("30") }, false, "multiple of 4"},
		{"nothing to resume", func() {}, true, "no saved training state"},
		{"lora without model", func() { tab.mode.SetSelected(modeLoRA); tab.model.SetText("") }, false, "base model"},
	} {
		data, lr, off := tab.data.Text, tab.lr.Text, tab.noiseOffset.Text
		c.edit()
		if c.resume {
			test.Tap(tab.resume)
		} else {
			test.Tap(tab.start)
		}
		tw.q.drain()
		if !strings.Contains(strings.ToLower(tab.formErr.Text), strings.ToLower(c.want)) {
			t.Errorf("%s: inline error %q, want one saying %q", c.name, tab.formErr.Text, c.want)
		}
		if tw.overlays() != 0 {
			t.Errorf("%s: a dialog: %s", c.name, tw.topText())
			tw.dismiss()
		}
		if tab.running || tw.trainer.Snapshot().State != app.TrainIdle {
			t.Fatalf("%s: a run started", c.name)
		}
		// Back to the good form.
		tinyFullForm(t, tab, "2")
		tab.data.SetText(data)
		tab.lr.SetText(lr)
		tab.noiseOffset.SetText(off)
		tab.out.SetText(out)
	}
}

// TestTrainTabFullRun trains the tiny model to the end through the tab on
// the CPU backend: the curve, the sample, progress and status follow.
func TestTrainTabFullRun(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	tab := tw.train
	out := tinyFullForm(t, tab, "2")

	charts, samples := 0, 0
	var lastChart, lastSample = tab.chart.Image, tab.sample.Image
	inner := tw.bridge.onTrain
	tw.bridge.onTrain = func(u app.TrainUpdate) {
		inner(u)
		if tab.chart.Image != lastChart {
			charts++
			lastChart = tab.chart.Image
		}
		if tab.sample.Image != lastSample {
			samples++
			lastSample = tab.sample.Image
		}
	}
	start := time.Now()
	test.Tap(tab.start)
	if tab.formErr.Text != "" {
		t.Fatalf("inline error: %s", tab.formErr.Text)
	}
	if !tab.start.Disabled() || tab.stop.Disabled() || !tab.resume.Disabled() || !tab.data.Disabled() {
		t.Error("while running: Start/Resume/fields on or Stop off")
	}
	tw.trainUntil(t, "the run to end", func() bool { return !tab.running })
	t.Logf("tiny Full run through the tab (1 VAE step, 2 diffusion steps, 32x32, CPU): %v",
		time.Since(start).Round(time.Millisecond))

	s := tw.trainer.Snapshot()
	if s.State != app.TrainDone {
		t.Fatalf("state %v: %v (status %q)", s.State, s.Err, tab.status.Text)
	}
	if charts == 0 || samples != 1 {
		t.Errorf("%d curve updates, %d sample updates (want some, 1)", charts, samples)
	}
	if b := tab.chart.Image.Bounds(); b != image.Rect(0, 0, chartW, chartH) {
		t.Errorf("chart %v", b)
	}
	if tab.sample.Image != s.Sample || s.Sample.Bounds() != image.Rect(0, 0, 32, 32) {
		t.Errorf("sample shown %v, the trainer's %v", tab.sample.Image, s.Sample)
	}
	if tab.bar.Value != 1 || !strings.Contains(tab.barText, "diffusion step 2/2") || !strings.Contains(tab.barText, "steps/s") {
		t.Errorf("progress %g %q", tab.bar.Value, tab.barText)
	}
	if !strings.Contains(tab.losses.Text, "loss ") || !strings.Contains(tab.losses.Text, "smoothed ") {
		t.Errorf("losses %q", tab.losses.Text)
	}
	if !strings.Contains(tab.status.Text, "Done: saved to "+out) {
		t.Errorf("status %q", tab.status.Text)
	}
	if st, err := os.Stat(filepath.Join(out, "model_index.json")); err != nil || st.Size() == 0 {
		t.Errorf("no model written: %v", err)
	}
	if tab.start.Disabled() || !tab.stop.Disabled() || tab.resume.Disabled() {
		t.Error("buttons not back to idle")
	}
	// Starting again on that output is refused inline.
	test.Tap(tab.start)
	if !strings.Contains(tab.formErr.Text, "already exists") {
		t.Errorf("second start: %q", tab.formErr.Text)
	}
}

// TestTrainTabStopResume stops a run from the Stop button after its
// first diffusion step and finishes it with Resume.
func TestTrainTabStopResume(t *testing.T) {
	tw := newTestWindow(t, true, nil)
	tab := tw.train
	const steps = 12
	out := tinyFullForm(t, tab, "12")
	tab.sampleEvery.SetText("0")

	inner := tw.bridge.onTrain
	stopped := false
	tw.bridge.onTrain = func(u app.TrainUpdate) {
		inner(u)
		if !stopped && u.Event.Stage == "diffusion" && u.Event.Steps > 0 {
			stopped = true
			test.Tap(tab.stop)
			if !tab.stop.Disabled() || !strings.Contains(tab.status.Text, "Stopping") {
				t.Errorf("after Stop: stop enabled %v, status %q", !tab.stop.Disabled(), tab.status.Text)
			}
		}
	}
	test.Tap(tab.start)
	tw.trainUntil(t, "the run to stop", func() bool { return stopped && !tab.running })
	s := tw.trainer.Snapshot()
	if s.State != app.TrainStopped {
		t.Fatalf("state %v (%v), want stopped", s.State, s.Err)
	}
	done := len(s.Losses)
	if done == 0 || done >= steps {
		t.Fatalf("stopped after %d of %d steps", done, steps)
	}
	if !strings.Contains(tab.status.Text, "Stopped: saved to "+out) {
		t.Errorf("status %q", tab.status.Text)
	}
	if _, err := os.Stat(filepath.Join(out, "train_state.safetensors")); err != nil {
		t.Fatalf("no saved state: %v", err)
	}

	test.Tap(tab.resume)
	if tab.formErr.Text != "" {
		t.Fatalf("resume: %s", tab.formErr.Text)
	}
	tw.trainUntil(t, "the resumed run to end", func() bool { return !tab.running })
	s = tw.trainer.Snapshot()
	if s.State != app.TrainDone || !s.Config.Resume {
		t.Fatalf("after resume: state %v (%v), resume %v", s.State, s.Err, s.Config.Resume)
	}
	// The curve continues from the saved losses to the last step.
	if len(s.Losses) != steps || s.Last.Step != steps {
		t.Errorf("%d losses, last step %d, want %d", len(s.Losses), s.Last.Step, steps)
	}
	if tab.bar.Value != 1 || !strings.Contains(tab.status.Text, "Done") {
		t.Errorf("progress %g, status %q", tab.bar.Value, tab.status.Text)
	}
}

// TestBridgeThrottlesTraining: updates faster than 20 a second reach the
// UI merged, at most one draw per update, keeping the sample and the end.
func TestBridgeThrottlesTraining(t *testing.T) {
	b := newBridge(func(app.Event) {})
	q := &uiQueue{}
	b.do = q.do
	var seen []app.TrainUpdate
	b.onTrain = func(u app.TrainUpdate) { seen = append(seen, u) }

	sample := image.NewRGBA(image.Rect(0, 0, 2, 2))
	start := time.Now()
	const n = 200
	for i := 1; i <= n; i++ {
		e := train.Event{Stage: "diffusion", Step: i, Steps: n}
		if i == 50 {
			e.Sample = sample
		}
		b.train(app.TrainUpdate{Run: 1, State: app.TrainRunning, Event: e})
		q.drain()
		time.Sleep(time.Millisecond)
	}
	b.train(app.TrainUpdate{Run: 1, State: app.TrainDone, Final: true})
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) == 0 || !seen[len(seen)-1].Final {
		if time.Now().After(deadline) {
			t.Fatal("the final update never came")
		}
		q.drain()
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	// At most one draw per trainGap (50 ms), plus the first.
	if limit := int(elapsed/trainGap) + 1; len(seen) > limit || len(seen) < 2 {
		t.Errorf("%d draws in %v for %d updates (limit %d)", len(seen), elapsed, n+1, limit)
	}
	got := false
	for _, u := range seen {
		got = got || u.Event.Sample == sample
	}
	if !got {
		t.Error("the sample was merged away")
	}
	if seen[len(seen)-1].State != app.TrainDone {
		t.Errorf("last draw %+v", seen[len(seen)-1])
	}
}
