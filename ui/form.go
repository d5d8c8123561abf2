package ui

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"glimmer/app"
	"glimmer/settings"
)

// Samplers and schedules as the form shows them (A1111's names).
var (
	samplerLabels  = []string{"Euler a", "Euler", "DPM++ 2M", "DDIM"}
	samplerNames   = []string{"euler_a", "euler", "dpmpp_2m", "ddim"}
	scheduleLabels = []string{"Default schedule", "Karras schedule"}
	scheduleNames  = []string{"default", "karras"}
)

// sizePresets are the width/height choices: multiples of 64. Any multiple
// of 8 may be typed.
var sizePresets = func() []string {
	var s []string
	for v := 256; v <= 1024; v += 64 {
		s = append(s, strconv.Itoa(v))
	}
	return s
}()

// form is the generation form: prompts, sampler, steps, CFG, seed, size
// and batch count, with the Generate and Cancel buttons.
type form struct {
	prompt, negative *keyEntry
	sampler          *widget.Select
	schedule         *widget.Select
	steps            *widget.Slider
	stepsLabel       *widget.Label
	cfg              *widget.Slider
	cfgLabel         *widget.Label
	seed             *keyEntry
	dice             *widget.Button
	lock             *widget.Check
	width, height    *widget.SelectEntry
	batch            *keyEntry
	generate         *widget.Button
	cancel           *widget.Button

	content fyne.CanvasObject
}

func newForm(onGenerate, onCancel func()) *form {
	f := &form{}
	f.prompt = newKeyEntry(true, onGenerate, onCancel)
	f.prompt.SetPlaceHolder("Prompt: what to draw. (word:1.2) raises a word's weight")
	f.prompt.SetMinRowsVisible(4)
	f.negative = newKeyEntry(true, onGenerate, onCancel)
	f.negative.SetPlaceHolder("Negative prompt: what to keep out")
	f.negative.SetMinRowsVisible(2)

	f.sampler = widget.NewSelect(samplerLabels, nil)
	f.schedule = widget.NewSelect(scheduleLabels, nil)

	f.stepsLabel = widget.NewLabel("")
	f.steps = widget.NewSlider(settings.MinSteps, settings.MaxSteps)
	f.steps.Step = 1
	f.steps.OnChanged = func(v float64) { f.stepsLabel.SetText(fmt.Sprintf("%3d", int(v))) }
	f.cfgLabel = widget.NewLabel("")
	f.cfg = widget.NewSlider(settings.MinCFG, settings.MaxCFG)
	f.cfg.Step = settings.CFGStep
	f.cfg.OnChanged = func(v float64) { f.cfgLabel.SetText(fmt.Sprintf("%4.1f", v)) }

	f.seed = newKeyEntry(false, onGenerate, onCancel)
	f.seed.Validator = func(s string) error { _, err := parseSeed(s); return err }
	f.dice = widget.NewButtonWithIcon("", theme.ViewRefreshIcon(), func() { f.seed.SetText(strconv.FormatInt(randomSeed(), 10)) })
	f.lock = widget.NewCheck("Lock", nil)

	f.width = widget.NewSelectEntry(sizePresets)
	f.width.Validator = func(s string) error { _, err := parseSize(s); return err }
	f.height = widget.NewSelectEntry(sizePresets)
	f.height.Validator = f.width.Validator
	f.batch = newKeyEntry(false, onGenerate, onCancel)
	f.batch.Validator = func(s string) error { _, err := parseBatch(s); return err }

	f.generate = widget.NewButtonWithIcon("Generate", theme.MediaPlayIcon(), onGenerate)
	f.generate.Importance = widget.HighImportance
	f.cancel = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), onCancel)
	f.cancel.Disable()

	f.stepsLabel.TextStyle.Monospace = true
	f.cfgLabel.TextStyle.Monospace = true
	grid := widget.NewForm(
		widget.NewFormItem("Sampler", container.NewGridWithColumns(2, f.sampler, f.schedule)),
		widget.NewFormItem("Steps", container.NewBorder(nil, nil, nil, f.stepsLabel, f.steps)),
		widget.NewFormItem("CFG scale", container.NewBorder(nil, nil, nil, f.cfgLabel, f.cfg)),
		widget.NewFormItem("Seed", container.NewBorder(nil, nil, nil, container.NewHBox(f.dice, f.lock), f.seed)),
		widget.NewFormItem("Size", container.NewGridWithColumns(2, f.width, f.height)),
		widget.NewFormItem("Batch", f.batch),
	)
	f.content = container.NewVBox(
		f.prompt, f.negative,
		grid,
		container.NewHBox(layout.NewSpacer(), f.cancel, f.generate),
	)
	return f
}

// setDefaults fills the form from the settings' defaults.
func (f *form) setDefaults(s settings.Settings) {
	p := app.DefaultParams()
	p.Sampler, p.Schedule, p.Steps, p.CFG = s.Sampler, s.Schedule, s.Steps, s.CFG
	p.Width, p.Height = s.Width, s.Height
	f.set(p)
	f.seed.SetText(strconv.FormatInt(randomSeed(), 10))
	f.lock.SetChecked(false)
	f.batch.SetText("1")
}

// set shows p in the form (restoring a PNG's parameters). A seed of -1
// leaves the seed alone; a real one is locked, so the same image comes
// out again.
func (f *form) set(p app.Params) {
	f.prompt.SetText(p.Prompt)
	f.negative.SetText(p.Negative)
	f.sampler.SetSelected(labelOf(samplerLabels, samplerNames, p.Sampler))
	f.schedule.SetSelected(labelOf(scheduleLabels, scheduleNames, p.Schedule))
	f.steps.SetValue(float64(min(max(p.Steps, settings.MinSteps), settings.MaxSteps)))
	f.steps.OnChanged(f.steps.Value)
	f.cfg.SetValue(math.Min(math.Max(math.Round(p.CFG/settings.CFGStep)*settings.CFGStep, settings.MinCFG), settings.MaxCFG))
	f.cfg.OnChanged(f.cfg.Value)
	if p.Seed >= 0 {
		f.seed.SetText(strconv.FormatInt(p.Seed, 10))
		f.lock.SetChecked(true)
	}
	f.width.SetText(strconv.Itoa(p.Width))
	f.height.SetText(strconv.Itoa(p.Height))
}

// params reads and validates the form: the parameters, the batch count,
// or the first problem in words. With the seed unlocked it first rolls a
// new random seed into the seed field.
func (f *form) params() (app.Params, int, error) {
	p := app.DefaultParams()
	p.Prompt = strings.TrimSpace(f.prompt.Text)
	p.Negative = strings.TrimSpace(f.negative.Text)
	if p.Prompt == "" {
		return p, 0, errors.New("Prompt: write what to draw")
	}
	p.Sampler = nameOf(samplerLabels, samplerNames, f.sampler.Selected)
	p.Schedule = nameOf(scheduleLabels, scheduleNames, f.schedule.Selected)
	if err := settings.CheckSampler(p.Sampler, p.Schedule); err != nil {
		return p, 0, fmt.Errorf("Sampler %s has no %s: pick Euler or DPM++ 2M, or the default schedule",
			f.sampler.Selected, f.schedule.Selected)
	}
	p.Steps = int(f.steps.Value)
	if err := settings.CheckSteps(p.Steps); err != nil {
		return p, 0, fmt.Errorf("Steps: %v", err)
	}
	p.CFG = f.cfg.Value
	if err := settings.CheckCFG(p.CFG); err != nil {
		return p, 0, fmt.Errorf("CFG scale: %v", err)
	}
	if !f.lock.Checked {
		f.seed.SetText(strconv.FormatInt(randomSeed(), 10))
	}
	var err error
	if p.Seed, err = parseSeed(f.seed.Text); err != nil {
		return p, 0, fmt.Errorf("Seed: %v", err)
	}
	if p.Width, err = parseSize(f.width.Text); err != nil {
		return p, 0, fmt.Errorf("Width: %v", err)
	}
	if p.Height, err = parseSize(f.height.Text); err != nil {
		return p, 0, fmt.Errorf("Height: %v", err)
	}
	count, err := parseBatch(f.batch.Text)
	if err != nil {
		return p, 0, fmt.Errorf("Batch: %v", err)
	}
	return p, count, nil
}

// running switches the buttons between idle and running.
func (f *form) running(on bool) {
	if on {
		f.generate.Disable()
		f.cancel.Enable()
	} else {
		f.generate.Enable()
		f.cancel.Disable()
	}
}

// maxSeed is the largest seed: 2^53, so that seeds survive a trip
// through any JSON or float-based tool.
const maxSeed = 1 << 53

func parseSeed(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > maxSeed {
		return 0, fmt.Errorf("%q is not a whole number from 0 to 2^53", s)
	}
	return n, nil
}

func parseSize(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return n, settings.CheckSize(n)
}

// maxBatch is the most images one Generate makes.
const maxBatch = 100

func parseBatch(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > maxBatch {
		return 0, fmt.Errorf("%q is not a count from 1 to %d", s, maxBatch)
	}
	return n, nil
}

// randomSeed picks a seed in [0, 2^32), the range A1111 and ComfyUI show.
func randomSeed() int64 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint32(b[:]))
}

func labelOf(labels, names []string, name string) string {
	for i, n := range names {
		if n == name {
			return labels[i]
		}
	}
	return labels[0]
}

func nameOf(labels, names []string, label string) string {
	for i, l := range labels {
		if l == label {
			return names[i]
		}
	}
	return names[0]
}
