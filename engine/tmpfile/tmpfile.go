// Package tmpfile makes the temporary files that outputs are written to
// before they are renamed into place.
package tmpfile

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Create is os.CreateTemp(dir, pattern), except that the file is made
// with mode 0666 less the process's umask, as any new file is, rather
// than CreateTemp's 0600: renamed into place it becomes the user's
// picture, model or dataset, which other users and programs should read
// as they read the user's other files.
func Create(dir, pattern string) (*os.File, error) {
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	if dir == "" {
		dir = "."
	}
	var err error
	for range 10000 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36)+suffix)
		var f *os.File
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, os.ErrExist) {
			return f, err
		}
	}
	return nil, err
}
