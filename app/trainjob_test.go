package app

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"glimmer/engine/dataset"
	"glimmer/engine/train"
)

// tinyFull is a Full run small enough for a test on two cores: 8 images
// of 64x64 trained at 32x32 (a multiple of 4, as the starter VAE needs), one
// autoencoder step, batch 2, a sample every 2 steps.
func tinyFull(t *testing.T, steps int) train.Config {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := dataset.WriteFolder(data, 8, 64, 1, dataset.Train); err != nil {
		t.Fatal(err)
	}
	return train.Config{Mode: train.Full, Data: data, Out: filepath.Join(dir, "model"),
		Steps: steps, VAESteps: 1, BatchSize: 2, Size: 32, SampleEvery: 2, Seed: 3}
}

// updates collects a trainer's updates.
type updates struct {
	mu sync.Mutex
	us []TrainUpdate
}

func (u *updates) add(x TrainUpdate) {
	u.mu.Lock()
	u.us = append(u.us, x)
	u.mu.Unlock()
}

func (u *updates) list() []TrainUpdate {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]TrainUpdate(nil), u.us...)
}

func TestCheckTrainConfig(t *testing.T) {
	cfg := tinyFull(t, 2)
	if _, err := CheckTrainConfig(cfg); err != nil {
		t.Fatalf("a good configuration: %v", err)
	}
	exists := t.TempDir()
	model := filepath.Join(exists, "model.safetensors")
	if err := os.WriteFile(model, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*train.Config)
		want string // a piece of the error, lower case
	}{
		{"no data", func(c *train.Config) { c.Data = "" }, "dataset folder"},
		{"missing data", func(c *train.Config) { c.Data = filepath.Join(exists, "nope") }, "no such file"},
		{"data is a file", func(c *train.Config) { c.Data = model }, "not a folder"},
		{"no output", func(c *train.Config) { c.Out = "" }, "output"},
		{"output exists", func(c *train.Config) { c.Out = exists }, "already exists"},
		{"output folder missing", func(c *train.Config) { c.Out = filepath.Join(exists, "a", "b") }, "does not exist"},
		{"resume without state", func(c *train.Config) { c.Resume = true }, "no saved training state"},
		{"lora without model", func(c *train.Config) { c.Mode = train.LoRA; c.Size = 64 }, "base model"},
		{"lora model missing", func(c *train.Config) { c.Mode = train.LoRA; c.Size = 64; c.Model = model + "x" }, "base model"},
		{"full size not /4", func(c *train.Config) { c.Size = 30 }, "multiple of 4"},
		{"negative steps", func(c *train.Config) { c.Steps = -1 }, "steps -1"},
		{"learning rate", func(c *train.Config) { c.LR = 2 }, "learning rate"},
	} {
		bad := cfg
		c.edit(&bad)
		_, err := CheckTrainConfig(bad)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
	// A LoRA with a model that exists passes (the model is read by the run).
	lora := cfg
	lora.Mode, lora.Model, lora.Size = train.LoRA, model, 64
	got, err := CheckTrainConfig(lora)
	if err != nil {
		t.Fatalf("LoRA: %v", err)
	}
	if got.Rank != 4 || got.Steps != 2 {
		t.Errorf("defaults not filled: rank %d steps %d", got.Rank, got.Steps)
	}
}

// TestTrainerFullRun trains the tiny Full model to the end on the CPU.
func TestTrainerFullRun(t *testing.T) {
	cfg := tinyFull(t, 2)
	var u updates
	tr := NewTrainer(u.add)
	if s := tr.Snapshot().State; s != TrainIdle {
		t.Fatalf("new trainer: %v", s)
	}
	start := time.Now()
	if err := tr.Start(cfg, "cpu"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(cfg, "cpu"); err == nil {
		t.Error("a second Start while running was accepted")
	}
	tr.Wait()
	t.Logf("tiny Full run (1 VAE step, 2 diffusion steps, 32x32, CPU): %v", time.Since(start).Round(time.Millisecond))
	s := tr.Snapshot()
	if s.State != TrainDone || s.Err != nil {
		t.Fatalf("state %v, error %v", s.State, s.Err)
	}
	if s.Stage != "diffusion" || len(s.Losses) != 2 {
		t.Errorf("stage %q losses %v, want 2 diffusion losses", s.Stage, s.Losses)
	}
	for _, l := range s.Losses {
		if !(l > 0) {
			t.Errorf("loss %g", l)
		}
	}
	if s.Sample == nil || s.Sample.Bounds().Dx() != 32 {
		t.Errorf("sample %v", s.Sample)
	}
	if s.Saved != cfg.Out {
		t.Errorf("saved %q, want %q", s.Saved, cfg.Out)
	}
	for _, f := range []string{"model_index.json", "train_state.safetensors"} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Error(err)
		}
	}
	// One update per event: the vae step, 2 diffusion steps, and the end.
	us := u.list()
	var steps, finals int
	for _, x := range us {
		if !x.Final && x.Event.Stage != "" && x.Event.Steps > 0 {
			steps++
		}
		if x.Final {
			finals++
		}
	}
	if steps != 3 || finals != 1 || !us[len(us)-1].Final || us[len(us)-1].State != TrainDone {
		t.Errorf("%d step updates, %d final (want 3, 1 last): %+v", steps, finals, us)
	}
	// Starting again on the same output is refused; resuming a finished
	// run trains nothing more and ends well.
	if err := tr.Start(cfg, "cpu"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("restart on the same output: %v", err)
	}
}

// TestTrainerStopResume stops a run after its first diffusion step and
// resumes it to the end.
func TestTrainerStopResume(t *testing.T) {
	cfg := tinyFull(t, 4)
	cfg.SampleEvery = 0
	var tr *Trainer
	var once sync.Once
	tr = NewTrainer(func(x TrainUpdate) {
		if x.Event.Stage == "diffusion" && x.Event.Step == 1 && x.Event.Steps > 0 {
			once.Do(tr.Stop)
		}
	})
	if err := tr.Resume(); err == nil {
		t.Error("Resume with no run before was accepted")
	}
	if err := tr.Start(cfg, "cpu"); err != nil {
		t.Fatal(err)
	}
	tr.Wait()
	s := tr.Snapshot()
	if s.State != TrainStopped || s.Err != nil {
		t.Fatalf("after Stop: state %v, error %v", s.State, s.Err)
	}
	// The trainer checks the context before the next step, so it stops
	// after step 1 or (when the stop came late) step 2, never later.
	stopped := len(s.Losses)
	if stopped < 1 || stopped > 2 {
		t.Fatalf("stopped after %d steps", stopped)
	}
	if _, err := os.Stat(TrainStatePath(s.Config)); err != nil {
		t.Fatalf("no state after Stop: %v", err)
	}
	first := s.Losses[0]

	if err := tr.Resume(); err != nil {
		t.Fatal(err)
	}
	tr.Wait()
	s = tr.Snapshot()
	if s.State != TrainDone || s.Err != nil {
		t.Fatalf("after Resume: state %v, error %v", s.State, s.Err)
	}
	if !s.Config.Resume {
		t.Error("Resume ran without Resume set")
	}
	// The curve continues: the saved losses and then the resumed steps.
	if len(s.Losses) != 4 || s.Losses[0] != first {
		t.Errorf("losses after resume %v (first was %g)", s.Losses, first)
	}
	if s.Last.Step != 4 || s.Last.Steps != 4 {
		t.Errorf("last event step %d/%d", s.Last.Step, s.Last.Steps)
	}
}
