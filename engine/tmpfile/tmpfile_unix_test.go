//go:build unix

package tmpfile

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// The file gets 0666 less the umask (CreateTemp's 0600 made every saved
// picture and dataset unreadable to other users), a fresh name from the
// pattern each time, and never an existing file.
func TestCreate(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	seen := map[string]bool{}
	for range 50 {
		f, err := Create(dir, ".out.png.tmp*")
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		f.Close()
		name := st.Name()
		if st.Mode().Perm() != 0o644 || !strings.HasPrefix(name, ".out.png.tmp") || seen[name] {
			t.Fatalf("%s: mode %v (want 0644), or a name seen before", name, st.Mode().Perm())
		}
		seen[name] = true
	}
	syscall.Umask(0o077)
	f, err := Create(dir, "x-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 || !strings.HasSuffix(st.Name(), ".tmp") {
		t.Errorf("umask 077: %s mode %v, want 0600", st.Name(), st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 51 {
		t.Errorf("%d files, want 51", len(entries))
	}
}
