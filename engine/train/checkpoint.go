package train

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"glimmer/engine"
	"glimmer/engine/autograd"
	"glimmer/engine/safetensors"
)

// save writes the output (the LoRA file or the model folder), the loss
// chart beside it, and the resumable state: every trainable tensor in
// F32 with its AdamW moments, the stage, step and loss history.
func (s *session) save() error {
	var err error
	if s.cfg.Mode == LoRA {
		err = s.saveLoRA()
	} else {
		err = s.saveModel()
	}
	if err != nil {
		return err
	}
	if len(s.losses) > 0 {
		if err := WriteChart(s.chartPath(), s.losses, "diffusion loss"); err != nil {
			return err
		}
	}
	return s.saveState()
}

// chartPath is the loss chart's file.
func (s *session) chartPath() string { return s.cfg.chartPath() }

func (c Config) chartPath() string {
	if c.Mode == Full {
		return filepath.Join(c.Out, "loss.png")
	}
	return strings.TrimSuffix(c.Out, filepath.Ext(c.Out)) + ".loss.png"
}

// optimizers lists the optimisers of the run, named for the state file.
func (s *session) optimizers() map[string]*optimizer {
	m := map[string]*optimizer{"diffusion": s.opt}
	if s.vaeOpt != nil {
		m["vae"] = s.vaeOpt
	}
	return m
}

func (s *session) saveState() error {
	var ts []safetensors.NamedTensor
	meta := map[string]string{"stage": s.stage, "step": strconv.Itoa(s.step),
		"scaling_factor": strconv.FormatFloat(s.mc.VAE.ScalingFactor, 'g', -1, 64)}
	for key, o := range s.optimizers() {
		meta[key+".t"] = strconv.Itoa(o.t)
		for _, p := range o.params {
			for _, part := range []struct {
				suffix string
				read   func() ([]float32, error)
			}{
				{"", func() ([]float32, error) { return s.tp.Read(p.t) }},
				{"#m", func() ([]float32, error) { return s.b.Read(p.m) }},
				{"#v", func() ([]float32, error) { return s.b.Read(p.v) }},
			} {
				v, err := part.read()
				if err != nil {
					return fmt.Errorf("train: %w", err)
				}
				ts = append(ts, safetensors.F32Tensor(key+":"+p.name+part.suffix, p.t.Shape().Clone(), v))
			}
		}
	}
	losses, err := json.Marshal(s.losses)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	meta["losses"] = string(losses)
	return safetensors.Write(s.statePath(), ts, meta, safetensors.Overwrite)
}

// loadState restores a run saved by saveState.
func (s *session) loadState() error {
	path := s.statePath()
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("train: cannot resume: %w", err)
	}
	defer f.Close()
	meta := f.Metadata()
	step, err := strconv.Atoi(meta["step"])
	if err != nil {
		return fmt.Errorf("%s: no step count: not a Glimmer training state", path)
	}
	stage := meta["stage"]
	if stage != "vae" && stage != "diffusion" {
		return fmt.Errorf("%s: unknown stage %q", path, stage)
	}
	if sf, err := strconv.ParseFloat(meta["scaling_factor"], 64); err == nil && sf > 0 {
		s.mc.VAE.ScalingFactor = sf
		if s.vae != nil {
			s.vae.Config.ScalingFactor = sf
		}
	}
	for key, o := range s.optimizers() {
		if o.t, err = strconv.Atoi(meta[key+".t"]); err != nil {
			return fmt.Errorf("%s: no %s step count", path, key)
		}
		for _, p := range o.params {
			for _, part := range []struct {
				suffix string
				write  func([]float32)
			}{
				{"", func(v []float32) { s.tp.Write(p.t, v) }},
				{"#m", func(v []float32) { s.b.Write(p.m, v) }},
				{"#v", func(v []float32) { s.b.Write(p.v, v) }},
			} {
				name := key + ":" + p.name + part.suffix
				info, ok := f.Info(name)
				if !ok {
					return fmt.Errorf("%s: no tensor %s (was it saved by another configuration?)", path, name)
				}
				if info.Numel() != int64(p.t.Numel()) {
					return fmt.Errorf("%s: %s has %d values, the run has %d", path, name, info.Numel(), p.t.Numel())
				}
				v, err := f.Float32(name)
				if err != nil {
					return err
				}
				part.write(v)
			}
		}
	}
	if err := json.Unmarshal([]byte(meta["losses"]), &s.losses); err != nil {
		return fmt.Errorf("%s: loss history: %w", path, err)
	}
	s.stage, s.step = stage, step
	if n := len(s.losses); n > 0 {
		s.ema = s.losses[n-1]
	}
	s.report(Event{Stage: stage, Step: step, Message: fmt.Sprintf("resumed %s at %s step %d", path, stage, step)})
	return nil
}

// seed starts the backward pass at t with d loss / d t = grad.
func seed(t, grad *engine.Tensor) autograd.Seed { return autograd.Seed{T: t, Grad: grad} }
