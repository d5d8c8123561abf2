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

// train refuses, and writes over nothing: a LoRA's loss chart or state
// already beside the output (a new run wrote over both), a flag given as
// 0 (which ran the mode's default, 500 steps), and a size past
// train.MaxSize (an out-of-memory crash with a runtime trace).
func TestTrainRefuses(t *testing.T) {
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	out := filepath.Join(dir, "w.safetensors")
	for _, mine := range []string{filepath.Join(dir, "w.loss.png"), out + ".state"} {
		if err := os.WriteFile(mine, []byte("the user's file"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := run(t, "train", "--mode", "lora", "--model", model, "--data", data, "--out", out, "--backend", "cpu")
		if code != 1 || !strings.Contains(errs, mine+": already exists") {
			t.Errorf("with %s present: exit %d, %q; want 1 naming it", filepath.Base(mine), code, errs)
		}
		if b, _ := os.ReadFile(mine); string(b) != "the user's file" {
			t.Errorf("%s was changed", mine)
		}
		os.Remove(mine)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--steps", "0"}, 2, "train: --steps 0 is not a value; leave the flag out for the mode's default"},
		{[]string{"--lr", "0"}, 2, "train: --lr 0 is not a value"},
		{[]string{"--size", "80000"}, 2, "train: --size 80000 is above 2048 pixels"},
		{[]string{"--rank", "1000000"}, 2, "train: --rank 1000000 is above 1024"},
		{[]string{"--lr", "NaN"}, 2, "train: --lr NaN must be in (0, 1]"},
		{[]string{"--alpha", "-5"}, 2, "train: --alpha -5 must be positive"},
		{[]string{"--noise-offset", "NaN"}, 2, "train: --noise-offset must be in 0..1"},
	} {
		code, _, errs := run(t, append([]string{"train", "--mode", "lora", "--model", model, "--data", data, "--out", out, "--backend", "cpu"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output was written")
	}
}
