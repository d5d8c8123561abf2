// Package shaders holds the GLSL compute shaders, one file per op
// (NAME.comp), and the includes they share (*.glsl). The GL backend
// assembles a variant by prepending #version and #define lines and
// expanding #include.
package shaders

import "embed"

// FS holds every shader file.
//
//go:embed *.comp *.glsl
var FS embed.FS
