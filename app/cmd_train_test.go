package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
)

// train checks its files as the window does (CheckTrainConfig) before it
// opens a backend: a missing data folder or an output that exists fails
// with one line naming it, exit 1, and the existing output is untouched.
func TestTrainChecksFilesFirst(t *testing.T) {
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "mine.safetensors")
	if err := os.WriteFile(existing, []byte("the user's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, data, out, want string
	}{
		{"missing data", filepath.Join(dir, "gone"), filepath.Join(dir, "new.safetensors"), "train: dataset folder " + filepath.Join(dir, "gone")},
		{"existing output", data, existing, "train: " + existing + ": already exists"},
	} {
		code, _, errs := run(t, "train", "--mode", "lora", "--model", model, "--data", c.data, "--out", c.out, "--backend", "cpu")
		if code != 1 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want 1 and one line with %q", c.name, code, errs, c.want)
		}
		if strings.Contains(errs, "training lora") {
			t.Errorf("%s: a backend was opened before the check: %q", c.name, errs)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "the user's file" {
		t.Error("the existing output was changed")
	}
}
