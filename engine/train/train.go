package train

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"time"

	"glimmer/engine"
	"glimmer/engine/autograd"
	"glimmer/engine/clip"
	"glimmer/engine/model"
	"glimmer/engine/pipeline"
	"glimmer/engine/rng"
	"glimmer/engine/sample"
	"glimmer/engine/tokenizer"
	"glimmer/engine/unet"
	"glimmer/engine/vae"
)

// Mode is what a run trains.
type Mode string

const (
	// LoRA trains low-rank updates of the U-Net's attention projections
	// (to_q, to_k, to_v, to_out.0) of an existing SD 1.x/2.x model and
	// saves them as a kohya/A1111 LoRA file.
	LoRA Mode = "lora"
	// Full trains a small model from scratch — its own VAE, text encoder
	// and U-Net — and saves it as a diffusers folder.
	Full Mode = "full"
)

// Config is one training run. Zero fields take the defaults of Defaults.
type Config struct {
	Mode  Mode
	Data  string // folder of images with same-name .txt captions
	Model string // LoRA: the model to adapt (file or diffusers folder)
	Out   string // LoRA: the .safetensors file; Full: the model folder

	Steps     int     // optimiser steps of the diffusion objective
	BatchSize int     // images per step
	LR        float64 // AdamW learning rate
	Size      int     // training resolution (square, a multiple of the VAE's factor)
	Seed      uint64

	Rank  int     // LoRA rank
	Alpha float64 // LoRA alpha: the update is scaled by Alpha/Rank

	CaptionDropout float64 // share of captions replaced by "" (for CFG)
	WeightDecay    float64 // AdamW's decoupled weight decay
	MaxGradNorm    float64 // global gradient norm clip; < 0 disables
	// NoiseOffset adds NoiseOffset·N(0, 1) to each image's noise, one value
	// per latent channel over the whole image ("offset noise", kohya's and
	// diffusers' --noise_offset). Zero takes the mode's default (Full 0.2,
	// LoRA none); a negative value means none, SD's noise exactly.
	//
	// Full mode needs it: SD's schedule leaves √ᾱ_T = 0.068 of the image in
	// the noisiest latent, and over the starter's 16x16 latents the noise's
	// own per-channel mean is only ±1/16, so the image's mean colour shows
	// through at t = T and a model learns to take its background from the
	// noise instead of the caption (measured: the trained starter's
	// background correlated 0.4–0.6 with its initial noise's channel means
	// and did not change with the prompt's background word).
	NoiseOffset float64

	SaveEvery    int    // write the output and a resumable state every N steps (0: at the end)
	SampleEvery  int    // make a sample image every N steps (0: never)
	SamplePrompt string // the sample's prompt (default: the first caption)
	Resume       bool   // continue from the state saved beside Out

	// Full only: autoencoder steps before the diffusion steps, their batch
	// size (zero: BatchSize), and the architecture (zero: Starter).
	VAESteps     int
	VAEBatchSize int
	Arch         Arch
}

// Defaults fills c's zero fields for its mode.
func (c Config) Defaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	switch c.Mode {
	case LoRA:
		def(&c.Steps, 500)
		def(&c.BatchSize, 1)
		deff(&c.LR, 1e-4)
		def(&c.Size, 512)
		def(&c.Rank, 4)
		deff(&c.Alpha, float64(c.Rank))
	case Full:
		def(&c.Steps, 4000)
		def(&c.BatchSize, 32)
		deff(&c.LR, 5e-4)
		def(&c.Size, 64)
		def(&c.VAESteps, 1500)
		def(&c.VAEBatchSize, c.BatchSize)
		deff(&c.NoiseOffset, 0.2)
		if c.Arch.UNet.BlockOutChannels == nil {
			c.Arch = Starter()
		}
	}
	deff(&c.CaptionDropout, 0.1)
	deff(&c.WeightDecay, 1e-2)
	deff(&c.MaxGradNorm, 1)
	return c
}

func (c Config) validate() error {
	switch {
	case c.Mode != LoRA && c.Mode != Full:
		return fmt.Errorf("train: mode %q: want lora or full", c.Mode)
	case c.Data == "":
		return errors.New("train: no data folder")
	case c.Out == "":
		return errors.New("train: no output path")
	case c.Mode == LoRA && c.Model == "":
		return errors.New("train: LoRA training needs a model to adapt")
	case c.Steps < 1 || c.BatchSize < 1 || c.Size < 8:
		return fmt.Errorf("train: steps %d, batch %d and size %d must be at least 1, 1 and 8", c.Steps, c.BatchSize, c.Size)
	case c.Size > MaxSize:
		return fmt.Errorf("train: size %d above %d pixels", c.Size, MaxSize)
	case !(c.LR > 0) || c.LR > 1:
		return fmt.Errorf("train: learning rate %g outside (0, 1]", c.LR)
	case !(c.CaptionDropout >= 0 && c.CaptionDropout <= 1):
		return fmt.Errorf("train: caption dropout %g outside [0, 1]", c.CaptionDropout)
	case !(c.NoiseOffset <= 1): // -1 asks for none
		return fmt.Errorf("train: noise offset %g above 1", c.NoiseOffset)
	case c.Mode == LoRA && (c.Rank < 1 || c.Rank > MaxRank || !(c.Alpha > 0)):
		return fmt.Errorf("train: LoRA rank %d (1..%d) and alpha %g must be positive", c.Rank, MaxRank, c.Alpha)
	case c.VAESteps < 0 || c.VAEBatchSize < 0 || c.SaveEvery < 0 || c.SampleEvery < 0:
		return errors.New("train: negative step counts")
	}
	if !c.Resume {
		// A LoRA's state and chart lie beside it: files a new run would
		// write over.
		for _, p := range []string{c.Out, c.statePath(), c.chartPath()} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s: already exists (choose another output, or resume that run)", p)
			}
		}
	}
	return nil
}

// MaxSize and MaxRank bound the training resolution and a LoRA's rank:
// SD 1.x and 2.x train at 512 to 1024 with ranks of 4 to 128, and far
// beyond these the activations or the factors outgrow any card.
const (
	MaxSize = 2048
	MaxRank = 1024
)

// Event reports progress. Every step sends one; Sample and Saved are set
// on the steps that made them.
type Event struct {
	Stage       string // "vae" (Full's autoencoder) or "diffusion"
	Step, Steps int    // 1-based, within the stage
	Loss        float64
	Smoothed    float64 // exponential moving average of Loss (α = 0.05)
	GradNorm    float64 // the gradient's global norm before clipping
	Rate        float64 // steps per second over the last steps
	Elapsed     time.Duration
	Sample      image.Image
	Saved       string // a path written this step (output, state)
	Message     string // a one-off note (resumed, warnings)
}

// Run trains as cfg says on b and reports each step. Cancelling ctx stops
// at the next step boundary after saving the output and the state, so the
// run can be resumed; the error is then ctx's.
func Run(ctx context.Context, b engine.TrainBackend, cfg Config, report func(Event)) error {
	cfg = cfg.Defaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if report == nil {
		report = func(Event) {}
	}
	data, err := Folder(cfg.Data)
	if err != nil {
		return err
	}
	for _, w := range data.Warnings {
		report(Event{Message: w})
	}
	s := &session{cfg: cfg, b: b, tp: autograd.New(b), data: data, report: report, start: time.Now()}
	defer s.close()
	switch cfg.Mode {
	case LoRA:
		err = s.setupLoRA()
	case Full:
		err = s.setupFull()
	}
	if err != nil {
		return err
	}
	if cfg.Resume {
		if err := s.loadState(); err != nil {
			return err
		}
	}
	if cfg.Mode == Full && s.stage == "vae" {
		if err := s.trainVAE(ctx); err != nil {
			return err
		}
	}
	return s.trainDiffusion(ctx)
}

// session is one run's state.
type session struct {
	cfg    Config
	b      engine.TrainBackend
	tp     *autograd.Tape
	data   *Dataset
	report func(Event)
	start  time.Time

	mc     model.Config
	tok    *tokenizer.Tokenizer
	text   *clip.TextEncoder
	unet   *unet.UNet
	vae    *vae.VAE
	closer func() // frees the model files

	alphas []float32 // ᾱ_t of the training schedule
	stage  string    // "vae" or "diffusion": where a resumed run continues
	step   int       // steps done in the stage
	vaeOpt *optimizer
	opt    *optimizer // the diffusion objective's parameters
	losses []float64  // every diffusion step's loss, for the chart
	ema    float64

	latents  map[string]posterior // the frozen VAE's encodings by image path
	adapters []adapter            // LoRA: the modules being trained
	weights  []named              // Full: every weight, for saving
}

func (s *session) close() {
	for _, o := range []*optimizer{s.opt, s.vaeOpt} {
		if o != nil {
			o.free()
		}
	}
	s.tp.Close()
	if s.closer != nil {
		s.closer()
	}
}

// statePath is where the resumable state lives.
func (s *session) statePath() string { return s.cfg.statePath() }

func (c Config) statePath() string {
	if c.Mode == Full {
		return filepath.Join(c.Out, "train_state.safetensors")
	}
	return c.Out + ".state"
}

// smooth folds a loss into the moving average.
func (s *session) smooth(loss float64, first bool) float64 {
	if first || s.ema == 0 || math.IsNaN(s.ema) {
		s.ema = loss
	} else {
		s.ema += 0.05 * (loss - s.ema)
	}
	return s.ema
}

// sampler returns a pipeline over the networks being trained, for sample
// images.
func (s *session) pipeline() *pipeline.Pipeline {
	return pipeline.Borrow(s.tp, s.mc, s.tok, s.text, s.unet, s.vae)
}

// makeSample draws the sample prompt with the current weights.
func (s *session) makeSample(ctx context.Context) (image.Image, error) {
	p := s.pipeline()
	defer p.Release()
	prompt := s.cfg.SamplePrompt
	if prompt == "" && len(s.data.Items) > 0 {
		prompt = s.data.Items[0].Caption
	}
	var img image.Image
	var err error
	s.tp.NoGrad(func() {
		var res *pipeline.Result
		res, err = p.Generate(ctx, pipeline.Request{
			Prompt: prompt, Steps: 20, CFG: 5, Seed: 1, Sampler: "euler", Schedule: "default",
			Width: s.cfg.Size, Height: s.cfg.Size,
		}, nil)
		if err == nil {
			img = res.Image
		}
	})
	s.tp.Reset()
	return img, err
}

// noise returns the generator for a step: seeded from the run's seed and
// the step, so a resumed run draws what an uninterrupted one would.
func (s *session) noise(stage string, step int) *rng.Generator {
	salt := uint64(1)
	if stage == "vae" {
		salt = 2
	}
	return rng.New(s.cfg.Seed*0x9E3779B97F4A7C15 + salt<<40 + uint64(step))
}

func (s *session) schedule() error {
	a, err := sample.AlphasCumprod(s.mc.Schedule.Train())
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	s.alphas = a
	return nil
}
