package model

import (
	"fmt"

	"glimmer/engine/sample"
)

// Family is a model family Glimmer runs.
type Family string

const (
	SD1 Family = "sd1" // Stable Diffusion 1.x: CLIP ViT-L/14 text encoder, 8 heads
	SD2 Family = "sd2" // Stable Diffusion 2.x: OpenCLIP ViT-H/14, head dim 64, linear proj_in
)

func (f Family) String() string {
	switch f {
	case SD1:
		return "Stable Diffusion 1.x"
	case SD2:
		return "Stable Diffusion 2.x"
	}
	return string(f)
}

// Layout is how a model is stored.
type Layout string

const (
	SingleFile Layout = "single-file" // one .safetensors/.ckpt in the original LDM naming
	Diffusers  Layout = "diffusers"   // a folder with model_index.json, unet/, vae/, text_encoder/
)

// Prediction is what the U-Net's output means.
type Prediction string

const (
	Epsilon     Prediction = "epsilon"      // the added noise ε (SD 1.x, SD 2 base)
	VPrediction Prediction = "v_prediction" // v = α·ε − σ·x₀ (SD 2 768-v)
)

// ParsePrediction reads a user's spelling: "epsilon"/"eps" or
// "v"/"v_prediction"/"v-prediction".
func ParsePrediction(s string) (Prediction, error) {
	switch s {
	case "epsilon", "eps":
		return Epsilon, nil
	case "v", "v_prediction", "v-prediction", "vpred":
		return VPrediction, nil
	}
	return "", fmt.Errorf("unknown prediction type %q (want epsilon or v)", s)
}

// Component names, also the prefixes of canonical tensor names.
const (
	UNet        = "unet"
	VAE         = "vae"
	TextEncoder = "text_encoder"
)

// Components lists the components in a fixed order.
var Components = []string{UNet, VAE, TextEncoder}

// Config is every hyper-parameter the networks need, derived from the
// tensors (and the diffusers config files when present). Building the
// networks from it and binding tensors by their canonical names is enough
// to run the model; nothing else about the file matters.
type Config struct {
	Family Family
	// Prediction is the U-Net output's meaning; PredictionSource says where
	// it came from (scheduler config, a caller's override, the file's
	// v_pred marker, or the single-file default).
	Prediction       Prediction
	PredictionSource string
	UNet             UNetConfig
	VAE              VAEConfig
	Text             TextConfig
	Schedule         ScheduleConfig
	Tokenizer        TokenizerConfig
}

// UNetConfig describes a diffusers UNet2DConditionModel (LDM's
// UNetModel). Levels are indexed in the down direction: level 0 is the
// full latent resolution. Canonical tensor names are diffusers':
// down_blocks.<level>, mid_block, up_blocks.<i> with up block i at level
// len(BlockOutChannels)-1-i.
//
// Fixed by both families (not stored in files), listed so no network code
// has to guess: GroupNorm with NormGroups groups; eps NormEps in ResNets
// and conv_norm_out, AttnNormEps in the transformers' input GroupNorm;
// LayerNorm eps 1e-5 in the transformer blocks; SiLU everywhere; GEGLU
// feed-forward with inner width 4×C (ff.net.0.proj is [8C, C]: value
// half first, gate half second); attention without biases on q/k/v;
// sinusoidal timestep embedding of BlockOutChannels[0] channels with
// flip_sin_to_cos = FlipSinToCos and shift FreqShift, then Linear→SiLU→
// Linear to TimeEmbedDim; 3x3 convolutions with padding 1; downsampling
// by a stride-2 3x3 conv (padding 1); upsampling nearest ×2 then a 3x3 conv.
type UNetConfig struct {
	InChannels  int // latent channels in: 4 (9 for inpainting models)
	OutChannels int // 4

	// BlockOutChannels is the width of each level: SD 1.5 [320 640 1280 1280].
	BlockOutChannels []int
	// LayersPerBlock is the number of ResNets in each down block; each up
	// block has one more (it also consumes the down block's input skip).
	LayersPerBlock int
	// DownAttention[level]: the down block has a transformer after each
	// ResNet (CrossAttnDownBlock2D). SD: [true true true false].
	DownAttention []bool
	// UpAttention[i], in up-block order: SD: [false true true true].
	UpAttention []bool
	// MidAttention: the mid block is ResNet, transformer, ResNet.
	MidAttention bool

	// Heads[level] is the attention head count of that level's
	// transformers; up block i uses Heads[len-1-i], the mid block
	// Heads[len-1]. SD1 uses 8 everywhere; SD2 keeps the head dim at 64
	// (heads = channels/64).
	Heads []int
	// CrossAttentionDim is the width of the text embedding that attn2's
	// to_k/to_v read: 768 (SD1), 1024 (SD2).
	CrossAttentionDim int
	// TransformerDepth is the number of BasicTransformerBlocks in each
	// Transformer2DModel (1 in SD 1.x/2.x).
	TransformerDepth int
	// UseLinearProjection: proj_in/proj_out are Linear [C, C] applied to
	// [B, HW, C] (SD2), not 1x1 convolutions [C, C, 1, 1] (SD1).
	UseLinearProjection bool

	TimeEmbedDim int     // 4 × BlockOutChannels[0]: 1280 for SD 1.5
	FlipSinToCos bool    // true: the sinusoidal embedding is [cos, sin]
	FreqShift    int     // 0
	NormGroups   int     // 32
	NormEps      float64 // 1e-5: ResNet GroupNorms, conv_norm_out
	AttnNormEps  float64 // 1e-6: the GroupNorm at each transformer's input
}

// HeadDim is the per-head width at a level.
func (u UNetConfig) HeadDim(level int) int { return u.BlockOutChannels[level] / u.Heads[level] }

// Levels is the number of resolution levels.
func (u UNetConfig) Levels() int { return len(u.BlockOutChannels) }

// VAEConfig describes a diffusers AutoencoderKL (LDM's AutoencoderKL).
// Fixed: GroupNorm with NormGroups groups and eps NormEps everywhere
// (ResNets, the mid attention's group_norm, conv_norm_out), SiLU, a
// single-head attention (head dim = channels) in each mid block whose
// to_q/to_k/to_v/to_out.0 are Linear [C, C] with bias, downsampling by a
// stride-2 3x3 conv on input padded (0,1,0,1), upsampling nearest ×2 then
// a 3x3 conv. The encoder outputs 2×LatentChannels channels (mean and
// log-variance) through quant_conv.
type VAEConfig struct {
	InChannels       int   // image channels: 3
	OutChannels      int   // 3
	LatentChannels   int   // 4
	BlockOutChannels []int // encoder levels, down order: SD [128 256 512 512]
	// LayersPerBlock is the number of ResNets per encoder level; decoder
	// levels have one more.
	LayersPerBlock   int
	MidAttention     bool
	UseQuantConv     bool    // quant_conv [2L, 2L, 1, 1] after the encoder
	UsePostQuantConv bool    // post_quant_conv [L, L, 1, 1] before the decoder
	ScalingFactor    float64 // latents = scaling × posterior sample: 0.18215
	NormGroups       int     // 32
	NormEps          float64 // 1e-6
}

// DownsampleFactor is the latent-to-pixel scale: 2^(levels-1), 8 for SD.
func (v VAEConfig) DownsampleFactor() int { return 1 << (len(v.BlockOutChannels) - 1) }

// TextConfig describes the CLIP text transformer (transformers'
// CLIPTextModel; SD2's OpenCLIP weights are mapped onto the same names).
// Fixed: pre-LayerNorm blocks, causal self-attention with biases, the
// output is final_layer_norm of the last layer run.
type TextConfig struct {
	HiddenSize       int // 768 (SD1), 1024 (SD2)
	IntermediateSize int // MLP width: 4 × hidden
	// Layers is how many encoder layers to run: 12 (SD1), 23 (SD2: the
	// OpenCLIP model has 24, SD 2.x conditions on the penultimate one, so
	// the single-file loader drops the last, as diffusers does).
	Layers       int
	Heads        int    // hidden / HeadDim
	HeadDim      int    // 64
	Activation   string // "quick_gelu" (x·σ(1.702x), SD1) or "gelu" (exact erf GELU, SD2)
	VocabSize    int    // 49408
	MaxPositions int    // 77
	LayerNormEps float64
}

// ScheduleConfig is the training noise schedule (what the samplers'
// timesteps refer to).
type ScheduleConfig struct {
	NumTrainTimesteps int     // 1000
	BetaStart         float64 // 0.00085
	BetaEnd           float64 // 0.012
	BetaSchedule      string  // "scaled_linear": betas = linspace(√start, √end, N)²; "linear": linspace(start, end, N)
}

// Train is the schedule as the samplers take it, with SD's steps_offset
// of 1 (the scheduler configs of SD 1.x and 2.x all have it).
func (s ScheduleConfig) Train() sample.TrainConfig {
	return sample.TrainConfig{Steps: s.NumTrainTimesteps, BetaStart: s.BetaStart, BetaEnd: s.BetaEnd,
		StepsOffset: 1, Linear: s.BetaSchedule == "linear"}
}

// TokenizerConfig says how prompts become ids.
type TokenizerConfig struct {
	// Dir is the diffusers tokenizer folder (vocab.json, merges.txt), or
	// "" for single-file models: use the built-in CLIP BPE vocabulary,
	// which every SD 1.x/2.x model shares.
	Dir         string
	BOS, EOS    int // 49406 <|startoftext|>, 49407 <|endoftext|>
	Pad         int // id that fills the 77 slots after EOS: 49407 (SD1), 0 "!" (SD2)
	MaxLength   int // 77
	PadTokenStr string
}
