//go:build !headless

package main

import (
	"glimmer/app"
	"glimmer/ui"
)

// The window is linked in unless built with -tags headless (a command-line
// binary with no Fyne, X11 or GTK dependency, for servers).
func init() { app.OpenWindow = ui.Run }
