package ui

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"glimmer/app"
	"glimmer/engine/device"
	"glimmer/settings"
)

// settingsDialog edits the persisted settings. Fields are checked as they
// are typed; Save applies and stores them.
type settingsDialog struct {
	outputDir, template, taesd, tokenizer *widget.Entry
	backend, preview                      *widget.Select
	offload                               *widget.Check
	sampler, schedule                     *widget.Select
	steps, cfg, width, height             *widget.Entry
	dlg                                   *dialog.FormDialog
}

func (w *Window) showSettings() {
	d := w.newSettingsDialog()
	d.dlg.Show()
}

func (w *Window) newSettingsDialog() *settingsDialog {
	s := w.set
	d := &settingsDialog{}
	entry := func(text string, check func(string) error) *widget.Entry {
		e := widget.NewEntry()
		e.SetText(text)
		e.Validator = check
		return e
	}
	optionalFile := func(v string) error {
		if strings.TrimSpace(v) == "" {
			return nil
		}
		return checkExists(v)
	}
	d.outputDir = entry(s.OutputDir, settings.CheckOutputDir)
	d.template = entry(s.NameTemplate, app.CheckNameTemplate)
	d.taesd = entry(s.TAESD, optionalFile)
	d.tokenizer = entry(s.Tokenizer, optionalFile)
	d.backend = widget.NewSelect(device.Names, nil)
	d.backend.SetSelected(s.Backend)
	d.offload = widget.NewCheck("Keep idle weights off the GPU", nil)
	d.offload.SetChecked(s.Offload)
	d.preview = widget.NewSelect(settings.PreviewModes, nil)
	d.preview.SetSelected(s.Preview)
	d.sampler = widget.NewSelect(samplerLabels, nil)
	d.sampler.SetSelected(labelOf(samplerLabels, samplerNames, s.Sampler))
	d.schedule = widget.NewSelect(scheduleLabels, nil)
	d.schedule.SetSelected(labelOf(scheduleLabels, scheduleNames, s.Schedule))
	d.steps = entry(strconv.Itoa(s.Steps), func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not a whole number")
		}
		return settings.CheckSteps(n)
	})
	d.cfg = entry(strconv.FormatFloat(s.CFG, 'g', -1, 64), func(v string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		return settings.CheckCFG(f)
	})
	sizeCheck := func(v string) error { _, err := parseSize(v); return err }
	d.width = entry(strconv.Itoa(s.Width), sizeCheck)
	d.height = entry(strconv.Itoa(s.Height), sizeCheck)

	browse := func(e *widget.Entry, folder bool, title string) fyne.CanvasObject {
		b := widget.NewButtonWithIcon("", theme.FolderOpenIcon(), func() {
			w.files.ask(func(dl Dialogs) (string, error) {
				if folder {
					return dl.OpenFolder(title, e.Text)
				}
				return dl.OpenFile(title, startDir(e.Text), "")
			}, e.SetText)
		})
		return container.NewBorder(nil, nil, nil, b, e)
	}
	items := []*widget.FormItem{
		{Text: "Output folder", Widget: browse(d.outputDir, true, "Folder for generated images"),
			HintText: "every image is saved here"},
		{Text: "File names", Widget: d.template,
			HintText: "fields: {" + strings.Join(app.NameFields, "} {") + "}"},
		{Text: "Backend", Widget: d.backend, HintText: "auto uses OpenGL 4.3 when there is one, else the CPU"},
		{Text: "GPU memory", Widget: d.offload, HintText: "for small GPUs: less memory, a little slower"},
		{Text: "Preview", Widget: d.preview, HintText: "latent is cheap; taesd needs a TAESD decoder file"},
		{Text: "TAESD file", Widget: browse(d.taesd, false, "TAESD decoder (.safetensors)")},
		{Text: "Tokenizer", Widget: browse(d.tokenizer, false, "CLIP tokenizer (bpe_simple_vocab_16e6.txt.gz)"),
			HintText: "only when none is found beside the model"},
		{Text: "Default sampler", Widget: d.sampler},
		{Text: "Default schedule", Widget: d.schedule},
		{Text: "Default steps", Widget: d.steps},
		{Text: "Default CFG", Widget: d.cfg},
		{Text: "Default size", Widget: container.NewGridWithColumns(2, d.width, d.height)},
	}
	d.dlg = dialog.NewForm("Settings", "Save", "Cancel", items, func(ok bool) {
		if ok {
			w.applySettings(d)
		}
	}, w.win)
	d.dlg.Resize(fyne.NewSize(640, 0))
	return d
}

// values reads the dialog into settings (keeping the model and recent
// list).
func (d *settingsDialog) values(s settings.Settings) (settings.Settings, error) {
	s.OutputDir = strings.TrimSpace(d.outputDir.Text)
	s.NameTemplate = d.template.Text
	s.TAESD = strings.TrimSpace(d.taesd.Text)
	s.Tokenizer = strings.TrimSpace(d.tokenizer.Text)
	s.Backend = d.backend.Selected
	s.Offload = d.offload.Checked
	s.Preview = d.preview.Selected
	s.Sampler = nameOf(samplerLabels, samplerNames, d.sampler.Selected)
	s.Schedule = nameOf(scheduleLabels, scheduleNames, d.schedule.Selected)
	var err error
	if s.Steps, err = strconv.Atoi(strings.TrimSpace(d.steps.Text)); err != nil {
		return s, fmt.Errorf("default steps: %q is not a whole number", d.steps.Text)
	}
	if s.CFG, err = strconv.ParseFloat(strings.TrimSpace(d.cfg.Text), 64); err != nil {
		return s, fmt.Errorf("default CFG: %q is not a number", d.cfg.Text)
	}
	if s.Width, err = parseSize(d.width.Text); err != nil {
		return s, fmt.Errorf("default width: %v", err)
	}
	if s.Height, err = parseSize(d.height.Text); err != nil {
		return s, fmt.Errorf("default height: %v", err)
	}
	return s, s.Validate()
}

func (w *Window) applySettings(d *settingsDialog) {
	s, err := d.values(w.set)
	if err != nil {
		w.showError(fmt.Errorf("settings not saved: %w", err))
		return
	}
	w.set = s
	w.set.Save(w.store)
	w.progress.setStatus("Settings saved.")
}

func checkExists(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s does not exist", path)
	}
	return nil
}
