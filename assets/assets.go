// Package assets holds the files embedded in the binary: the application
// icon (drawn by gen_icon.go; regenerate with go generate ./assets).
package assets

import _ "embed"

//go:generate go run gen_icon.go

// IconPNG is the application icon, 256x256.
//
//go:embed icon.png
var IconPNG []byte
