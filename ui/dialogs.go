package ui

import (
	"errors"
	"runtime"

	"github.com/sqweek/dialog"
)

// Dialogs asks the user for files and folders. The methods block until the
// user answers; they run on a goroutine of their own (see fileAsker), never
// on Fyne's. A cancelled dialog returns "" and no error.
type Dialogs interface {
	// OpenFile asks for an existing file; exts filters by extension
	// (without dots).
	OpenFile(title, startDir, desc string, exts ...string) (string, error)
	// OpenFolder asks for an existing folder.
	OpenFolder(title, startDir string) (string, error)
	// SaveFile asks for a file name to write (the dialog confirms
	// replacing an existing file).
	SaveFile(title, startDir, name, desc string, exts ...string) (string, error)
}

// nativeDialogs are the platform's own file dialogs (GTK on Linux, the
// common dialogs on Windows, Cocoa on macOS) through sqweek/dialog.
type nativeDialogs struct{}

func (nativeDialogs) OpenFile(title, startDir, desc string, exts ...string) (string, error) {
	b := dialog.File().Title(title).SetStartDir(startDir)
	if len(exts) > 0 {
		b = b.Filter(desc, exts...)
	}
	return cancelled(b.Load())
}

func (nativeDialogs) OpenFolder(title, startDir string) (string, error) {
	return cancelled(dialog.Directory().Title(title).SetStartDir(startDir).Browse())
}

func (nativeDialogs) SaveFile(title, startDir, name, desc string, exts ...string) (string, error) {
	b := dialog.File().Title(title).SetStartDir(startDir).SetStartFile(name)
	if len(exts) > 0 {
		b = b.Filter(desc, exts...)
	}
	return cancelled(b.Save())
}

func cancelled(path string, err error) (string, error) {
	if errors.Is(err, dialog.ErrCancelled) {
		return "", nil
	}
	return path, err
}

// fileAsker runs dialogs one at a time on one locked OS thread (GTK wants
// its calls on one thread), so Fyne keeps drawing while a dialog is open.
// Answers come back to the UI through the bridge.
type fileAsker struct {
	d     Dialogs
	b     *bridge
	reqs  chan func()
	busy  bool // UI goroutine only: a dialog is open
	onErr func(error)
}

func newFileAsker(d Dialogs, b *bridge, onErr func(error)) *fileAsker {
	f := &fileAsker{d: d, b: b, reqs: make(chan func()), onErr: onErr}
	go func() {
		runtime.LockOSThread()
		for req := range f.reqs {
			req()
		}
	}()
	return f
}

// ask runs q on the dialog thread and then, on the UI goroutine, calls
// then with a non-empty answer. A second dialog while one is open is
// ignored.
func (f *fileAsker) ask(q func(Dialogs) (string, error), then func(string)) {
	if f.busy {
		return
	}
	f.busy = true
	f.reqs <- func() {
		path, err := q(f.d)
		f.b.run(func() {
			f.busy = false
			switch {
			case err != nil:
				f.onErr(err)
			case path != "":
				then(path)
			}
		})
	}
}

func (f *fileAsker) close() { close(f.reqs) }
