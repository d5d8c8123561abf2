package train

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"glimmer/engine"
	"glimmer/engine/clip"
	"glimmer/engine/lora"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/pipeline"
	"glimmer/engine/rng"
	"glimmer/engine/unet"
	"glimmer/engine/vae"
)

// adapter is one LoRA module being trained.
type adapter struct {
	name     string // canonical, with its component: "unet.down_blocks.0…to_q"
	down, up *engine.Tensor
}

// setupLoRA loads the model frozen (F16 weights stay F16) on the tape and
// attaches a LoRA to every attention projection of its U-Net: down
// initialised as torch's kaiming_uniform(a=√5), U(−1/√in, 1/√in), and up
// zero, so training starts from the model itself (kohya's initialisation).
func (s *session) setupLoRA() error {
	m, err := model.Open(s.cfg.Model, model.Options{})
	if err != nil {
		return err
	}
	s.closer = func() { m.Close() }
	s.mc = m.Config
	if s.tok, err = pipeline.Tokenizer(m, ""); err != nil {
		return err
	}
	tl := nn.NewLoader(s.tp, m.Component("text_encoder"), false).Sub("text_model")
	if s.text, err = clip.Load(tl, m.Config.Text); err != nil {
		return fmt.Errorf("%s: text encoder: %w", s.cfg.Model, err)
	}
	if s.unet, err = unet.Load(nn.NewLoader(s.tp, m.Component("unet"), false), m.Config.UNet); err != nil {
		return fmt.Errorf("%s: U-Net: %w", s.cfg.Model, err)
	}
	if s.vae, err = vae.Load(nn.NewLoader(s.tp, m.Component("vae"), false), m.Config.VAE); err != nil {
		return fmt.Errorf("%s: VAE: %w", s.cfg.Model, err)
	}
	if err := s.checkSize(); err != nil {
		return err
	}
	gen := rng.New(s.cfg.Seed)
	var names []string
	var params []*engine.Tensor
	scale := float32(s.cfg.Alpha / float64(s.cfg.Rank))
	for _, t := range s.unet.AttentionProjections() {
		l := t.Linear
		down := s.tp.New(engine.F32, s.cfg.Rank, l.In) // [Rank, In]
		bound := 1 / math.Sqrt(float64(l.In))
		dv := make([]float32, s.cfg.Rank*l.In)
		for i := range dv {
			dv[i] = float32((2*float64(gen.Uint32())/(1<<32) - 1) * bound)
		}
		s.tp.Write(down, dv)
		up := s.tp.New(engine.F32, l.Out, s.cfg.Rank) // [Out, Rank]
		s.tp.Write(up, make([]float32, l.Out*s.cfg.Rank))
		l.LoRA = &nn.LoRA{Down: down, Up: up, Scale: scale}
		a := adapter{name: "unet." + t.Name, down: down, up: up}
		s.adapters = append(s.adapters, a)
		names = append(names, a.name+".lora_down", a.name+".lora_up")
		params = append(params, down, up)
	}
	s.opt = newOptimizer(s.tp, names, params, s.cfg.LR, s.cfg.WeightDecay, s.cfg.MaxGradNorm, s.cfg.Steps)
	s.stage = "diffusion"
	return s.schedule()
}

// checkSize refuses a resolution the VAE cannot map to whole latents.
func (s *session) checkSize() error {
	f := s.mc.VAE.DownsampleFactor()
	if s.cfg.Size%f != 0 {
		return fmt.Errorf("train: size %d must be a multiple of %d", s.cfg.Size, f)
	}
	return nil
}

// saveLoRA writes the adapters as a kohya LoRA file, replacing the one
// this run wrote before.
func (s *session) saveLoRA() error {
	f := &lora.File{Metadata: map[string]string{
		"ss_network_module": "networks.lora",
		"ss_network_dim":    strconv.Itoa(s.cfg.Rank),
		"ss_network_alpha":  strconv.FormatFloat(s.cfg.Alpha, 'g', -1, 64),
		"ss_resolution":     fmt.Sprintf("(%d, %d)", s.cfg.Size, s.cfg.Size),
		"ss_steps":          strconv.Itoa(s.step),
		"ss_learning_rate":  strconv.FormatFloat(s.cfg.LR, 'g', -1, 64),
		"ss_base_model":     filepath.Base(s.cfg.Model),
		"glimmer_trainer":   "glimmer train --mode lora",
	}}
	for _, a := range s.adapters {
		down, err := s.tp.Read(a.down)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		up, err := s.tp.Read(a.up)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		f.Modules = append(f.Modules, lora.Module{
			Name: a.name, Down: down, DownShape: a.down.Shape().Clone(),
			Up: up, UpShape: a.up.Shape().Clone(), Alpha: float32(s.cfg.Alpha),
		})
	}
	tmp := s.cfg.Out + ".tmp"
	os.Remove(tmp)
	if err := lora.Write(tmp, f); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.cfg.Out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("train: %w", err)
	}
	return nil
}
