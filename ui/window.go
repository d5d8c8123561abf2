package ui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"glimmer/app"
	"glimmer/assets"
	"glimmer/engine/pipeline"
	"glimmer/settings"
)

// Options adjust New; the zero value is the real application.
type Options struct {
	Store   settings.Store // default: the app's preferences
	Dialogs Dialogs        // default: the platform's native file dialogs
	do      func(func())   // tests: where the bridge schedules UI work
}

// Window is Glimmer's main window: the model and the form on the left, the
// picture, progress and the session's gallery on the right.
type Window struct {
	app    fyne.App
	win    fyne.Window
	store  settings.Store
	set    settings.Settings
	runner *app.Runner
	bridge *bridge
	files  *fileAsker

	model    *modelPicker
	form     *form
	view     *imageView
	progress *progressView
	gallery  *gallery
	trainer  *app.Trainer
	train    *trainTab // the Train tab

	openPNG, saveAs, copyParams, settingsBtn *widget.Button

	job       int                // the running job's id; 0 when idle
	loadOnly  bool               // the running job only loads the model
	cancelJob context.CancelFunc // cancels the running job
	jobImages int                // images the running job made
	jobStart  time.Time          // when the running job was started
}

// New builds the window (not shown yet) and starts its runner.
func New(a fyne.App, o Options) *Window {
	w := &Window{app: a, win: a.NewWindow("Glimmer"), store: o.Store}
	if w.store == nil {
		w.store = a.Preferences()
	}
	if o.Dialogs == nil {
		o.Dialogs = nativeDialogs{}
	}
	w.bridge = newBridge(w.handleEvent)
	if o.do != nil {
		w.bridge.do = o.do
	}
	w.files = newFileAsker(o.Dialogs, w.bridge, w.showError)
	w.runner = app.NewRunner(w.bridge.event)
	w.trainer = app.NewTrainer(w.bridge.train)

	var notices []string
	w.set, notices = settings.Load(w.store)

	w.model = newModelPicker(w.pickModel, w.askModelFile, w.askModelFolder)
	w.form = newForm(w.generate, w.cancel)
	w.view = newImageView()
	w.progress = newProgressView()
	w.gallery = newGallery(func(it galleryItem) { w.view.show(it.img, caption(it), false) })
	w.train = newTrainTab(w.trainer, w.files, func() string { return w.set.Backend }, w.set.Model)
	w.bridge.onTrain = w.train.update

	w.openPNG = widget.NewButtonWithIcon("Open PNG…", theme.FolderOpenIcon(), w.askPNG)
	w.saveAs = widget.NewButtonWithIcon("Save As…", theme.DocumentSaveIcon(), w.askSaveAs)
	w.copyParams = widget.NewButtonWithIcon("Copy parameters", theme.ContentCopyIcon(), w.copyParameters)
	w.settingsBtn = widget.NewButtonWithIcon("Settings", theme.SettingsIcon(), w.showSettings)

	w.model.show(w.set.Model, w.set.Recent)
	w.form.setDefaults(w.set)

	left := container.NewVScroll(container.NewVBox(w.model.content, w.form.content))
	left.SetMinSize(fyne.NewSize(380, 0))
	tools := container.NewHBox(w.openPNG, w.saveAs, w.copyParams, w.settingsBtn)
	right := container.NewBorder(tools, container.NewVBox(w.progress.content, w.gallery.scroll), nil, nil, w.view.content)
	split := container.NewHSplit(left, right)
	split.Offset = 0.4
	w.win.SetContent(container.NewAppTabs(
		container.NewTabItemWithIcon("Generate", theme.MediaPhotoIcon(), split),
		container.NewTabItemWithIcon("Train", theme.MediaReplayIcon(), w.train.content)))
	w.win.Resize(fyne.NewSize(1100, 760))
	w.win.SetMainMenu(w.menu())
	w.win.SetOnDropped(w.dropped)
	installShortcuts(w.win.Canvas(), w.generate, w.cancel)

	if len(notices) > 0 {
		dialog.ShowInformation("Settings", strings.Join(notices, "\n"), w.win)
	}
	return w
}

func (w *Window) menu() *fyne.MainMenu {
	gen := fyne.NewMenuItem("Generate", w.generate)
	gen.Shortcut = generateShortcut
	return fyne.NewMainMenu(
		fyne.NewMenu("File",
			fyne.NewMenuItem("Open Model File…", w.askModelFile),
			fyne.NewMenuItem("Open Diffusers Folder…", w.askModelFolder),
			fyne.NewMenuItem("Open PNG…", w.askPNG),
			fyne.NewMenuItem("Save Image As…", w.askSaveAs),
			fyne.NewMenuItemSeparator(),
			fyne.NewMenuItem("Settings…", w.showSettings),
		),
		fyne.NewMenu("Image",
			gen,
			fyne.NewMenuItem("Cancel (Esc)", w.cancel),
			fyne.NewMenuItem("Copy Parameters", w.copyParameters),
		),
	)
}

// Close stops the runner (cancelling a running job) and a training run
// (which saves its output and state first, waited for), and drops the
// events still on their way.
func (w *Window) Close() {
	w.bridge.stop()
	if w.cancelJob != nil {
		w.cancelJob()
	}
	w.trainer.Stop()
	w.runner.Close()
	w.trainer.Wait()
	w.files.close()
}

// generate starts a job from the form.
func (w *Window) generate() {
	if w.job != 0 {
		return
	}
	p, count, err := w.form.params()
	if err != nil {
		w.showError(err)
		return
	}
	model, status := w.set.Model, "starting…"
	if model == "" {
		// No model picked yet: Glimmer's own starter model, at its size
		// when the form still has the default size.
		dir, err := assets.StarterDir()
		if err != nil {
			w.showError(err)
			return
		}
		model, status = dir, "no model picked: using the built-in starter model (coloured shapes, 64x64)…"
		if d := app.DefaultParams(); p.Width == d.Width && p.Height == d.Height {
			p.Width, p.Height = assets.StarterSize, assets.StarterSize
		}
	}
	w.start(app.Job{
		Model: model, Tokenizer: w.set.Tokenizer, TAESD: w.set.TAESD, Backend: w.set.Backend, Offload: w.set.Offload,
		Params: p, Count: count, Preview: previewMode(w.set.Preview),
		OutputDir: w.set.OutputDir, NameTemplate: w.set.NameTemplate,
	}, status)
}

func (w *Window) start(j app.Job, status string) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancelJob = cancel
	w.loadOnly = j.LoadOnly
	w.jobImages = 0
	w.jobStart = time.Now()
	w.job = w.runner.Submit(ctx, j)
	w.form.running(true)
	w.progress.reset(status)
}

func (w *Window) cancel() {
	if w.cancelJob == nil {
		return
	}
	w.cancelJob()
	w.progress.setStatus("Cancelling after this step…")
}

// handleEvent shows a job event; the bridge calls it on Fyne's goroutine.
func (w *Window) handleEvent(e app.Event) {
	if e.Job != w.job {
		return // a job this window no longer follows
	}
	switch e.Kind {
	case app.EventNotice:
		w.progress.setStatus(e.Message)
		dialog.ShowInformation("Note", e.Message, w.win)
	case app.EventLoading:
		w.progress.reset(e.Message + "…")
		w.progress.setStatus(capitalize(e.Message) + "…")
	case app.EventLoaded:
		w.progress.setStatus(capitalize(e.Message) + ".")
		if w.loadOnly {
			w.progress.finish("model ready")
		} else {
			w.progress.reset("encoding the prompt…")
		}
	case app.EventStep:
		w.progress.step(e)
		if e.Preview != nil {
			w.view.show(e.Preview, "preview: "+stepText(e), true)
		}
	case app.EventImage:
		w.jobImages++
		w.gallery.add(galleryItem{img: e.Image, params: e.Params, path: e.Path})
		if e.Path != "" {
			w.progress.setStatus("Saved " + e.Path)
		}
	case app.EventFinished, app.EventFailed, app.EventCancelled:
		w.job, w.cancelJob = 0, nil
		w.form.running(false)
		switch e.Kind {
		case app.EventFinished:
			if w.loadOnly {
				w.progress.finish("model ready")
			} else {
				w.progress.finish(fmt.Sprintf("done: %s in %s", plural(w.jobImages, "image"),
					formatETA(time.Since(w.jobStart))))
			}
		case app.EventFailed:
			w.progress.reset("failed")
			w.progress.setStatus(e.Message)
			w.showError(e.Err)
		case app.EventCancelled:
			w.progress.reset("cancelled")
			w.progress.setStatus(fmt.Sprintf("Cancelled; %s kept.", plural(w.jobImages, "image")))
		}
	}
}

func previewMode(s string) pipeline.Preview {
	switch s {
	case "latent":
		return pipeline.PreviewLatent
	case "taesd":
		return pipeline.PreviewTAESD
	}
	return pipeline.PreviewNone
}

func caption(it galleryItem) string {
	s := fmt.Sprintf("seed %d · %dx%d", it.params.Seed, it.params.Width, it.params.Height)
	if it.path != "" {
		s += " · " + filepath.Base(it.path)
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Models.

func (w *Window) askModelFile() {
	w.files.ask(func(d Dialogs) (string, error) {
		return d.OpenFile("Open a Stable Diffusion checkpoint", startDir(w.set.Model), "Checkpoints", "safetensors", "ckpt")
	}, w.pickModel)
}

func (w *Window) askModelFolder() {
	w.files.ask(func(d Dialogs) (string, error) {
		return d.OpenFolder("Open a diffusers model folder", startDir(w.set.Model))
	}, w.pickModel)
}

// pickModel makes path the model and loads it now, when idle, so load
// errors show at once and the first Generate starts without waiting.
func (w *Window) pickModel(path string) {
	if _, err := os.Stat(path); err != nil {
		w.showError(fmt.Errorf("model: %w", err))
		return
	}
	w.set.UseModel(path)
	w.set.Save(w.store)
	w.model.show(w.set.Model, w.set.Recent)
	if w.train.model.Text == "" {
		w.train.model.SetText(path) // the Train tab's base model
	}
	if w.job == 0 {
		w.start(app.Job{Model: path, Tokenizer: w.set.Tokenizer, TAESD: w.set.TAESD, Backend: w.set.Backend, Offload: w.set.Offload, LoadOnly: true},
			"loading "+filepath.Base(path)+"…")
	}
}

func startDir(path string) string {
	if path == "" {
		return ""
	}
	return filepath.Dir(path)
}

// dropped takes a PNG (restore its parameters) or a model file or folder.
func (w *Window) dropped(_ fyne.Position, uris []fyne.URI) {
	for _, u := range uris {
		if u.Scheme() != "file" {
			continue
		}
		path := u.Path()
		switch strings.ToLower(filepath.Ext(path)) {
		case ".png":
			w.restore(path)
			return
		case ".safetensors", ".ckpt":
			w.pickModel(path)
			return
		}
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			w.pickModel(path)
			return
		}
		w.showError(fmt.Errorf("%s: drop a PNG made by Glimmer or AUTOMATIC1111, or a model file or folder", filepath.Base(path)))
		return
	}
}

func (w *Window) showError(err error) {
	dialog.ShowError(err, w.win)
}
