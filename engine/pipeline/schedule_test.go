package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/pipeline"
)

// TestModelSchedule: the noise schedule in a diffusers model's
// scheduler_config.json reaches the sampler. sd1-tiny's folder with
// beta_schedule "linear" instead of "scaled_linear" (a link to every
// other file) denoises to other latents than the folder as it is, and the
// folder with its config rewritten unchanged to the same bits. The
// sampler's tables are host arithmetic (TestLinearBetas checks them), so
// the CPU backend shows it.
func TestModelSchedule(t *testing.T) {
	src := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	cfg, err := os.ReadFile(filepath.Join(src, "scheduler", "scheduler_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// folder links src's entries into a new folder, with scheduler_config
	// as the scheduler's config.
	folder := func(schedulerConfig string) string {
		dir := t.TempDir()
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "scheduler" {
				if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := os.Mkdir(filepath.Join(dir, "scheduler"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "scheduler", "scheduler_config.json"), []byte(schedulerConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if !strings.Contains(string(cfg), `"scaled_linear"`) {
		t.Fatalf("sd1-tiny's scheduler config has no scaled_linear: %s", cfg)
	}
	req := sd1Runs[1].request() // euler, 8 steps, guided
	req.Steps = 3
	var latents [][]float32
	for _, be := range enginetest.Backends() {
		if be.Name != "cpu" {
			continue
		}
		b := be.Open(t)
		defer b.Close()
		for _, dir := range []string{src, folder(string(cfg)), folder(strings.Replace(string(cfg), `"scaled_linear"`, `"linear"`, 1))} {
			p, err := pipeline.Load(dir, b, pipeline.Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			latents = append(latents, res.Latent)
			p.Close()
		}
	}
	if !slices.Equal(latents[0], latents[1]) {
		t.Errorf("the same scheduler config in another folder gave other latents")
	}
	if slices.Equal(latents[0], latents[2]) {
		t.Errorf("beta_schedule linear gave the same latents as scaled_linear: the model's schedule does not reach the sampler")
	}
}
