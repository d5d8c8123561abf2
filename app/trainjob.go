package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"sync"

	"glimmer/engine"
	"glimmer/engine/device"
	"glimmer/engine/safetensors"
	"glimmer/engine/train"
)

// TrainState is where a Trainer is.
type TrainState int

const (
	TrainIdle    TrainState = iota // nothing started yet
	TrainRunning                   // a run is under way (Stop was maybe asked)
	TrainStopped                   // Stop ended the run; output and state were saved
	TrainDone                      // the run trained every step
	TrainFailed                    // the run ended on an error (Err)
)

var trainStateNames = [...]string{"idle", "running", "stopped", "done", "failed"}

func (s TrainState) String() string {
	if int(s) < len(trainStateNames) {
		return trainStateNames[s]
	}
	return fmt.Sprintf("TrainState(%d)", int(s))
}

// TrainUpdate is what a Trainer reports: one per trainer event (Event set,
// State TrainRunning), then one final update with the end state (Final
// true, Err for TrainFailed). Run counts the Trainer's runs, so a listener
// can ignore late updates of an earlier run.
type TrainUpdate struct {
	Run   int
	State TrainState
	Event train.Event
	Final bool
	Err   error
}

// Trainer runs one training at a time on its own goroutine and keeps what
// a UI shows of it: the state, the current stage's losses, the latest
// sample and event. Updates go to the callback given to NewTrainer, called
// on the training goroutine: it must return quickly.
type Trainer struct {
	emit func(TrainUpdate)
	// Open opens a backend by name (auto, gl, cpu); tests may replace it
	// before the first Start.
	Open func(name string) (engine.Backend, string, error)

	mu       sync.Mutex
	run      int
	state    TrainState
	cfg      train.Config // the last run's, with defaults filled
	backend  string
	cancel   context.CancelFunc
	stopping bool
	done     chan struct{}
	stage    string
	losses   []float64 // the current stage's losses, step 1 first
	sample   image.Image
	last     train.Event
	saved    string
	err      error
}

// NewTrainer returns an idle trainer that reports to emit (nil: nowhere).
func NewTrainer(emit func(TrainUpdate)) *Trainer {
	if emit == nil {
		emit = func(TrainUpdate) {}
	}
	return &Trainer{emit: emit, Open: device.Open}
}

// TrainSnapshot is a copy of a Trainer's state.
type TrainSnapshot struct {
	Run      int
	State    TrainState
	Stopping bool         // Stop was asked and the run has not ended yet
	Config   train.Config // the last run's, with defaults filled
	Stage    string       // "vae" or "diffusion"
	Losses   []float64    // the stage's losses (a copy)
	Sample   image.Image  // the latest sample; nil before the first
	Last     train.Event  // the latest event with a step
	Saved    string       // the last path the trainer reported saving
	Err      error
}

// Snapshot copies the trainer's state.
func (t *Trainer) Snapshot() TrainSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TrainSnapshot{Run: t.run, State: t.state, Stopping: t.stopping, Config: t.cfg, Stage: t.stage,
		Losses: append([]float64(nil), t.losses...), Sample: t.sample, Last: t.last, Saved: t.saved, Err: t.err}
}

// CheckTrainConfig fills cfg's defaults and checks what a user can get
// wrong, with one clear line for each problem: a missing data folder or
// model, an output that exists (unless resuming), no saved state to
// resume, numbers out of range.
func CheckTrainConfig(cfg train.Config) (train.Config, error) {
	cfg = cfg.Defaults()
	switch {
	case cfg.Mode != train.LoRA && cfg.Mode != train.Full:
		return cfg, fmt.Errorf("mode %q: want lora or full", cfg.Mode)
	case cfg.Data == "":
		return cfg, errors.New("choose the dataset folder (images with .txt captions)")
	case cfg.Out == "":
		return cfg, errors.New("choose where to write the output")
	case cfg.Mode == train.LoRA && cfg.Model == "":
		return cfg, errors.New("LoRA training needs a base model to adapt")
	case cfg.Steps < 1:
		return cfg, fmt.Errorf("steps %d: must be at least 1", cfg.Steps)
	case cfg.BatchSize < 1:
		return cfg, fmt.Errorf("batch size %d: must be at least 1", cfg.BatchSize)
	case !(cfg.LR > 0) || cfg.LR > 1:
		return cfg, fmt.Errorf("learning rate %g: must be in (0, 1]", cfg.LR)
	case cfg.Size < 8:
		return cfg, fmt.Errorf("resolution %d: must be at least 8", cfg.Size)
	case cfg.Mode == train.Full && cfg.Size%4 != 0:
		// The starter VAE halves the size twice (three levels).
		return cfg, fmt.Errorf("resolution %d: must be a multiple of 4 for a full model", cfg.Size)
	case cfg.Mode == train.LoRA && cfg.Size%8 != 0:
		return cfg, fmt.Errorf("resolution %d: must be a multiple of 8 for SD models", cfg.Size)
	case cfg.Mode == train.LoRA && cfg.Rank < 1:
		return cfg, fmt.Errorf("LoRA rank %d: must be at least 1", cfg.Rank)
	case cfg.SampleEvery < 0 || cfg.SaveEvery < 0 || cfg.VAESteps < 0:
		return cfg, errors.New("step counts must not be negative")
	}
	if st, err := os.Stat(cfg.Data); err != nil {
		return cfg, fmt.Errorf("dataset folder %s: %w", cfg.Data, errors.Unwrap(err))
	} else if !st.IsDir() {
		return cfg, fmt.Errorf("dataset folder %s: not a folder", cfg.Data)
	}
	if cfg.Mode == train.LoRA {
		if _, err := os.Stat(cfg.Model); err != nil {
			return cfg, fmt.Errorf("base model %s: %w", cfg.Model, errors.Unwrap(err))
		}
	}
	if cfg.Resume {
		if _, err := os.Stat(TrainStatePath(cfg)); err != nil {
			return cfg, fmt.Errorf("%s: no saved training state to resume", cfg.Out)
		}
	} else if _, err := os.Stat(cfg.Out); err == nil {
		return cfg, fmt.Errorf("%s: already exists (choose another output, or resume that run)", cfg.Out)
	}
	if dir := filepath.Dir(cfg.Out); dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return cfg, fmt.Errorf("output %s: the folder %s does not exist", cfg.Out, dir)
		}
	}
	return cfg, nil
}

// TrainStatePath is where the trainer keeps a run's resumable state.
func TrainStatePath(cfg train.Config) string {
	if cfg.Mode == train.Full {
		return filepath.Join(cfg.Out, "train_state.safetensors")
	}
	return cfg.Out + ".state"
}

// Start checks cfg (see CheckTrainConfig) and starts training on the
// backend named (auto, gl, cpu) on a goroutine of its own. It fails when
// a run is under way or cfg is wrong; errors of the run itself arrive as
// the final update.
func (t *Trainer) Start(cfg train.Config, backend string) error {
	cfg, err := CheckTrainConfig(cfg)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == TrainRunning {
		return errors.New("a training run is under way")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.run++
	t.state, t.cfg, t.backend, t.cancel, t.stopping = TrainRunning, cfg, backend, cancel, false
	t.done = make(chan struct{})
	t.sample, t.last, t.saved, t.err = nil, train.Event{}, "", nil
	t.stage, t.losses = "", nil
	if cfg.Resume {
		t.stage, t.losses = savedLosses(TrainStatePath(cfg))
	}
	go t.work(ctx, t.run, cfg, backend, t.done)
	return nil
}

// Resume starts the last run again from its saved state, with the same
// configuration and backend.
func (t *Trainer) Resume() error {
	t.mu.Lock()
	cfg, backend, state := t.cfg, t.backend, t.state
	t.mu.Unlock()
	if state == TrainIdle {
		return errors.New("nothing to resume: no run was started")
	}
	cfg.Resume = true
	return t.Start(cfg, backend)
}

// Stop asks the run to stop: the trainer saves the output and its state at
// the next step boundary, then the final update (TrainStopped) follows.
func (t *Trainer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == TrainRunning && t.cancel != nil {
		t.stopping = true
		t.cancel()
	}
}

// Wait blocks until the current run (if any) has ended.
func (t *Trainer) Wait() {
	t.mu.Lock()
	done := t.done
	t.mu.Unlock()
	if done != nil {
		<-done
	}
}

// savedLosses reads the loss history of a saved state, so a resumed run's
// curve continues where it was; none when it cannot be read.
func savedLosses(path string) (string, []float64) {
	f, err := safetensors.Open(path)
	if err != nil {
		return "", nil
	}
	defer f.Close()
	meta := f.Metadata()
	if meta["stage"] != "diffusion" {
		return "", nil // VAE losses are not kept in the state
	}
	var losses []float64
	if json.Unmarshal([]byte(meta["losses"]), &losses) != nil {
		return "", nil
	}
	return "diffusion", losses
}

func (t *Trainer) work(ctx context.Context, run int, cfg train.Config, backend string, done chan struct{}) {
	defer close(done)
	err := t.train(ctx, run, cfg, backend)
	t.mu.Lock()
	state := TrainDone
	switch {
	case err != nil && t.stopping && errors.Is(err, context.Canceled):
		state, err = TrainStopped, nil
	case err != nil:
		state = TrainFailed
	}
	t.state, t.err, t.cancel = state, err, nil
	t.stopping = false
	last := t.last
	t.mu.Unlock()
	t.emit(TrainUpdate{Run: run, State: state, Event: last, Final: true, Err: err})
}

func (t *Trainer) train(ctx context.Context, run int, cfg train.Config, backend string) error {
	b, notice, err := t.Open(backend)
	if err != nil {
		return err
	}
	defer b.Close()
	if notice != "" {
		t.emit(TrainUpdate{Run: run, State: TrainRunning, Event: train.Event{Message: notice}})
	}
	tb, ok := b.(engine.TrainBackend)
	if !ok {
		return fmt.Errorf("backend %s cannot train (no backward ops)", b.Name())
	}
	t.emit(TrainUpdate{Run: run, State: TrainRunning, Event: train.Event{Message: "training on " + b.Name()}})
	return train.Run(ctx, tb, cfg, func(e train.Event) {
		t.record(e)
		t.emit(TrainUpdate{Run: run, State: TrainRunning, Event: e})
	})
}

// record keeps what the UI draws from an event.
func (t *Trainer) record(e train.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Saved != "" {
		t.saved = e.Saved
	}
	if e.Sample != nil {
		t.sample = e.Sample
	}
	if e.Stage == "" || e.Step < 1 {
		return
	}
	if e.Stage != t.stage {
		t.stage, t.losses = e.Stage, nil
	}
	if e.Steps == 0 {
		// The resume note: the curve continues after Step.
		if len(t.losses) > e.Step {
			t.losses = t.losses[:e.Step]
		}
		return
	}
	if len(t.losses) >= e.Step {
		t.losses = t.losses[:e.Step-1]
	}
	t.losses = append(t.losses, e.Loss)
	t.last = e
}
