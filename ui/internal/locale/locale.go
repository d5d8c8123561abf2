// Package locale keeps Fyne quiet about POSIX locales. Under LANG=C.UTF-8
// (the default of many containers and CI images) Fyne's lang package
// fails to parse "C" as a language and logs an error at start-up: three
// lines on stderr before every command, which breaks the command line's
// one-line-on-stderr contract.
//
// This package's init runs before Fyne's: packages initialise in import
// path order among those ready (Go 1.21+), "glimmer/…" sorts before
// "golang.org/x/text/…", which Fyne's lang package waits for. When the
// locale is a C or POSIX one and LANGUAGE is unset, it sets LANGUAGE=en,
// which Fyne's locale lookup reads and gettext ignores under a C locale.
package locale

import (
	"os"
	"strings"
)

func init() {
	if os.Getenv("LANGUAGE") != "" {
		return
	}
	loc := ""
	for _, env := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if loc = os.Getenv(env); loc != "" {
			break
		}
	}
	lang, _, _ := strings.Cut(loc, ".")
	if lang == "C" || lang == "POSIX" {
		os.Setenv("LANGUAGE", "en")
	}
}
