package model

import (
	"fmt"
	"strings"

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

// anyPrefix reports whether some tensor's name starts with p.
func (s shapes) anyPrefix(p string) bool {
	for n := range s {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// count returns how many consecutive indices i (from 0) have some tensor
// under the prefix fmt.Sprintf(format, i). Presence is judged by any
// tensor, so one missing tensor is reported as missing by the validation
// instead of silently removing a block.
func (s shapes) count(format string) int {
	n := 0
	for s.anyPrefix(fmt.Sprintf(format, n)) {
		n++
	}
	return n
}

// firstDim returns extent axis of the first of names present.
func (s shapes) firstDim(axis int, names ...string) int {
	for _, n := range names {
		if d, ok := s.dim(n, axis); ok {
			return d
		}
	}
	return 0
}

// deriveUNet reads a U-Net's architecture off its tensors. Heads are not
// stored anywhere; the caller fills them by family rule or config.
func deriveUNet(s shapes) (UNetConfig, error) {
	var u UNetConfig
	if !s.anyPrefix("unet/") {
		return u, fmt.Errorf("no U-Net tensors")
	}
	u.InChannels = s.firstDim(1, "unet/conv_in.weight")
	u.OutChannels = s.firstDim(0, "unet/conv_out.weight", "unet/conv_out.bias")
	levels := s.count("unet/down_blocks.%d.")
	if levels == 0 {
		return u, fmt.Errorf("U-Net has no down blocks (no unet/down_blocks.0.* tensors)")
	}
	u.LayersPerBlock = s.count("unet/down_blocks.0.resnets.%d.")
	for l := 0; l < levels; l++ {
		r := fmt.Sprintf("unet/down_blocks.%d.resnets.0.", l)
		u.BlockOutChannels = append(u.BlockOutChannels, s.firstDim(0, r+"conv1.weight", r+"conv1.bias", r+"conv2.weight", r+"norm2.weight"))
		u.DownAttention = append(u.DownAttention, s.anyPrefix(fmt.Sprintf("unet/down_blocks.%d.attentions.", l)))
		u.UpAttention = append(u.UpAttention, s.anyPrefix(fmt.Sprintf("unet/up_blocks.%d.attentions.", l)))
	}
	u.MidAttention = s.anyPrefix("unet/mid_block.attentions.")
	// Transformer-wide settings come from the first transformer that has
	// the tensor in question.
	var attns []string
	for l := 0; l < levels; l++ {
		if u.DownAttention[l] {
			attns = append(attns, fmt.Sprintf("unet/down_blocks.%d.attentions.0.", l))
		}
	}
	if u.MidAttention {
		attns = append(attns, "unet/mid_block.attentions.0.")
	}
	for l := 0; l < levels; l++ {
		if u.UpAttention[l] {
			attns = append(attns, fmt.Sprintf("unet/up_blocks.%d.attentions.0.", l))
		}
	}
	if len(attns) == 0 {
		return u, fmt.Errorf("U-Net has no cross-attention (no attentions.* tensors)")
	}
	pick := func(f func(a string) (int, bool)) int {
		for _, a := range attns {
			if v, ok := f(a); ok {
				return v
			}
		}
		return 0
	}
	u.CrossAttentionDim = pick(func(a string) (int, bool) {
		for _, k := range []string{"to_k", "to_v"} {
			if d, ok := s.dim(a+"transformer_blocks.0.attn2."+k+".weight", 1); ok {
				return d, true
			}
		}
		return 0, false
	})
	u.UseLinearProjection = pick(func(a string) (int, bool) {
		for _, p := range []string{"proj_in.weight", "proj_out.weight"} {
			if sh, ok := s[a+p]; ok {
				if len(sh) == 2 {
					return 1, true
				}
				return 0, true
			}
		}
		return 0, false
	}) == 1
	u.TransformerDepth = s.count(attns[0] + "transformer_blocks.%d.")
	u.TimeEmbedDim = s.firstDim(0, "unet/time_embedding.linear_1.weight", "unet/time_embedding.linear_1.bias", "unet/time_embedding.linear_2.weight")
	if c0, ok := s.dim("unet/conv_in.weight", 0); ok && c0 != u.BlockOutChannels[0] {
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
		if c <= 0 {
			return fmt.Errorf("U-Net level %d has no width (its first ResNet is missing)", l)
		}
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
	if !s.anyPrefix("vae/") {
		return v, fmt.Errorf("no VAE tensors")
	}
	v.InChannels = s.firstDim(1, "vae/encoder.conv_in.weight")
	v.OutChannels = s.firstDim(0, "vae/decoder.conv_out.weight", "vae/decoder.conv_out.bias")
	v.LatentChannels = s.firstDim(1, "vae/decoder.conv_in.weight", "vae/post_quant_conv.weight")
	levels := s.count("vae/encoder.down_blocks.%d.")
	if levels == 0 {
		return v, fmt.Errorf("VAE has no encoder blocks (no vae/encoder.down_blocks.0.* tensors)")
	}
	for l := 0; l < levels; l++ {
		r := fmt.Sprintf("vae/encoder.down_blocks.%d.resnets.0.", l)
		v.BlockOutChannels = append(v.BlockOutChannels, s.firstDim(0, r+"conv1.weight", r+"conv1.bias", r+"conv2.weight", r+"norm2.weight"))
	}
	v.LayersPerBlock = s.count("vae/encoder.down_blocks.0.resnets.%d.")
	v.MidAttention = s.anyPrefix("vae/encoder.mid_block.attentions.") || s.anyPrefix("vae/decoder.mid_block.attentions.")
	v.UseQuantConv = s.anyPrefix("vae/quant_conv.")
	v.UsePostQuantConv = s.anyPrefix("vae/post_quant_conv.")
	v.ScalingFactor = 0.18215
	v.NormGroups, v.NormEps = 32, 1e-6
	return v, nil
}

func deriveText(s shapes, f Family) (TextConfig, error) {
	var t TextConfig
	const p = "text_encoder/text_model."
	if !s.anyPrefix("text_encoder/") {
		return t, fmt.Errorf("no text encoder tensors")
	}
	t.VocabSize = s.firstDim(0, p+"embeddings.token_embedding.weight")
	t.HiddenSize = s.firstDim(1, p+"embeddings.token_embedding.weight", p+"embeddings.position_embedding.weight")
	if t.HiddenSize == 0 {
		t.HiddenSize = s.firstDim(0, p+"final_layer_norm.weight", p+"final_layer_norm.bias")
	}
	t.MaxPositions = s.firstDim(0, p+"embeddings.position_embedding.weight")
	t.Layers = s.count(p + "encoder.layers.%d.")
	t.IntermediateSize = s.firstDim(0, p+"encoder.layers.0.mlp.fc1.weight", p+"encoder.layers.0.mlp.fc1.bias")
	t.HeadDim = 64
	if t.HiddenSize == 0 || t.HiddenSize%64 != 0 {
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
