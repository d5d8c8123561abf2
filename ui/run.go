// Package ui is Glimmer's window, built with Fyne. It holds no engine or
// GL code: the form makes an app.Job, the app's Runner does the work on
// its own goroutine, and its events come back through the bridge
// (bridge.go), the only code that calls fyne.Do.
//
// One file per part: window.go (layout, job events), form.go,
// model_picker.go, image_view.go, progress.go, gallery.go, actions.go
// (restore, Save As, copy parameters), settings_dialog.go, dialogs.go
// (native file dialogs), shortcuts.go, train.go (the Train tab, driving
// the app's Trainer).
package ui

import (
	"errors"
	"os"
	"runtime"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"glimmer/assets"
	_ "glimmer/ui/internal/locale" // before Fyne's init; see the package
)

// AppID is the application id (FyneApp.toml), which also names where the
// settings are stored.
const AppID = "io.glimmer.app"

// Icon is the application icon.
var Icon = fyne.NewStaticResource("icon.png", assets.IconPNG)

// Run opens the window and returns when it is closed.
func Run() error {
	if !haveDisplay() {
		return errors.New("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset); 'glimmer help' lists the command-line commands")
	}
	a := fyneapp.NewWithID(AppID)
	a.SetIcon(Icon)
	w := New(a, Options{})
	defer w.Close()
	w.win.SetMaster()
	w.win.ShowAndRun()
	return nil
}

func haveDisplay() bool {
	switch runtime.GOOS {
	case "windows", "darwin", "android", "ios":
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}
