// Command glimmer turns a text prompt into an image with Stable Diffusion on
// the user's own GPU. With no arguments it opens the window; otherwise it
// runs one of the command-line commands in package app.
package main

import (
	"os"

	"glimmer/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
