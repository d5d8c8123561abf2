package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dataset writes its pairs into a new or empty folder only: into a folder
// holding the user's files it used to add pairs until a name was taken,
// leaving the folder mixed and half-written. A count past its range is a
// usage error.
func TestDatasetFolder(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh")
	if code, _, errs := run(t, "dataset", "--out", fresh, "--count", "2", "--size", "64"); code != 0 {
		t.Fatalf("new folder: exit %d, %q", code, errs)
	}
	if entries, _ := os.ReadDir(fresh); len(entries) != 4 {
		t.Errorf("new folder holds %d files, want 2 pairs", len(entries))
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if code, _, errs := run(t, "dataset", "--out", empty, "--count", "1", "--size", "64"); code != 0 {
		t.Errorf("empty folder: exit %d, %q", code, errs)
	}
	mine := filepath.Join(dir, "mine")
	os.Mkdir(mine, 0o755)
	os.WriteFile(filepath.Join(mine, "00002.txt"), []byte("the user's caption"), 0o644)
	code, _, errs := run(t, "dataset", "--out", mine, "--count", "4", "--size", "64")
	if code != 1 || !strings.Contains(errs, "dataset: "+mine+" already exists and is not empty") {
		t.Errorf("folder with the user's file: exit %d, %q", code, errs)
	}
	if entries, _ := os.ReadDir(mine); len(entries) != 1 {
		t.Errorf("the user's folder now holds %d files, want its 1", len(entries))
	}
	if code, _, _ := run(t, "dataset", "--out", filepath.Join(dir, "big"), "--count", "999999999999"); code != ExitUsage {
		t.Errorf("--count 999999999999: exit %d, want %d", code, ExitUsage)
	}
}
