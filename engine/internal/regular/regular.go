// Package regular keeps readers of model files off pipes and devices,
// whose open or read would block for a writer that never comes, or
// never end.
package regular

import (
	"fmt"
	"io/fs"
	"os"
)

// Check returns nil for a regular file or a folder at path (following
// links), and otherwise an error saying what is there; it opens nothing.
// A path that cannot be looked at is left to the caller's open, whose
// error says why.
func Check(path string) error {
	st, err := os.Stat(path)
	if err != nil || st.Mode().IsRegular() || st.IsDir() {
		return nil
	}
	kind := "not a regular file"
	switch t := st.Mode().Type(); {
	case t&fs.ModeNamedPipe != 0:
		kind = "a named pipe, not a file"
	case t&fs.ModeSocket != 0:
		kind = "a socket, not a file"
	case t&fs.ModeDevice != 0:
		kind = "a device, not a file"
	}
	return fmt.Errorf("%s", kind)
}
