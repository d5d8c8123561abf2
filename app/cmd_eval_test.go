package app

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
)

// glimmer eval scores a model on every colour pair and draws the sheet:
// here the random-weight sd1-tiny model (its pictures are noise, so the
// score is whatever Detect reads; the test checks the report's shape, the
// sheet's layout and the refusal to overwrite).
func TestEvalCommand(t *testing.T) {
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	sheet := filepath.Join(t.TempDir(), "sheet.png")
	code, out, errs := run(t, "eval", "--model", model, "--seeds", "1", "--steps", "2", "--backend", "cpu", "--sheet", sheet)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"train    pairs: ", "/48 (", "held-out pairs: ", "/8 (", "2 steps of euler at CFG 5, 64x64, 1 seeds a pair"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	f, err := os.Open(sheet)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// 8 columns (8 × 1 seed) of 66 pixels; 48/8 + 8/8 = 7 rows.
	if b := img.Bounds(); b.Dx() != 8*66 || b.Dy() != 7*66 {
		t.Errorf("sheet %v, want 528x462", b)
	}
	code, _, errs = run(t, "eval", "--model", model, "--seeds", "1", "--steps", "1", "--backend", "cpu", "--sheet", sheet)
	if code != ExitError || !strings.Contains(errs, "already exists") {
		t.Errorf("second run onto the same sheet: exit %d, %q", code, errs)
	}
	for _, args := range [][]string{{"eval", "--seeds", "0"}, {"eval", "--size", "30"}, {"eval", "extra"},
		{"eval", "--cfg", "NaN"}, {"eval", "--sampler", "bogus"}, {"eval", "--backend", "bogus"},
		{"train", "--mode", "full", "--data", "d", "--out", "o", "--noise-offset", "2"}} {
		if code, _, errs := run(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errs, ExitUsage)
		}
	}
}
