package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// modelPicker chooses the model: the recent models in a list, and buttons
// that open the native dialog for a checkpoint file or a diffusers folder.
type modelPicker struct {
	recent     *widget.Select
	openFile   *widget.Button
	openFolder *widget.Button
	content    fyne.CanvasObject
	quiet      bool // set while the list is filled, so it reports no pick
}

func newModelPicker(onPick func(path string), onOpenFile, onOpenFolder func()) *modelPicker {
	m := &modelPicker{}
	m.recent = widget.NewSelect(nil, func(path string) {
		if !m.quiet && path != "" {
			onPick(path)
		}
	})
	m.recent.PlaceHolder = "(none picked: the built-in starter model; or a .safetensors/.ckpt file or a diffusers folder)"
	m.openFile = widget.NewButtonWithIcon("", theme.FileIcon(), onOpenFile)
	m.openFolder = widget.NewButtonWithIcon("", theme.FolderOpenIcon(), onOpenFolder)
	m.content = container.NewBorder(nil, nil, widget.NewLabel("Model"), container.NewHBox(m.openFile, m.openFolder), m.recent)
	return m
}

// show lists recent (most recent first) with current selected.
func (m *modelPicker) show(current string, recent []string) {
	m.quiet = true
	defer func() { m.quiet = false }()
	m.recent.SetOptions(recent)
	if current == "" {
		m.recent.ClearSelected()
	} else {
		m.recent.SetSelected(current)
	}
}
