package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
)

// link puts a symbolic link to a shared fixture at dst (the vocabulary is
// never copied).
func link(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.Symlink(src, dst); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}

// TestForModel walks the documented search order.
func TestForModel(t *testing.T) {
	gz := fixtures.Path(t, "refdata", GzName)
	sd2 := fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers")
	sd1tok := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers", "tokenizer")
	data := t.TempDir()
	t.Setenv(DataDirEnv, data)

	// A diffusers folder uses its own tokenizer/ and its config's pad.
	tok, err := ForModel(sd2)
	if err != nil || tok.PadID != 0 {
		t.Fatalf("diffusers folder: %v, %+v", err, tok)
	}

	// A lone checkpoint with nothing anywhere: the error names every place.
	models := t.TempDir()
	model := filepath.Join(models, "model.safetensors")
	os.WriteFile(model, []byte("x"), 0o644)
	_, err = ForModel(model)
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("want *NotFoundError, got %v", err)
	}
	want := []string{
		filepath.Join(models, "tokenizer"), filepath.Join(models, GzName),
		filepath.Join(data, "tokenizer"), filepath.Join(data, GzName),
	}
	if !slices.Equal(nf.Looked, want) || !strings.Contains(err.Error(), GzName) || strings.Contains(err.Error(), "\n") {
		t.Errorf("looked %v, error %q", nf.Looked, err)
	}

	// The data folder's vocabulary is found.
	link(t, gz, filepath.Join(data, GzName))
	if tok, err = ForModel(model); err != nil || tok.PadID != 49407 {
		t.Fatalf("data dir gz: %v", err)
	}
	// A .gz beside the model wins over the data folder, and a tokenizer/
	// folder beside it wins over both.
	bad := filepath.Join(models, GzName)
	os.WriteFile(bad, []byte("not gzip"), 0o644)
	if _, err = ForModel(model); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("beside-model gz not preferred: %v", err)
	}
	link(t, sd1tok, filepath.Join(models, "tokenizer"))
	if _, err = ForModel(model); err != nil {
		t.Errorf("beside-model tokenizer/: %v", err)
	}

	if _, err = ForModel(filepath.Join(models, "missing.safetensors")); err == nil {
		t.Error("missing model: no error")
	}
}

// TestOpen: every form --tokenizer accepts.
func TestOpen(t *testing.T) {
	for _, p := range [][]string{
		{"refdata", GzName},
		{"refdata"},
		{"fixtures", "sd1-tiny", "diffusers"},
		{"fixtures", "sd1-tiny", "diffusers", "tokenizer"},
	} {
		if _, err := Open(fixtures.Path(t, p...)); err != nil {
			t.Errorf("%v: %v", p, err)
		}
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), GzName) {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("missing path: no error")
	}
}

func TestDataDir(t *testing.T) {
	t.Setenv(DataDirEnv, "/x/y")
	if d, err := DataDir(); err != nil || d != "/x/y" {
		t.Errorf("DataDir = %q, %v", d, err)
	}
}
