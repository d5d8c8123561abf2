//go:build unix

package regular

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A named pipe is refused without being opened (which would block until
// a writer came); files, folders and links to them pass, and a missing
// path is left to the caller's open.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "model.safetensors")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(pipe); err == nil || err.Error() != "a named pipe, not a file" {
		t.Errorf("named pipe: %v", err)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	for _, p := range []string{file, dir, link, filepath.Join(dir, "missing")} {
		if err := Check(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := Check("/dev/null"); err == nil || err.Error() != "a device, not a file" {
		t.Errorf("/dev/null: %v", err)
	}
}
