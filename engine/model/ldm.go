package model

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The original (CompVis LDM / Stability) single-file naming is mapped to
// the diffusers naming by rule: block indices are computed from the U-Net
// topology found in the keys themselves, so any SD 1.x/2.x variant
// (other widths, depths, level counts) maps without a table.

// binding ties a canonical tensor to a stored one.
type binding struct {
	canon string // "unet/conv_in.weight"
	key   string // the stored tensor's key
	// part/parts: the canonical tensor is the part-th of parts equal row
	// blocks of the stored one (OpenCLIP's fused in_proj holds q, k, v).
	part, parts int
	// squeeze drops the trailing 1x1 of a [C, C, 1, 1] convolution that
	// diffusers stores as a Linear [C, C] (the VAE mid-block attention).
	squeeze bool
}

// Ignored is a stored tensor deliberately left out, and why.
type Ignored struct {
	Key, Reason string
}

type mapping struct {
	bindings   []binding
	ignored    []Ignored
	unexpected []string
	// textLayout is "clip" (SD1's transformers CLIP), "openclip" (SD2), or
	// "" when the file has no text encoder.
	textLayout string
}

const (
	ldmUNet     = "model.diffusion_model."
	ldmVAE      = "first_stage_model."
	ldmCLIP     = "cond_stage_model.transformer."
	ldmOpenCLIP = "cond_stage_model.model."
)

// ignoredLDM says why a non-learned or unused single-file key is skipped,
// or "" when the key is not one of those.
func ignoredLDM(key string) string {
	switch {
	case strings.HasPrefix(key, "model_ema."):
		return "EMA copy of the weights (model_ema.*)"
	case key == "betas" || key == "logvar" || key == "lvlb_weights" ||
		strings.HasPrefix(key, "alphas_cumprod") || strings.HasPrefix(key, "sqrt_") ||
		strings.HasPrefix(key, "posterior_") || strings.HasPrefix(key, "log_one_minus_"):
		return "noise-schedule buffer (recomputed from the schedule)"
	case key == "v_pred":
		return "v-prediction marker"
	case strings.HasSuffix(key, "position_ids"):
		return "position_ids buffer"
	case strings.HasPrefix(key, ldmVAE+"loss."):
		return "VAE training loss"
	case key == ldmOpenCLIP+"text_projection" || key == ldmOpenCLIP+"logit_scale" || key == ldmOpenCLIP+"attn_mask":
		return "OpenCLIP projection/logit scale/mask (unused by SD)"
	}
	return ""
}

// mapLDM maps single-file keys to canonical names.
func mapLDM(keys []string) mapping {
	var m mapping
	var unetKeys, vaeKeys, clipKeys, openKeys []string
	for _, k := range keys {
		if r := ignoredLDM(k); r != "" {
			m.ignored = append(m.ignored, Ignored{k, r})
			continue
		}
		switch {
		case strings.HasPrefix(k, ldmUNet):
			unetKeys = append(unetKeys, k)
		case strings.HasPrefix(k, ldmVAE):
			vaeKeys = append(vaeKeys, k)
		case strings.HasPrefix(k, ldmCLIP):
			clipKeys = append(clipKeys, k)
		case strings.HasPrefix(k, ldmOpenCLIP):
			openKeys = append(openKeys, k)
		default:
			m.unexpected = append(m.unexpected, k)
		}
	}
	m.mapUNet(unetKeys)
	m.mapVAE(vaeKeys)
	switch {
	case len(clipKeys) > 0:
		m.textLayout = "clip"
		m.mapCLIP(clipKeys)
		m.unexpected = append(m.unexpected, openKeys...)
	case len(openKeys) > 0:
		m.textLayout = "openclip"
		m.mapOpenCLIP(openKeys)
	}
	sort.Strings(m.unexpected)
	return m
}

func (m *mapping) bind(canon, key string) {
	m.bindings = append(m.bindings, binding{canon: canon, key: key})
}

// splitParam splits "a.b.c.weight" into ("a.b.c", "weight").
func splitParam(s string) (string, string) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", s
	}
	return s[:i], s[i+1:]
}

// index parses the leading "N." of s, returning N and the rest.
func index(s string) (int, string, bool) {
	i := strings.IndexByte(s, '.')
	if i <= 0 {
		return 0, "", false
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 0 || n > 1<<20 {
		return 0, "", false
	}
	return n, s[i+1:], true
}

var unetResnet = map[string]string{
	"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
	"out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}

func resnetName(rest string, table map[string]string) (string, bool) {
	mod, param := splitParam(rest)
	if param != "weight" && param != "bias" {
		return "", false
	}
	if to, ok := table[mod]; ok {
		return to + "." + param, true
	}
	return "", false
}

// attentionRest accepts a SpatialTransformer's sub-key; its names equal
// diffusers' Transformer2DModel's.
func attentionRest(rest string) bool {
	for _, p := range []string{"norm.", "proj_in.", "proj_out.", "transformer_blocks."} {
		if strings.HasPrefix(rest, p) {
			return true
		}
	}
	return false
}

// isAttention reports whether the keys under prefix belong to a
// transformer (rather than a ResNet or an up/downsampler).
func isAttention(keys []string, prefix string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) && attentionRest(k[len(prefix):]) {
			return true
		}
	}
	return false
}

// mapUNet: LDM's UNetModel keeps its blocks in flat lists.
// input_blocks[0] is conv_in; then each level has LayersPerBlock entries
// of [ResBlock, SpatialTransformer?] and, except the last level, one
// [Downsample]. middle_block is [ResBlock, SpatialTransformer, ResBlock].
// output_blocks has LayersPerBlock+1 entries per level, each [ResBlock,
// SpatialTransformer?, Upsample?] with the Upsample on the level's last.
func (m *mapping) mapUNet(keys []string) {
	if len(keys) == 0 {
		return
	}
	rel := make([]string, len(keys))
	for i, k := range keys {
		rel[i] = k[len(ldmUNet):]
	}
	// Layers per block: the first Downsample ("input_blocks.N.0.op")
	// sits at N = LayersPerBlock+1. With no Downsample (one level) every
	// input block after conv_in is a layer.
	layers, maxIn := -1, 0
	for _, r := range rel {
		if rest, ok := strings.CutPrefix(r, "input_blocks."); ok {
			n, sub, ok := index(rest)
			if !ok {
				continue
			}
			maxIn = max(maxIn, n)
			if n >= 1 && strings.HasPrefix(sub, "0.op.") && (layers < 0 || n-1 < layers) {
				layers = n - 1
			}
		}
	}
	if layers < 0 {
		layers = maxIn
	}
	per := layers + 1
	midAttn := isAttention(rel, "middle_block.1.")
	outAttn := map[int]bool{} // output_blocks.N.1 is a transformer
	for _, r := range rel {
		if rest, ok := strings.CutPrefix(r, "output_blocks."); ok {
			if n, sub, ok := index(rest); ok {
				if a, ok := strings.CutPrefix(sub, "1."); ok && attentionRest(a) {
					outAttn[n] = true
				}
			}
		}
	}
	for i, r := range rel {
		key := keys[i]
		canon, ok := unetName(r, layers, per, midAttn, outAttn)
		if !ok {
			m.unexpected = append(m.unexpected, key)
			continue
		}
		m.bind("unet/"+canon, key)
	}
}

func unetName(r string, layers, per int, midAttn bool, outAttn map[int]bool) (string, bool) {
	switch {
	case strings.HasPrefix(r, "time_embed."):
		n, param, ok := index(r[len("time_embed."):])
		if !ok || (n != 0 && n != 2) {
			return "", false
		}
		return fmt.Sprintf("time_embedding.linear_%d.%s", n/2+1, param), param == "weight" || param == "bias"
	case strings.HasPrefix(r, "out."):
		n, param, ok := index(r[len("out."):])
		if !ok || (param != "weight" && param != "bias") {
			return "", false
		}
		switch n {
		case 0:
			return "conv_norm_out." + param, true
		case 2:
			return "conv_out." + param, true
		}
		return "", false
	case strings.HasPrefix(r, "input_blocks."):
		n, sub, ok := index(r[len("input_blocks."):])
		if !ok {
			return "", false
		}
		j, rest, ok := index(sub)
		if !ok {
			return "", false
		}
		if n == 0 {
			if j != 0 || (rest != "weight" && rest != "bias") {
				return "", false
			}
			return "conv_in." + rest, true
		}
		lvl, l := (n-1)/per, (n-1)%per
		switch {
		case l < layers && j == 0:
			if s, ok := resnetName(rest, unetResnet); ok {
				return fmt.Sprintf("down_blocks.%d.resnets.%d.%s", lvl, l, s), true
			}
		case l < layers && j == 1 && attentionRest(rest):
			return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", lvl, l, rest), true
		case l == layers && j == 0 && strings.HasPrefix(rest, "op."):
			return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", lvl, rest[len("op."):]), true
		}
		return "", false
	case strings.HasPrefix(r, "middle_block."):
		j, rest, ok := index(r[len("middle_block."):])
		if !ok {
			return "", false
		}
		switch {
		case j == 1 && midAttn:
			if attentionRest(rest) {
				return "mid_block.attentions.0." + rest, true
			}
		case j == 0 || j == 1 || j == 2:
			res := 0
			if j > 0 {
				res = 1
			}
			if j == 2 && !midAttn {
				return "", false
			}
			if s, ok := resnetName(rest, unetResnet); ok {
				return fmt.Sprintf("mid_block.resnets.%d.%s", res, s), true
			}
		}
		return "", false
	case strings.HasPrefix(r, "output_blocks."):
		n, sub, ok := index(r[len("output_blocks."):])
		if !ok {
			return "", false
		}
		j, rest, ok := index(sub)
		if !ok {
			return "", false
		}
		up, l := n/per, n%per
		switch {
		case j == 0:
			if s, ok := resnetName(rest, unetResnet); ok {
				return fmt.Sprintf("up_blocks.%d.resnets.%d.%s", up, l, s), true
			}
		case j == 1 && outAttn[n]:
			if attentionRest(rest) {
				return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", up, l, rest), true
			}
		case (j == 1 || j == 2) && l == layers && strings.HasPrefix(rest, "conv."):
			return fmt.Sprintf("up_blocks.%d.upsamplers.0.%s", up, rest), true
		}
		return "", false
	}
	return "", false
}

var vaeResnet = map[string]string{
	"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut",
}

var vaeAttn = map[string]string{
	"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0",
}

// mapVAE: LDM's Encoder has down[i].block[j], down[i].downsample; the
// Decoder has up[i] with i counted from the *lowest* resolution, the
// reverse of diffusers' up_blocks order.
func (m *mapping) mapVAE(keys []string) {
	if len(keys) == 0 {
		return
	}
	ups := 0
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, ldmVAE+"decoder.up."); ok {
			if n, _, ok := index(rest); ok {
				ups = max(ups, n+1)
			}
		}
	}
	for _, k := range keys {
		canon, squeeze, ok := vaeName(k[len(ldmVAE):], ups)
		if !ok {
			m.unexpected = append(m.unexpected, k)
			continue
		}
		m.bindings = append(m.bindings, binding{canon: "vae/" + canon, key: k, squeeze: squeeze})
	}
}

func vaeName(r string, ups int) (string, bool, bool) {
	for _, direct := range []string{"quant_conv.", "post_quant_conv.", "encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.", "decoder.conv_out."} {
		if strings.HasPrefix(r, direct) {
			_, param := splitParam(r)
			return r, false, (param == "weight" || param == "bias") && strings.Count(r, ".") == strings.Count(direct, ".")
		}
	}
	half, rest, ok := strings.Cut(r, ".")
	if !ok || (half != "encoder" && half != "decoder") {
		return "", false, false
	}
	switch {
	case rest == "norm_out.weight" || rest == "norm_out.bias":
		return half + ".conv_norm_out." + rest[len("norm_out."):], false, true
	case strings.HasPrefix(rest, "mid."):
		sub := rest[len("mid."):]
		if b, ok := strings.CutPrefix(sub, "block_"); ok {
			n, rr, ok := index(b)
			if !ok || (n != 1 && n != 2) {
				return "", false, false
			}
			if s, ok := resnetName(rr, vaeResnet); ok {
				return fmt.Sprintf("%s.mid_block.resnets.%d.%s", half, n-1, s), false, true
			}
			return "", false, false
		}
		if a, ok := strings.CutPrefix(sub, "attn_1."); ok {
			mod, param := splitParam(a)
			to, ok := vaeAttn[mod]
			if !ok || (param != "weight" && param != "bias") {
				return "", false, false
			}
			return fmt.Sprintf("%s.mid_block.attentions.0.%s.%s", half, to, param), param == "weight" && mod != "norm", true
		}
	case half == "encoder" && strings.HasPrefix(rest, "down."):
		lvl, sub, ok := index(rest[len("down."):])
		if !ok {
			return "", false, false
		}
		return vaeLevel(half+".down_blocks", lvl, sub, "downsample.", "downsamplers")
	case half == "decoder" && strings.HasPrefix(rest, "up."):
		lvl, sub, ok := index(rest[len("up."):])
		if !ok || lvl >= ups {
			return "", false, false
		}
		return vaeLevel(half+".up_blocks", ups-1-lvl, sub, "upsample.", "upsamplers")
	}
	return "", false, false
}

func vaeLevel(block string, i int, sub, sampleLDM, sampleDiffusers string) (string, bool, bool) {
	if b, ok := strings.CutPrefix(sub, "block."); ok {
		j, rr, ok := index(b)
		if !ok {
			return "", false, false
		}
		if s, ok := resnetName(rr, vaeResnet); ok {
			return fmt.Sprintf("%s.%d.resnets.%d.%s", block, i, j, s), false, true
		}
		return "", false, false
	}
	if c, ok := strings.CutPrefix(sub, sampleLDM+"conv."); ok && (c == "weight" || c == "bias") {
		return fmt.Sprintf("%s.%d.%s.0.conv.%s", block, i, sampleDiffusers, c), false, true
	}
	return "", false, false
}

// mapCLIP: SD1 stores transformers' CLIPTextModel under
// cond_stage_model.transformer.; very old files lack the "text_model."
// level.
func (m *mapping) mapCLIP(keys []string) {
	for _, k := range keys {
		r := k[len(ldmCLIP):]
		if !strings.HasPrefix(r, "text_model.") {
			r = "text_model." + r
		}
		if !strings.HasPrefix(r, "text_model.embeddings.") && !strings.HasPrefix(r, "text_model.encoder.layers.") &&
			!strings.HasPrefix(r, "text_model.final_layer_norm.") {
			m.unexpected = append(m.unexpected, k)
			continue
		}
		m.bind("text_encoder/"+r, k)
	}
}

var openCLIPLayer = map[string]string{
	"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
	"attn.out_proj": "self_attn.out_proj",
}

// mapOpenCLIP: SD2's OpenCLIP ViT-H text tower. Its attention keeps q, k
// and v fused in in_proj_weight [3C, C] / in_proj_bias [3C]; they are
// split into three canonical tensors (row blocks, no copy). SD 2.x uses
// the penultimate layer's output, so the last resblock is not used.
func (m *mapping) mapOpenCLIP(keys []string) {
	last := -1
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, ldmOpenCLIP+"transformer.resblocks."); ok {
			if n, _, ok := index(rest); ok {
				last = max(last, n)
			}
		}
	}
	const p = "text_encoder/text_model."
	for _, k := range keys {
		r := k[len(ldmOpenCLIP):]
		switch r {
		case "token_embedding.weight":
			m.bind(p+"embeddings.token_embedding.weight", k)
			continue
		case "positional_embedding":
			m.bind(p+"embeddings.position_embedding.weight", k)
			continue
		case "ln_final.weight", "ln_final.bias":
			m.bind(p+"final_layer_norm."+r[len("ln_final."):], k)
			continue
		}
		rest, ok := strings.CutPrefix(r, "transformer.resblocks.")
		if !ok {
			m.unexpected = append(m.unexpected, k)
			continue
		}
		n, sub, ok := index(rest)
		if !ok {
			m.unexpected = append(m.unexpected, k)
			continue
		}
		if n == last {
			m.ignored = append(m.ignored, Ignored{k, "last OpenCLIP layer (SD 2.x uses the penultimate layer)"})
			continue
		}
		layer := fmt.Sprintf("%sencoder.layers.%d.", p, n)
		switch sub {
		case "attn.in_proj_weight", "attn.in_proj_bias":
			param := "weight"
			if sub == "attn.in_proj_bias" {
				param = "bias"
			}
			for i, qkv := range []string{"q_proj", "k_proj", "v_proj"} {
				m.bindings = append(m.bindings, binding{canon: layer + "self_attn." + qkv + "." + param, key: k, part: i, parts: 3})
			}
			continue
		}
		if s, ok := resnetName(sub, openCLIPLayer); ok {
			m.bind(layer+s, k)
			continue
		}
		m.unexpected = append(m.unexpected, k)
	}
}
