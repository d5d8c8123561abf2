package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"
)

// Keyboard: Ctrl+Enter (Cmd+Enter on macOS) generates, Esc cancels,
// wherever the focus is. The window's menu carries Ctrl+Enter (menu
// shortcuts come first); the prompt entries handle both keys themselves,
// since a focused entry otherwise swallows them.

var generateShortcut = &desktop.CustomShortcut{KeyName: fyne.KeyReturn, Modifier: fyne.KeyModifierShortcutDefault}

// isGenerateShortcut accepts Ctrl+Return and Ctrl+Enter (keypad).
func isGenerateShortcut(s fyne.Shortcut) bool {
	c, ok := s.(*desktop.CustomShortcut)
	return ok && c.Modifier == fyne.KeyModifierShortcutDefault &&
		(c.KeyName == fyne.KeyReturn || c.KeyName == fyne.KeyEnter)
}

// keyEntry is an Entry that reports Ctrl+Enter and Esc instead of
// swallowing them.
type keyEntry struct {
	widget.Entry
	onGenerate func()
	onEscape   func()
}

func newKeyEntry(multiLine bool, onGenerate, onEscape func()) *keyEntry {
	e := &keyEntry{onGenerate: onGenerate, onEscape: onEscape}
	e.MultiLine = multiLine
	if multiLine {
		e.Wrapping = fyne.TextWrapWord
	}
	e.ExtendBaseWidget(e)
	return e
}

func (e *keyEntry) TypedShortcut(s fyne.Shortcut) {
	if isGenerateShortcut(s) {
		e.onGenerate()
		return
	}
	e.Entry.TypedShortcut(s)
}

func (e *keyEntry) TypedKey(k *fyne.KeyEvent) {
	if k.Name == fyne.KeyEscape {
		e.onEscape()
		return
	}
	e.Entry.TypedKey(k)
}

// installShortcuts makes the keys work when no entry has the focus.
func installShortcuts(c fyne.Canvas, onGenerate, onEscape func()) {
	for _, name := range []fyne.KeyName{fyne.KeyReturn, fyne.KeyEnter} {
		c.AddShortcut(&desktop.CustomShortcut{KeyName: name, Modifier: fyne.KeyModifierShortcutDefault},
			func(fyne.Shortcut) { onGenerate() })
	}
	c.SetOnTypedKey(func(k *fyne.KeyEvent) {
		if k.Name == fyne.KeyEscape {
			onEscape()
		}
	})
}
