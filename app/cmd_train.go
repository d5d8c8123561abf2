package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"glimmer/engine"
	"glimmer/engine/train"
)

func init() {
	register("train", "train a LoRA for a model, or a small model from scratch, on captioned images", runTrain)
}

func runTrain(env *Env, args []string) error {
	fs := newFlags(env, "train")
	var c train.Config
	mode := fs.String("mode", "lora", "lora (adapt --model) or full (a small model from scratch)")
	fs.StringVar(&c.Data, "data", "", "folder of images (png, jpg, webp) with same-name .txt captions")
	fs.StringVar(&c.Model, "model", "", "lora: the model to adapt (.safetensors/.ckpt file or diffusers folder)")
	fs.StringVar(&c.Out, "out", "", "output: the LoRA .safetensors file (lora) or a new model folder (full)")
	fs.IntVar(&c.Steps, "steps", 0, "optimiser steps of the diffusion objective (default 500 lora, 4000 full)")
	fs.IntVar(&c.BatchSize, "batch", 0, "images per step (default 1 lora, 32 full)")
	fs.Float64Var(&c.LR, "lr", 0, "AdamW learning rate (default 1e-4 lora, 5e-4 full)")
	fs.IntVar(&c.Size, "size", 0, "training resolution in pixels (default 512 lora, 64 full)")
	fs.IntVar(&c.Rank, "rank", 0, "lora: rank (default 4)")
	fs.Float64Var(&c.Alpha, "alpha", 0, "lora: alpha; the update is scaled by alpha/rank (default: rank)")
	fs.IntVar(&c.VAESteps, "vae-steps", 0, "full: autoencoder steps before the diffusion steps (default 1500)")
	fs.IntVar(&c.VAEBatchSize, "vae-batch", 0, "full: images per autoencoder step (default: --batch)")
	fs.Float64Var(&c.NoiseOffset, "noise-offset", 0, "add this times N(0,1) per latent channel to each image's noise (offset noise; default 0.2 full, none lora; 0: none)")
	seed := fs.Int64("seed", 0, "random seed (initial weights, noise, data order)")
	fs.IntVar(&c.SaveEvery, "save-every", 0, "write the output and a resumable state every N steps (default: steps/10)")
	fs.IntVar(&c.SampleEvery, "sample-every", 0, "save a sample image every N steps (0: never)")
	fs.StringVar(&c.SamplePrompt, "sample-prompt", "", "the samples' prompt (default: the first caption)")
	fs.BoolVar(&c.Resume, "resume", false, "continue the run whose state is saved beside --out")
	backend := fs.String("backend", "auto", "compute backend: auto, gl or cpu")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("train: unexpected argument %q", pos[0])
	}
	c.Mode = train.Mode(*mode)
	switch {
	case c.Mode != train.LoRA && c.Mode != train.Full:
		return usagef("train: --mode %q: want lora or full", *mode)
	case c.Data == "":
		return usagef("train: --data is required")
	case c.Out == "":
		return usagef("train: --out is required")
	case c.Mode == train.LoRA && c.Model == "":
		return usagef("train: --mode lora needs --model")
	case c.Mode == train.Full && c.Model != "":
		return usagef("train: --mode full trains from scratch; --model is only for lora")
	case *seed < 0:
		return usagef("train: --seed must be ≥ 0")
	case !(c.NoiseOffset >= 0 && c.NoiseOffset <= 1):
		return usagef("train: --noise-offset must be in 0..1")
	case !(c.LR >= 0 && c.LR <= 1):
		return usagef("train: --lr %g must be in (0, 1]", c.LR)
	case !(c.Alpha >= 0):
		return usagef("train: --alpha %g must be positive", c.Alpha)
	case c.Size > train.MaxSize:
		return usagef("train: --size %d is above %d pixels", c.Size, train.MaxSize)
	case c.Rank > train.MaxRank:
		return usagef("train: --rank %d is above %d", c.Rank, train.MaxRank)
	case c.Steps < 0 || c.BatchSize < 0 || c.Size < 0 || c.Rank < 0 || c.VAESteps < 0 || c.VAEBatchSize < 0 || c.SaveEvery < 0 || c.SampleEvery < 0:
		return usagef("train: step counts and sizes must not be negative")
	}
	c.Seed = uint64(*seed)
	var zero string // a flag given as 0, which would mean "the mode's default"
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "noise-offset" && c.NoiseOffset == 0 {
			c.NoiseOffset = -1 // asked for none, not the mode's default
		}
		switch f.Name {
		case "steps", "batch", "lr", "size", "rank", "alpha", "vae-batch":
			if v, err := strconv.ParseFloat(f.Value.String(), 64); err == nil && v == 0 && zero == "" {
				zero = f.Name
			}
		}
	})
	if zero != "" {
		return usagef("train: --%s 0 is not a value; leave the flag out for the mode's default", zero)
	}
	// The window's checks (data folder, base model, output, resume state),
	// before a GPU is opened for nothing.
	c, err = CheckTrainConfig(c)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if c.SaveEvery == 0 {
		c.SaveEvery = max(c.Steps/10, 1)
	}
	b, err := openBackend(env, *backend)
	if err != nil {
		return err
	}
	defer b.Close()
	tb, ok := b.(engine.TrainBackend)
	if !ok {
		return fmt.Errorf("train: the %s backend cannot train", b.Name())
	}
	fmt.Fprintf(env.Stderr, "training %s on %s (%s)\n", c.Mode, c.Data, tb.Name())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	samples := samplesDir(c)
	start := time.Now()
	last := ""
	type span struct {
		stage       string
		first, last time.Time
		steps       int
	}
	var spans []*span // per stage, in order: the summary's speed table
	err = train.Run(ctx, tb, c, func(e train.Event) {
		if e.Message != "" {
			fmt.Fprintf(env.Stderr, "\r%s\n", e.Message)
			return
		}
		if e.Sample != nil {
			if path, err := saveSample(samples, e.Step, e.Sample); err != nil {
				fmt.Fprintf(env.Stderr, "\rsample: %v\n", err)
			} else {
				last = path
			}
		}
		if e.Step == 0 {
			return
		}
		now := time.Now()
		if len(spans) == 0 || spans[len(spans)-1].stage != e.Stage {
			spans = append(spans, &span{stage: e.Stage, first: now})
		} else {
			sp := spans[len(spans)-1]
			sp.last, sp.steps = now, sp.steps+1
		}
		eta := "?"
		if e.Rate > 0 {
			eta = (time.Duration(float64(e.Steps-e.Step)/e.Rate) * time.Second).Round(time.Second).String()
		}
		fmt.Fprintf(env.Stderr, "\r%s %d/%d  loss %.4f (avg %.4f)  grad %.3g  %.2f steps/s  ETA %s   ",
			e.Stage, e.Step, e.Steps, e.Loss, e.Smoothed, e.GradNorm, e.Rate, eta)
		if e.Step == e.Steps {
			fmt.Fprintln(env.Stderr)
		}
	})
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("stopped; the output and state are saved: continue with the same command and --resume")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "saved %s (%s)\n", c.Out, time.Since(start).Round(time.Second))
	for _, sp := range spans {
		if sp.steps > 0 {
			d := sp.last.Sub(sp.first)
			fmt.Fprintf(env.Stdout, "%-9s %5d steps after the first in %s: %.3f s/step (%.2f steps/s)\n",
				sp.stage, sp.steps, d.Round(time.Millisecond), d.Seconds()/float64(sp.steps), float64(sp.steps)/d.Seconds())
		}
	}
	if last != "" {
		fmt.Fprintf(env.Stdout, "last sample %s\n", last)
	}
	return nil
}

// samplesDir is where sample images go: a "samples" folder in a model
// folder, or beside a LoRA file.
func samplesDir(c train.Config) string {
	if c.Mode == train.Full {
		return filepath.Join(c.Out, "samples")
	}
	return strings.TrimSuffix(c.Out, filepath.Ext(c.Out)) + ".samples"
}

// saveSample writes a training sample as step-NNNNNN.png, never replacing
// a file (a resumed run that repeats a step gets a free name).
func saveSample(dir string, step int, img image.Image) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := EncodePNG(img, [][2]string{{"glimmer-train-step", fmt.Sprint(step)}})
	if err != nil {
		return "", err
	}
	path := FreeName(filepath.Join(dir, fmt.Sprintf("step-%06d.png", step)))
	return path, WriteNew(path, data)
}
