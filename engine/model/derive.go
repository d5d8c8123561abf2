package model

import (
	"fmt"

	"glimmer/engine"
)

// shapes is the canonical view the derivation reads: name → shape.
type shapes map[string]engine.Shape

func (s shapes) dim(name string, axis int) (int, bool) {
	sh, ok := s[name]
	if !ok || axis >= len(sh) {
		return 0, false
	}
	return sh[axis], true
}

func (s shapes) has(name string) bool { _, ok := s[name]; return ok }

// count returns how many consecutive indices i (from 0) have
// fmt.Sprintf(format, i) present.
func (s shapes) count(format string, args ...any) int {
	n := 0
	for s.has(fmt.Sprintf(format, append(append([]any(nil), args...), n)...)) {
		n++
	}
	return n
}

// deriveUNet reads a U-Net's architecture off its tensors. Heads are not
// stored anywhere; the caller fills them by family rule or config.
func deriveUNet(s shapes) (UNetConfig, error) {
	var u UNetConfig
	c0, ok := s.dim("unet/conv_in.weight", 0)
	if !ok {
		return u, fmt.Errorf("no U-Net (unet/conv_in.weight is missing)")
	}
	u.InChannels, _ = s.dim("unet/conv_in.weight", 1)
	u.OutChannels, _ = s.dim("unet/conv_out.weight", 0)
	levels := s.count("unet/down_blocks.%d.resnets.0.conv1.weight")
	if levels == 0 {
		return u, fmt.Errorf("U-Net has no down blocks (unet/down_blocks.0.resnets.0.conv1.weight is missing)")
	}
	u.LayersPerBlock = s.count("unet/down_blocks.0.resnets.%d.conv1.weight")
	for l := 0; l < levels; l++ {
		c, _ := s.dim(fmt.Sprintf("unet/down_blocks.%d.resnets.0.conv1.weight", l), 0)
		u.BlockOutChannels = append(u.BlockOutChannels, c)
		u.DownAttention = append(u.DownAttention, s.has(fmt.Sprintf("unet/down_blocks.%d.attentions.0.proj_in.weight", l)))
		u.UpAttention = append(u.UpAttention, s.has(fmt.Sprintf("unet/up_blocks.%d.attentions.0.proj_in.weight", l)))
	}
	u.MidAttention = s.has("unet/mid_block.attentions.0.proj_in.weight")
	// The first transformer found gives the cross-attention width, the
	// projection kind and the depth.
	first := ""
	for l := 0; l < levels && first == ""; l++ {
		if u.DownAttention[l] {
			first = fmt.Sprintf("unet/down_blocks.%d.attentions.0", l)
		}
	}
	if first == "" && u.MidAttention {
		first = "unet/mid_block.attentions.0"
	}
	if first == "" {
		return u, fmt.Errorf("U-Net has no cross-attention (no attentions.0.proj_in.weight anywhere)")
	}
	u.CrossAttentionDim, _ = s.dim(first+".transformer_blocks.0.attn2.to_k.weight", 1)
	u.UseLinearProjection = len(s[first+".proj_in.weight"]) == 2
	u.TransformerDepth = s.count(first + ".transformer_blocks.%d.norm1.weight")
	u.TimeEmbedDim, _ = s.dim("unet/time_embedding.linear_1.weight", 0)
	if c0 != u.BlockOutChannels[0] {
		return u, fmt.Errorf("U-Net conv_in has %d channels, its first block %d", c0, u.BlockOutChannels[0])
	}
	u.FlipSinToCos, u.FreqShift = true, 0
	u.NormGroups, u.NormEps, u.AttnNormEps = 32, 1e-5, 1e-6
	return u, nil
}

// familyHeads applies the family's head rule: SD1 has 8 heads at every
// level; SD2 keeps the head dim at 64.
func familyHeads(f Family, u *UNetConfig) error {
	heads := make([]int, len(u.BlockOutChannels))
	for l, c := range u.BlockOutChannels {
		switch f {
		case SD1:
			if c%8 != 0 {
				return fmt.Errorf("U-Net level %d has %d channels, which SD 1's 8 heads do not divide", l, c)
			}
			heads[l] = 8
		case SD2:
			if c%64 != 0 {
				return fmt.Errorf("U-Net level %d has %d channels, not a multiple of SD 2's head dim 64", l, c)
			}
			heads[l] = c / 64
		}
	}
	u.Heads = heads
	return nil
}

func deriveVAE(s shapes) (VAEConfig, error) {
	var v VAEConfig
	if !s.has("vae/encoder.conv_in.weight") && !s.has("vae/decoder.conv_in.weight") {
		return v, fmt.Errorf("no VAE (vae/encoder.conv_in.weight is missing)")
	}
	v.InChannels, _ = s.dim("vae/encoder.conv_in.weight", 1)
	v.OutChannels, _ = s.dim("vae/decoder.conv_out.weight", 0)
	v.LatentChannels, _ = s.dim("vae/decoder.conv_in.weight", 1)
	levels := s.count("vae/encoder.down_blocks.%d.resnets.0.conv1.weight")
	if levels == 0 {
		return v, fmt.Errorf("VAE has no encoder blocks (vae/encoder.down_blocks.0.resnets.0.conv1.weight is missing)")
	}
	for l := 0; l < levels; l++ {
		c, _ := s.dim(fmt.Sprintf("vae/encoder.down_blocks.%d.resnets.0.conv1.weight", l), 0)
		v.BlockOutChannels = append(v.BlockOutChannels, c)
	}
	v.LayersPerBlock = s.count("vae/encoder.down_blocks.0.resnets.%d.conv1.weight")
	v.MidAttention = s.has("vae/encoder.mid_block.attentions.0.to_q.weight")
	v.UseQuantConv = s.has("vae/quant_conv.weight")
	v.UsePostQuantConv = s.has("vae/post_quant_conv.weight")
	v.ScalingFactor = 0.18215
	v.NormGroups, v.NormEps = 32, 1e-6
	return v, nil
}

func deriveText(s shapes, f Family) (TextConfig, error) {
	var t TextConfig
	const p = "text_encoder/text_model."
	var ok bool
	if t.VocabSize, ok = s.dim(p+"embeddings.token_embedding.weight", 0); !ok {
		return t, fmt.Errorf("no text encoder (%sembeddings.token_embedding.weight is missing)", p)
	}
	t.HiddenSize, _ = s.dim(p+"embeddings.token_embedding.weight", 1)
	t.MaxPositions, _ = s.dim(p+"embeddings.position_embedding.weight", 0)
	t.Layers = s.count(p + "encoder.layers.%d.mlp.fc1.weight")
	t.IntermediateSize, _ = s.dim(p+"encoder.layers.0.mlp.fc1.weight", 0)
	t.HeadDim = 64
	if t.HiddenSize%64 != 0 {
		return t, fmt.Errorf("text encoder width %d is not a multiple of CLIP's head dim 64", t.HiddenSize)
	}
	t.Heads = t.HiddenSize / 64
	t.Activation = "quick_gelu"
	if f == SD2 {
		t.Activation = "gelu"
	}
	t.LayerNormEps = 1e-5
	return t, nil
}

func defaultSchedule() ScheduleConfig {
	return ScheduleConfig{NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: "scaled_linear"}
}

func defaultTokenizer(f Family) TokenizerConfig {
	t := TokenizerConfig{BOS: 49406, EOS: 49407, Pad: 49407, MaxLength: 77, PadTokenStr: "<|endoftext|>"}
	if f == SD2 {
		t.Pad, t.PadTokenStr = 0, "!" // OpenCLIP's tokenizer pads with zeros, "!"
	}
	return t
}
