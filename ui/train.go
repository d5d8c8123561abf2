package ui

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"glimmer/app"
	"glimmer/engine/train"
)

// Mode names on the tab's radio buttons.
const (
	modeLoRA = "LoRA"
	modeFull = "Full"
)

// Size the loss chart is drawn at (the canvas scales it to fit).
const chartW, chartH = 640, 300

// trainTab is the Train tab: the run's settings on the left (dataset,
// mode, base model, output, numbers), Start/Stop/Resume with an inline
// error line, and on the right the live loss curve, progress, losses,
// speed, the latest sample and a status line. The app's Trainer does the
// work; its updates arrive through the bridge (bridge.train).
type trainTab struct {
	trainer *app.Trainer
	files   *fileAsker
	backend func() string // the settings' backend when a run starts

	data, model, out                       *widget.Entry
	dataBtn, modelFileBtn, modelDirBtn     *widget.Button
	outBtn                                 *widget.Button
	mode                                   *widget.RadioGroup
	steps, batch, lr, size, rank, vaeSteps *widget.Entry
	sampleEvery, prompt, noiseOffset       *widget.Entry
	start, stop, resume                    *widget.Button
	formErr                                *widget.Label
	chart, sample                          *canvas.Image
	bar                                    *widget.ProgressBar
	barText                                string
	losses, status                         *widget.Label
	running                                bool
	content                                fyne.CanvasObject
}

// newTrainTab builds the tab. model is the settings' model, the default
// base model of a LoRA.
func newTrainTab(trainer *app.Trainer, files *fileAsker, backend func() string, model string) *trainTab {
	t := &trainTab{trainer: trainer, files: files, backend: backend}
	t.data = widget.NewEntry()
	t.data.SetPlaceHolder("folder of images with .txt captions")
	t.model = widget.NewEntry()
	t.model.SetPlaceHolder("SD model file or diffusers folder")
	t.model.SetText(model)
	t.out = widget.NewEntry()
	t.out.SetPlaceHolder("new .safetensors file (LoRA) or folder (Full)")
	t.dataBtn = widget.NewButtonWithIcon("", theme.FolderOpenIcon(), t.askData)
	t.modelFileBtn = widget.NewButtonWithIcon("", theme.FileIcon(), t.askModelFile)
	t.modelDirBtn = widget.NewButtonWithIcon("", theme.FolderOpenIcon(), t.askModelFolder)
	t.outBtn = widget.NewButtonWithIcon("", theme.DocumentSaveIcon(), t.askOut)
	t.steps, t.batch, t.lr, t.size = widget.NewEntry(), widget.NewEntry(), widget.NewEntry(), widget.NewEntry()
	t.rank, t.vaeSteps, t.sampleEvery = widget.NewEntry(), widget.NewEntry(), widget.NewEntry()
	t.noiseOffset = widget.NewEntry()
	t.sampleEvery.SetText("100")
	t.prompt = widget.NewEntry()
	t.prompt.SetPlaceHolder("the sample's prompt (default: the first caption)")
	t.mode = widget.NewRadioGroup([]string{modeLoRA, modeFull}, func(string) { t.modeChanged() })
	t.mode.Horizontal = true
	t.mode.Required = true

	t.start = widget.NewButtonWithIcon("Start", theme.MediaPlayIcon(), func() { t.begin(false) })
	t.start.Importance = widget.HighImportance
	t.stop = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), t.halt)
	t.resume = widget.NewButtonWithIcon("Resume", theme.MediaReplayIcon(), func() { t.begin(true) })
	t.formErr = widget.NewLabel("")
	t.formErr.Importance = widget.DangerImportance
	t.formErr.Wrapping = fyne.TextWrapWord

	t.chart = canvas.NewImageFromImage(train.Chart(nil, chartW, chartH, "loss"))
	t.chart.FillMode = canvas.ImageFillContain
	t.chart.SetMinSize(fyne.NewSize(480, 225))
	t.sample = canvas.NewImageFromImage(nil)
	t.sample.FillMode = canvas.ImageFillContain
	t.sample.ScaleMode = canvas.ImageScalePixels
	t.sample.SetMinSize(fyne.NewSize(192, 192))
	t.bar = widget.NewProgressBar()
	t.bar.TextFormatter = func() string { return t.barText }
	t.barText = "idle"
	t.losses = widget.NewLabel("loss –")
	t.status = widget.NewLabel("Ready.")
	t.status.Truncation = fyne.TextTruncateEllipsis

	withButton := func(e *widget.Entry, bs ...fyne.CanvasObject) fyne.CanvasObject {
		return container.NewBorder(nil, nil, nil, container.NewHBox(bs...), e)
	}
	form := widget.NewForm(
		widget.NewFormItem("Dataset", withButton(t.data, t.dataBtn)),
		widget.NewFormItem("Mode", t.mode),
		widget.NewFormItem("Base model", withButton(t.model, t.modelFileBtn, t.modelDirBtn)),
		widget.NewFormItem("Output", withButton(t.out, t.outBtn)),
		widget.NewFormItem("Steps", t.steps),
		widget.NewFormItem("VAE steps", t.vaeSteps),
		widget.NewFormItem("Batch size", t.batch),
		widget.NewFormItem("Learning rate", t.lr),
		widget.NewFormItem("Noise offset", t.noiseOffset),
		widget.NewFormItem("Resolution", t.size),
		widget.NewFormItem("LoRA rank", t.rank),
		widget.NewFormItem("Sample every", t.sampleEvery),
		widget.NewFormItem("Sample prompt", t.prompt),
	)
	left := container.NewVScroll(container.NewVBox(form,
		container.NewGridWithColumns(3, t.start, t.stop, t.resume), t.formErr))
	left.SetMinSize(fyne.NewSize(380, 0))
	right := container.NewBorder(nil, container.NewVBox(t.bar, t.losses, t.status), nil, nil,
		container.NewGridWithRows(2, t.chart, t.sample))
	split := container.NewHSplit(left, right)
	split.Offset = 0.4
	t.content = split

	t.mode.SetSelected(modeLoRA)
	t.setRunning(false)
	return t
}

// modeChanged fills the numbers with the mode's defaults and enables the
// fields the mode uses.
func (t *trainTab) modeChanged() {
	m := t.modeValue()
	d := train.Config{Mode: m}.Defaults()
	t.steps.SetText(strconv.Itoa(d.Steps))
	t.batch.SetText(strconv.Itoa(d.BatchSize))
	t.lr.SetText(strconv.FormatFloat(d.LR, 'g', -1, 64))
	t.size.SetText(strconv.Itoa(d.Size))
	t.rank.SetText(strconv.Itoa(max(d.Rank, 4)))
	t.vaeSteps.SetText(strconv.Itoa(d.VAESteps))
	t.noiseOffset.SetText(strconv.FormatFloat(max(d.NoiseOffset, 0), 'g', -1, 64))
	t.enableFields()
}

func (t *trainTab) modeValue() train.Mode {
	if t.mode.Selected == modeFull {
		return train.Full
	}
	return train.LoRA
}

// enableFields enables what can be edited now: nothing while a run is
// under way, and only the current mode's fields.
func (t *trainTab) enableFields() {
	full := t.modeValue() == train.Full
	for _, w := range []fyne.Disableable{t.data, t.dataBtn, t.mode, t.out, t.outBtn, t.steps, t.batch,
		t.lr, t.noiseOffset, t.size, t.sampleEvery, t.prompt} {
		enable(w, !t.running)
	}
	for _, w := range []fyne.Disableable{t.model, t.modelFileBtn, t.modelDirBtn, t.rank} {
		enable(w, !t.running && !full)
	}
	enable(t.vaeSteps, !t.running && full)
}

func enable(w fyne.Disableable, on bool) {
	if on {
		w.Enable()
	} else {
		w.Disable()
	}
}

func (t *trainTab) setRunning(on bool) {
	t.running = on
	enable(t.start, !on)
	enable(t.resume, !on)
	enable(t.stop, on)
	t.enableFields()
}

// config reads the form; a number that does not parse is an error naming
// the field.
func (t *trainTab) config() (train.Config, error) {
	cfg := train.Config{Mode: t.modeValue(), Data: strings.TrimSpace(t.data.Text),
		Out: strings.TrimSpace(t.out.Text), SamplePrompt: strings.TrimSpace(t.prompt.Text)}
	if cfg.Mode == train.LoRA {
		cfg.Model = strings.TrimSpace(t.model.Text)
	}
	ints := []struct {
		name string
		e    *widget.Entry
		dst  *int
		use  bool
	}{
		{"steps", t.steps, &cfg.Steps, true},
		{"batch size", t.batch, &cfg.BatchSize, true},
		{"resolution", t.size, &cfg.Size, true},
		{"LoRA rank", t.rank, &cfg.Rank, cfg.Mode == train.LoRA},
		{"VAE steps", t.vaeSteps, &cfg.VAESteps, cfg.Mode == train.Full},
		{"sample every", t.sampleEvery, &cfg.SampleEvery, true},
	}
	for _, f := range ints {
		if !f.use {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(f.e.Text))
		if err != nil || v < 0 {
			return cfg, fmt.Errorf("%s: %q is not a whole number", f.name, f.e.Text)
		}
		*f.dst = v
	}
	lr, err := strconv.ParseFloat(strings.TrimSpace(t.lr.Text), 64)
	if err != nil {
		return cfg, fmt.Errorf("learning rate: %q is not a number", t.lr.Text)
	}
	cfg.LR = lr
	off, err := strconv.ParseFloat(strings.TrimSpace(t.noiseOffset.Text), 64)
	if err != nil || off < 0 || off > 1 {
		return cfg, fmt.Errorf("noise offset: %q is not a number in 0..1", t.noiseOffset.Text)
	}
	cfg.NoiseOffset = off
	if off == 0 {
		cfg.NoiseOffset = -1 // none, not the mode's default
	}
	if cfg.Mode == train.Full && cfg.VAESteps == 0 {
		// Defaults would turn 0 into 1500; a fresh VAE needs training.
		return cfg, errors.New("VAE steps: a full model needs at least 1")
	}
	return cfg, nil
}

// begin starts a run from the form (resume: from the state saved beside
// the output). Problems show under the buttons.
func (t *trainTab) begin(resume bool) {
	if t.running {
		return
	}
	cfg, err := t.config()
	if err == nil {
		cfg.Resume = resume
		err = t.trainer.Start(cfg, t.backend())
	}
	if err != nil {
		t.formErr.SetText(err.Error())
		return
	}
	t.formErr.SetText("")
	t.setRunning(true)
	t.barText = "starting…"
	if resume {
		t.barText = "resuming…"
	}
	t.bar.SetValue(0)
	t.status.SetText("Loading the dataset…")
	t.draw(app.TrainUpdate{State: app.TrainRunning})
}

// halt asks the trainer to stop; it saves the output and its state first.
func (t *trainTab) halt() {
	if !t.running {
		return
	}
	t.trainer.Stop()
	t.stop.Disable()
	t.status.SetText("Stopping after this step (saving)…")
}

// update shows a trainer update; the bridge calls it on Fyne's goroutine.
func (t *trainTab) update(u app.TrainUpdate) {
	t.draw(u)
	e := u.Event
	switch {
	case u.Final:
		t.setRunning(false)
		switch u.State {
		case app.TrainDone:
			t.status.SetText("Done: saved to " + t.trainer.Snapshot().Config.Out)
		case app.TrainStopped:
			t.status.SetText("Stopped: saved to " + t.trainer.Snapshot().Config.Out + "; Resume continues.")
		case app.TrainFailed:
			t.status.SetText("Failed: " + oneLine(u.Err))
			t.formErr.SetText(oneLine(u.Err))
		}
	case e.Message != "":
		t.status.SetText(capitalize(e.Message))
	case e.Saved != "":
		t.status.SetText("Saved to " + e.Saved)
	}
}

// draw redraws the curve, progress, losses and sample from the trainer's
// snapshot.
func (t *trainTab) draw(u app.TrainUpdate) {
	s := t.trainer.Snapshot()
	title := "diffusion loss"
	if s.Stage == "vae" {
		title = "autoencoder loss"
	}
	if len(s.Losses) > 0 || u.Final {
		t.chart.Image = train.Chart(s.Losses, chartW, chartH, title)
		t.chart.Refresh()
	}
	if s.Sample != nil && t.sample.Image != s.Sample {
		t.sample.Image = s.Sample
		t.sample.Refresh()
	}
	e := s.Last
	if e.Steps == 0 {
		return
	}
	done, total := e.Step, e.Steps
	stage := "step"
	if s.Config.Mode == train.Full {
		total = s.Config.VAESteps + s.Config.Steps
		if e.Stage == "vae" {
			stage = "VAE step"
		} else {
			done += s.Config.VAESteps
			stage = "diffusion step"
		}
	}
	eta := "ETA –"
	if e.Rate > 0 && u.State == app.TrainRunning {
		eta = "ETA " + formatETA(time.Duration(float64(total-done)/e.Rate*float64(time.Second)))
	}
	t.barText = fmt.Sprintf("%s %d/%d · %.2f steps/s · %s", stage, e.Step, e.Steps, e.Rate, eta)
	t.bar.SetValue(float64(done) / float64(max(total, 1)))
	t.losses.SetText(fmt.Sprintf("loss %.4f · smoothed %.4f", e.Loss, e.Smoothed))
}

// oneLine is an error's first line.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// File pickers.

func (t *trainTab) askData() {
	t.files.ask(func(d Dialogs) (string, error) {
		return d.OpenFolder("Choose the dataset folder", startDir(t.data.Text))
	}, func(p string) { t.data.SetText(p) })
}

func (t *trainTab) askModelFile() {
	t.files.ask(func(d Dialogs) (string, error) {
		return d.OpenFile("Choose the base model", startDir(t.model.Text), "Checkpoints", "safetensors", "ckpt")
	}, func(p string) { t.model.SetText(p) })
}

func (t *trainTab) askModelFolder() {
	t.files.ask(func(d Dialogs) (string, error) {
		return d.OpenFolder("Choose the base model's diffusers folder", startDir(t.model.Text))
	}, func(p string) { t.model.SetText(p) })
}

func (t *trainTab) askOut() {
	full := t.modeValue() == train.Full
	t.files.ask(func(d Dialogs) (string, error) {
		if full {
			return d.SaveFile("Name the model folder to create", startDir(t.out.Text), "my-model", "Folder")
		}
		return d.SaveFile("Name the LoRA file", startDir(t.out.Text), "my-lora.safetensors", "LoRA", "safetensors")
	}, func(p string) {
		if !full && filepath.Ext(p) == "" {
			p += ".safetensors"
		}
		t.out.SetText(p)
	})
}
