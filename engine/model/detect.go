package model

import (
	"path/filepath"
	"strings"
)

// UnsupportedError is a model Glimmer recognises but does not run.
type UnsupportedError struct {
	Path string
	What string // "an SDXL model", "a LoRA (...)"
}

func (e *UnsupportedError) Error() string {
	return filepath.Base(e.Path) + ": this is " + e.What + "; Glimmer runs Stable Diffusion 1.x and 2.x models"
}

// foreignKeys recognises other model families (and things that are not
// whole models) from tensor names, single-file or diffusers. It returns ""
// when nothing foreign is seen.
func foreignKeys(keys []string) string {
	has := func(pred func(string) bool) bool {
		for _, k := range keys {
			if pred(k) {
				return true
			}
		}
		return false
	}
	prefix := func(ps ...string) func(string) bool {
		return func(k string) bool {
			for _, p := range ps {
				if strings.HasPrefix(k, p) {
					return true
				}
			}
			return false
		}
	}
	contains := func(ss ...string) func(string) bool {
		return func(k string) bool {
			for _, s := range ss {
				if strings.Contains(k, s) {
					return true
				}
			}
			return false
		}
	}
	switch {
	case has(prefix("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) || has(contains(".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".hada_w1_")):
		return "a LoRA (an add-on for a base model, not a model by itself)"
	case has(contains("joint_blocks.")):
		return "a Stable Diffusion 3 model"
	case has(contains("double_blocks.", "single_blocks.")):
		return "a FLUX model"
	case has(prefix("conditioner.embedders.")):
		if has(contains(".time_stack.", ".time_mixer.")) {
			return "a Stable Video Diffusion model"
		}
		return "an SDXL model"
	case has(contains("add_embedding.linear_")) && !has(contains("image_norm", "image_proj")):
		return "an SDXL model"
	case has(prefix("clip_txt_mapper.", "clip_txt_pooled_mapper.", "effnet_mapper.")) || has(contains(".channelwise.")):
		return "a Stable Cascade model"
	case has(contains("encoder_hid_proj.", "add_embedding.image")):
		return "a Kandinsky model"
	case has(contains("adaln_single.", "t_block.", "x_embedder.")):
		return "a DiT model (PixArt or similar)"
	case has(prefix("model.diffusion_model.label_emb.")) || has(prefix("class_embedding.")):
		return "a class-conditioned U-Net (SDXL, SD 2 unCLIP or the SD x4 upscaler)"
	case has(contains("time_embedding.cond_proj.")):
		return "a Latent Consistency (LCM) distilled model"
	case has(prefix("control_model.", "input_hint_block.", "controlnet_cond_embedding.")):
		return "a ControlNet"
	}
	return ""
}

// foreignPipeline recognises a diffusers pipeline class that is not SD 1.x
// or 2.x, returning "" for the ones that are (or may be).
func foreignPipeline(class string) string {
	c := strings.ToLower(class)
	switch {
	case strings.Contains(c, "xl"):
		return "an SDXL model (" + class + ")"
	case strings.Contains(c, "stablediffusion3"):
		return "a Stable Diffusion 3 model (" + class + ")"
	case strings.Contains(c, "flux"):
		return "a FLUX model (" + class + ")"
	case strings.Contains(c, "cascade") || strings.Contains(c, "wuerstchen"):
		return "a Stable Cascade / Würstchen model (" + class + ")"
	case strings.Contains(c, "kandinsky"):
		return "a Kandinsky model (" + class + ")"
	case strings.Contains(c, "pixart"):
		return "a PixArt model (" + class + ")"
	case strings.Contains(c, "latentconsistency"):
		return "a Latent Consistency (LCM) model (" + class + ")"
	case strings.Contains(c, "unclip"):
		return "a Stable unCLIP model (" + class + ")"
	case strings.Contains(c, "upscale"):
		return "a Stable Diffusion upscaler (" + class + ")"
	case strings.Contains(c, "video"):
		return "a video model (" + class + ")"
	case strings.HasPrefix(c, "stablediffusion"):
		return ""
	}
	return "a " + class + " pipeline, not Stable Diffusion"
}

// notAModel describes a single file whose tensors are no known family,
// for the error message.
func notAModel(keys []string) string {
	var vae, unet, taesd bool
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "encoder.down.") || strings.HasPrefix(k, "decoder.up.") ||
			strings.HasPrefix(k, "encoder.down_blocks.") || strings.HasPrefix(k, "decoder.up_blocks."):
			vae = true
		case strings.HasPrefix(k, "down_blocks.") || strings.HasPrefix(k, "input_blocks."):
			unet = true
		case strings.HasPrefix(k, "decoder.layers.") || strings.HasPrefix(k, "encoder.layers."):
			taesd = true
		}
	}
	switch {
	case vae && !unet:
		return "a standalone VAE, not a whole model"
	case unet:
		return "a U-Net on its own, not a whole model (open the diffusers folder it came from)"
	case taesd:
		return "a TAESD preview decoder, not a whole model"
	}
	return ""
}
