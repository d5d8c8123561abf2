package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"glimmer/engine"
	"glimmer/engine/clip"
	"glimmer/engine/dataset"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/rng"
	"glimmer/engine/safetensors"
	"glimmer/engine/tokenizer"
	"glimmer/engine/unet"
	"glimmer/engine/vae"
)

// Arch is the architecture Full mode trains.
type Arch struct {
	UNet model.UNetConfig
	VAE  model.VAEConfig
	Text model.TextConfig
}

// Starter is the small model Glimmer ships (assets/starter): SD 1.x's
// architecture scaled down for 64x64 pictures of coloured shapes — a VAE
// with three levels (64x64x3 ↔ 16x16x4 latents), a U-Net of widths 32,
// 64, 64 with cross-attention at every level, and a two-layer CLIP text
// encoder over the starter vocabulary (engine/dataset.WriteTokenizer).
func Starter() Arch {
	return Arch{
		UNet: model.UNetConfig{
			InChannels: 4, OutChannels: 4,
			BlockOutChannels: []int{32, 64, 64}, LayersPerBlock: 1,
			DownAttention: []bool{true, true, false}, UpAttention: []bool{false, true, true},
			MidAttention: true, Heads: []int{4, 4, 4}, CrossAttentionDim: 64, TransformerDepth: 1,
			TimeEmbedDim: 128, FlipSinToCos: true, NormGroups: 32, NormEps: 1e-5, AttnNormEps: 1e-6,
		},
		VAE: model.VAEConfig{
			InChannels: 3, OutChannels: 3, LatentChannels: 4,
			BlockOutChannels: []int{32, 64, 64}, LayersPerBlock: 1, MidAttention: true,
			UseQuantConv: true, UsePostQuantConv: true, ScalingFactor: 1, NormGroups: 32, NormEps: 1e-6,
		},
		Text: model.TextConfig{
			HiddenSize: 64, IntermediateSize: 256, Layers: 2, Heads: 2, HeadDim: 32,
			Activation: "quick_gelu", VocabSize: dataset.VocabSize(), MaxPositions: clip.Context, LayerNormEps: 1e-5,
		},
	}
}

// named is one weight of a component, by its name inside the component.
type named struct {
	component, name string
	t               *engine.Tensor
}

// Model files of a diffusers folder, by component.
var weightFiles = map[string]string{
	model.UNet:        "diffusion_pytorch_model.safetensors",
	model.VAE:         "diffusion_pytorch_model.safetensors",
	model.TextEncoder: "model.safetensors",
}

// setupFull builds the three networks from scratch on the tape (F32
// weights initialised as torch initialises the layers: U(±1/√fan_in) for
// linear and convolution weights, zero biases, unit norm scales, N(0,
// 0.02²) embeddings) and writes the output folder's configuration and
// tokenizer. A resumed run then overwrites the weights from its state.
func (s *session) setupFull() error {
	a := s.cfg.Arch
	s.mc = model.Config{
		Family: model.SD1, Prediction: model.Epsilon, PredictionSource: "glimmer train",
		UNet: a.UNet, VAE: a.VAE, Text: a.Text,
		Schedule: model.ScheduleConfig{NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: "scaled_linear"},
	}
	if err := s.checkSize(); err != nil {
		return err
	}
	tokDir := filepath.Join(s.cfg.Out, "tokenizer")
	if !s.cfg.Resume {
		if err := os.MkdirAll(s.cfg.Out, 0o755); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if err := dataset.WriteTokenizer(tokDir); err != nil {
			return err
		}
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		return err
	}
	if tok.VocabSize() != a.Text.VocabSize {
		return fmt.Errorf("%s: %d tokens, the text encoder has %d", tokDir, tok.VocabSize(), a.Text.VocabSize)
	}
	s.tok = tok
	s.mc.Tokenizer = model.TokenizerConfig{Dir: tokDir, BOS: tok.StartID, EOS: tok.EndID, Pad: tok.PadID, MaxLength: clip.Context}

	gen := rng.New(s.cfg.Seed)
	init := func(name string, shape engine.Shape) []float32 {
		return initWeight(gen, name, shape)
	}
	loaders := map[string]*nn.Loader{}
	for _, c := range []string{model.TextEncoder, model.UNet, model.VAE} {
		loaders[c] = nn.NewInitLoader(s.tp, init)
	}
	if s.text, err = clip.LoadTrainable(loaders[model.TextEncoder].Sub("text_model"), a.Text); err != nil {
		return fmt.Errorf("train: text encoder: %w", err)
	}
	if s.unet, err = unet.Load(loaders[model.UNet], a.UNet); err != nil {
		return fmt.Errorf("train: U-Net: %w", err)
	}
	if s.vae, err = vae.Load(loaders[model.VAE], a.VAE); err != nil {
		return fmt.Errorf("train: VAE: %w", err)
	}
	var vaeNames, diffNames []string
	var vaeTs, diffTs []*engine.Tensor
	moments := map[*engine.Tensor]string{}
	for _, c := range []string{model.TextEncoder, model.UNet, model.VAE} {
		l := loaders[c]
		for i, t := range l.Tensors() {
			n := named{component: c, name: l.Names()[i], t: t}
			s.weights = append(s.weights, n)
			key := c + "/" + n.name
			switch {
			case t == s.vae.Moments.Weight || t == s.vae.Moments.Bias:
				moments[t] = key // trained as its halves, below
			case c == model.VAE:
				vaeNames, vaeTs = append(vaeNames, key), append(vaeTs, t)
			default:
				diffNames, diffTs = append(diffNames, key), append(diffTs, t)
			}
		}
	}
	// The VAE runs its posterior convolution as two halves (mean, logvar);
	// those are what trains, joined back into the checkpoint's tensor on
	// saving.
	v := s.vae
	for _, h := range []struct {
		t    *engine.Tensor
		full *engine.Tensor
		half string
	}{
		{v.QuantMean.Weight, v.Moments.Weight, "mean"}, {v.QuantMean.Bias, v.Moments.Bias, "mean"},
		{v.QuantLogvar.Weight, v.Moments.Weight, "logvar"}, {v.QuantLogvar.Bias, v.Moments.Bias, "logvar"},
	} {
		vaeNames, vaeTs = append(vaeNames, moments[h.full]+"["+h.half+"]"), append(vaeTs, h.t)
	}
	s.vaeOpt = newOptimizer(s.tp, vaeNames, vaeTs, s.cfg.LR, s.cfg.WeightDecay, s.cfg.MaxGradNorm, s.cfg.VAESteps)
	s.opt = newOptimizer(s.tp, diffNames, diffTs, s.cfg.LR, s.cfg.WeightDecay, s.cfg.MaxGradNorm, s.cfg.Steps)
	s.stage = "vae"
	if s.cfg.VAESteps == 0 {
		s.stage = "diffusion"
	}
	return s.schedule()
}

// initWeight draws a weight's starting values by its name and shape.
func initWeight(gen *rng.Generator, name string, shape engine.Shape) []float32 {
	v := make([]float32, shape.Numel())
	switch {
	case hasSuffix(name, "token_embedding.weight"), hasSuffix(name, "position_embedding.weight"):
		for i, x := range gen.Randn(len(v)) {
			v[i] = 0.02 * x
		}
	case hasSuffix(name, ".bias"):
	case len(shape) == 1: // GroupNorm and LayerNorm scales
		for i := range v {
			v[i] = 1
		}
	default:
		bound := 1 / math.Sqrt(float64(shape.Numel()/shape[0]))
		for i := range v {
			v[i] = float32((2*float64(gen.Uint32())/(1<<32) - 1) * bound)
		}
	}
	return v
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// trainVAE trains the autoencoder alone for VAESteps:
//
//	(μ, log σ²) = E(x);  z = μ + σ·n, n ~ N(0, I);  x̂ = D(z)
//	L = mean (x̂ − x)² + β · mean ½(μ² + σ² − 1 − log σ²),  β = 1e-4
//
// then fixes the latent scaling factor to 1/std of the posterior means
// over the data, as SD's 0.18215 was chosen, so diffusion sees unit-scale
// latents.
func (s *session) trainVAE(ctx context.Context) error {
	if err := s.loop(ctx, "vae", s.cfg.VAESteps, s.vaeOpt, s.vaeStep); err != nil {
		return err
	}
	if err := s.fitScaling(ctx); err != nil {
		return err // the VAE stage's last step saved the run
	}
	s.stage, s.step = "diffusion", 0
	s.ema = 0
	return nil
}

const klWeight = 1e-4

func (s *session) vaeStep(b Batch, gen *rng.Generator) (float64, error) {
	tp := s.tp
	bsz, size := len(b.Paths), s.cfg.Size
	lc, h := s.mc.VAE.LatentChannels, size/s.mc.VAE.DownsampleFactor()
	img := tp.New(engine.F32, bsz, 3, size, size) // [B, 3, S, S]
	mean := tp.New(engine.F32, bsz, lc, h, h)     // [B, L, h, w]
	logvar := tp.New(engine.F32, bsz, lc, h, h)   // [B, L, h, w]
	std := tp.New(engine.F32, bsz, lc, h, h)      // [B, L, h, w]
	noise := tp.New(engine.F32, bsz, lc, h, h)    // [B, L, h, w]
	z := tp.New(engine.F32, bsz, lc, h, h)        // [B, L, h, w]
	rec := tp.New(engine.F32, bsz, 3, size, size) // [B, 3, S, S]
	defer func() {
		for _, t := range []*engine.Tensor{img, mean, logvar, std, noise, z, rec} {
			tp.Free(t)
		}
	}()
	tp.Write(img, b.Images)
	if err := s.vae.Encode(mean, logvar, img); err != nil {
		return 0, err
	}
	tp.Scale(std, logvar, 0.5, 0)         // [B, L, h, w]: log σ
	tp.Unary(std, std, engine.Exp)        // [B, L, h, w]: σ
	normals := make([]float32, z.Numel()) // [B, L, h, w]
	per := z.Numel() / bsz
	forEachItem(gen, bsz, func(i int, g *rng.Generator) { g.RandnInto(normals[i*per : (i+1)*per]) })
	tp.Write(noise, normals)
	tp.Binary(z, std, noise, engine.Mul) // [B, L, h, w]
	tp.Binary(z, z, mean, engine.Add)    // [B, L, h, w]
	if err := s.vae.Decode(rec, z); err != nil {
		return 0, err
	}
	mu, err := tp.Read(mean)
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	lv, err := tp.Read(logvar)
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	// KL term and its gradients, by hand: d/dμ = βμ/N, d/dlogσ² = β(σ²−1)/(2N).
	bk := s.b
	gmu := bk.New(engine.F32, bsz, lc, h, h) // [B, L, h, w]
	glv := bk.New(engine.F32, bsz, lc, h, h) // [B, L, h, w]
	defer bk.Free(gmu)
	defer bk.Free(glv)
	gm, gl := make([]float32, len(mu)), make([]float32, len(mu))
	var kl float64
	nl := float64(len(mu))
	for i := range mu {
		e := math.Exp(float64(lv[i]))
		kl += 0.5 * (float64(mu[i])*float64(mu[i]) + e - 1 - float64(lv[i]))
		gm[i] = float32(klWeight * float64(mu[i]) / nl)
		gl[i] = float32(klWeight * 0.5 * (e - 1) / nl)
	}
	bk.Write(gmu, gm)
	bk.Write(glv, gl)
	loss, err := s.mseBackward(rec, b.Images, seed(mean, gmu), seed(logvar, glv))
	return loss + klWeight*kl/nl, err
}

// fitScaling sets the VAE's scaling factor to 1/std of the posterior
// means over up to 512 images.
func (s *session) fitScaling(ctx context.Context) error {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := s.data.Batches(dctx, s.cfg.BatchSize, s.cfg.Size, s.cfg.Seed)
	var sum, sq, n float64
	for seen := 0; seen < min(512, len(s.data.Items)); {
		b, ok := <-batches
		if !ok {
			return ctx.Err()
		}
		if b.Err != nil {
			return b.Err
		}
		ps, err := s.posteriors(b)
		if err != nil {
			return err
		}
		for _, p := range ps {
			for _, v := range p.mean {
				sum += float64(v)
				sq += float64(v) * float64(v)
				n++
			}
		}
		seen += len(b.Paths)
	}
	std := math.Sqrt(sq/n - (sum/n)*(sum/n))
	if !(std > 0) {
		return fmt.Errorf("train: the VAE's latents have no spread (std %g)", std)
	}
	s.mc.VAE.ScalingFactor = 1 / std
	s.vae.Config.ScalingFactor = s.mc.VAE.ScalingFactor
	s.report(Event{Stage: "vae", Message: fmt.Sprintf("latent std %.4g: scaling factor %.5g", std, 1/std)})
	return nil
}

// saveModel writes the diffusers folder: configs and F16 weights.
func (s *session) saveModel() error {
	out := s.cfg.Out
	if err := s.vae.JoinMoments(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	byComp := map[string][]safetensors.NamedTensor{}
	for _, w := range s.weights {
		v, err := s.tp.Read(w.t)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		byComp[w.component] = append(byComp[w.component], safetensors.F16Tensor(w.name, w.t.Shape().Clone(), v))
	}
	for c, ts := range byComp {
		dir := filepath.Join(out, c)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if err := safetensors.Write(filepath.Join(dir, weightFiles[c]), ts, nil, safetensors.Overwrite); err != nil {
			return err
		}
	}
	return writeConfigs(out, s.mc)
}

// writeConfigs writes model_index.json and each component's config as
// diffusers names them.
func writeConfigs(dir string, c model.Config) error {
	u, v, t := c.UNet, c.VAE, c.Text
	down, up := make([]string, len(u.BlockOutChannels)), make([]string, len(u.BlockOutChannels))
	for i := range down {
		down[i] = "DownBlock2D"
		if u.DownAttention[i] {
			down[i] = "CrossAttnDownBlock2D"
		}
		up[i] = "UpBlock2D"
		if u.UpAttention[i] {
			up[i] = "CrossAttnUpBlock2D"
		}
	}
	vdown, vup := make([]string, len(v.BlockOutChannels)), make([]string, len(v.BlockOutChannels))
	for i := range vdown {
		vdown[i], vup[i] = "DownEncoderBlock2D", "UpDecoderBlock2D"
	}
	files := map[string]any{
		"model_index.json": map[string]any{
			"_class_name": "StableDiffusionPipeline", "scheduler": []string{"diffusers", "EulerDiscreteScheduler"},
			"text_encoder": []string{"transformers", "CLIPTextModel"}, "tokenizer": []string{"transformers", "CLIPTokenizer"},
			"unet": []string{"diffusers", "UNet2DConditionModel"}, "vae": []string{"diffusers", "AutoencoderKL"},
			"safety_checker": []any{nil, nil}, "feature_extractor": []any{nil, nil}, "requires_safety_checker": false,
		},
		"scheduler/scheduler_config.json": map[string]any{
			"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": c.Schedule.NumTrainTimesteps,
			"beta_start": c.Schedule.BetaStart, "beta_end": c.Schedule.BetaEnd, "beta_schedule": c.Schedule.BetaSchedule,
			"prediction_type": string(c.Prediction), "steps_offset": 1, "timestep_spacing": "leading",
		},
		"unet/config.json": map[string]any{
			"_class_name": "UNet2DConditionModel", "in_channels": u.InChannels, "out_channels": u.OutChannels,
			"block_out_channels": u.BlockOutChannels, "layers_per_block": u.LayersPerBlock,
			"down_block_types": down, "up_block_types": up, "mid_block_type": "UNetMidBlock2DCrossAttn",
			"attention_head_dim": u.Heads, "cross_attention_dim": u.CrossAttentionDim,
			"use_linear_projection": u.UseLinearProjection, "norm_num_groups": u.NormGroups, "norm_eps": u.NormEps,
			"flip_sin_to_cos": u.FlipSinToCos, "freq_shift": u.FreqShift, "act_fn": "silu",
			"sample_size": 64 / c.VAE.DownsampleFactor(),
		},
		"vae/config.json": map[string]any{
			"_class_name": "AutoencoderKL", "in_channels": v.InChannels, "out_channels": v.OutChannels,
			"latent_channels": v.LatentChannels, "block_out_channels": v.BlockOutChannels,
			"down_block_types": vdown, "up_block_types": vup, "layers_per_block": v.LayersPerBlock,
			"norm_num_groups": v.NormGroups, "scaling_factor": v.ScalingFactor, "act_fn": "silu",
			"mid_block_add_attention": v.MidAttention, "use_quant_conv": v.UseQuantConv,
			"use_post_quant_conv": v.UsePostQuantConv, "sample_size": 64,
		},
		"text_encoder/config.json": map[string]any{
			"architectures": []string{"CLIPTextModel"}, "model_type": "clip_text_model",
			"hidden_size": t.HiddenSize, "intermediate_size": t.IntermediateSize, "num_hidden_layers": t.Layers,
			"num_attention_heads": t.Heads, "hidden_act": t.Activation, "vocab_size": t.VocabSize,
			"max_position_embeddings": t.MaxPositions, "layer_norm_eps": t.LayerNormEps,
			"bos_token_id": c.Tokenizer.BOS, "eos_token_id": c.Tokenizer.EOS, "pad_token_id": c.Tokenizer.Pad,
		},
	}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if err := writeReplace(filepath.Join(dir, name), append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// writeReplace writes a file this run owns through a temporary file and a
// rename, so a crash leaves the old version or the new one.
func writeReplace(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("train: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("train: %w", err)
	}
	return nil
}
