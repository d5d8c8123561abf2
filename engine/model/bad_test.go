package model_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/safetensors"
)

// keysFile writes a safetensors file holding one F16 element per key.
func keysFile(t *testing.T, name string, keys ...string) string {
	t.Helper()
	var ts []safetensors.NamedTensor
	for _, k := range keys {
		ts = append(ts, safetensors.F16Tensor(k, []int{1}, []float32{0}))
	}
	path := filepath.Join(t.TempDir(), name)
	if err := safetensors.Write(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func drop(key string) func([]safetensors.NamedTensor) []safetensors.NamedTensor {
	return func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
		out := ts[:0]
		for _, x := range ts {
			if x.Name != key {
				out = append(out, x)
			}
		}
		return out
	}
}

func replace(key string, with safetensors.NamedTensor) func([]safetensors.NamedTensor) []safetensors.NamedTensor {
	return func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
		for i, x := range ts {
			if x.Name == key {
				with.Name = key
				ts[i] = with
			}
		}
		return ts
	}
}

// folder links the sd1-tiny diffusers folder into a temp dir and lets
// edit change it.
func folder(t *testing.T, edit func(dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sd1")
	linkTree(t, fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers"), dir)
	edit(dir)
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	os.Remove(path) // may be a symlink into the read-only fixtures
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func editJSON(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, old) {
		t.Fatalf("%s has no %q", path, old)
	}
	writeFile(t, path, strings.Replace(s, old, new, 1))
}

// TestBadModels: every broken or foreign model fails to open with one
// line that names the file and says what is wrong.
func TestBadModels(t *testing.T) {
	cfg := tinyConfig(t)
	sd1 := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	cases := []struct {
		name string
		path func(t *testing.T) string
		want string
		kind string // "unsupported" for an UnsupportedError
	}{
		{"nonexistent", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.safetensors") },
			"nope.safetensors: no such file or folder", ""},
		{"missing tensor", func(t *testing.T) string {
			p, _ := writeLDM(t, "m.safetensors", cfg, drop("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"))
			return p
		}, "m.safetensors: 1 tensor is missing, e.g. unet/down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", ""},
		{"missing proj_in", func(t *testing.T) string {
			p, _ := writeLDM(t, "m.safetensors", cfg, drop("model.diffusion_model.input_blocks.1.1.proj_in.weight"))
			return p
		}, "m.safetensors: 1 tensor is missing, e.g. unet/down_blocks.0.attentions.0.proj_in.weight", ""},
		{"no text encoder", func(t *testing.T) string {
			p, _ := writeLDM(t, "m.safetensors", cfg, func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
				out := ts[:0]
				for _, x := range ts {
					if !strings.HasPrefix(x.Name, "cond_stage_model.") {
						out = append(out, x)
					}
				}
				return out
			})
			return p
		}, "m.safetensors: the file has no text encoder (no cond_stage_model.* tensors); a complete SD 1.x/2.x checkpoint has one", ""},
		{"unet only", func(t *testing.T) string {
			return keysFile(t, "m.safetensors", "model.diffusion_model.input_blocks.0.0.weight")
		}, "m.safetensors: the file has no VAE (no first_stage_model.* tensors)", ""},
		{"wrong shape", func(t *testing.T) string {
			p, _ := writeLDM(t, "m.safetensors", cfg, replace("model.diffusion_model.input_blocks.4.0.in_layers.0.weight",
				safetensors.F16Tensor("", []int{33}, make([]float32, 33))))
			return p
		}, "m.safetensors: tensor model.diffusion_model.input_blocks.4.0.in_layers.0.weight (unet/down_blocks.1.resnets.0.norm1.weight) has shape [33], want [32] for this U-Net", ""},
		{"integer weight", func(t *testing.T) string {
			p, _ := writeLDM(t, "m.safetensors", cfg, replace("model.diffusion_model.out.2.bias",
				safetensors.I32Tensor("", []int{4}, []int32{1, 2, 3, 4})))
			return p
		}, "m.safetensors: tensor model.diffusion_model.out.2.bias is I32; weights must be F16, BF16, F32 or F64", ""},
		{"sdxl", func(t *testing.T) string {
			return keysFile(t, "xl.safetensors", "conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.label_emb.0.0.weight", "model.diffusion_model.input_blocks.0.0.weight")
		}, "xl.safetensors: this is an SDXL model; Glimmer runs Stable Diffusion 1.x and 2.x models", "unsupported"},
		{"sd3", func(t *testing.T) string {
			return keysFile(t, "sd3.safetensors", "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight")
		}, "sd3.safetensors: this is a Stable Diffusion 3 model", "unsupported"},
		{"flux", func(t *testing.T) string {
			return keysFile(t, "flux.safetensors", "double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight")
		}, "flux.safetensors: this is a FLUX model", "unsupported"},
		{"cascade", func(t *testing.T) string {
			return keysFile(t, "c.safetensors", "clip_txt_mapper.weight", "down_blocks.0.0.channelwise.0.weight")
		}, "c.safetensors: this is a Stable Cascade model", "unsupported"},
		{"lora", func(t *testing.T) string {
			return keysFile(t, "l.safetensors", "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight")
		}, "l.safetensors: this is a LoRA (an add-on for a base model, not a model by itself)", "unsupported"},
		{"vae only", func(t *testing.T) string {
			return keysFile(t, "vae.safetensors", "encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight")
		}, "vae.safetensors: this is a standalone VAE, not a whole model", "unsupported"},
		{"unknown", func(t *testing.T) string { return keysFile(t, "x.safetensors", "foo.weight") },
			"x.safetensors: no Stable Diffusion tensors found (1 tensor, e.g. foo.weight)", ""},
		{"png", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "photo.safetensors")
			os.WriteFile(p, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), 0o644)
			return p
		}, "photo.safetensors: not a safetensors file: it is a PNG image", ""},
		{"truncated", func(t *testing.T) string {
			b, _ := os.ReadFile(sd1)
			p := filepath.Join(t.TempDir(), "cut.safetensors")
			os.WriteFile(p, b[:len(b)/2], 0o644)
			return p
		}, "cut.safetensors: tensor ", ""}, // "... run past the N-byte data section (file truncated?)"
		{"empty folder", func(t *testing.T) string { return t.TempDir() },
			": not a model: a folder needs model_index.json (a diffusers model), and this one has none", ""},
		{"folder with a file", func(t *testing.T) string {
			d := t.TempDir()
			os.Symlink(sd1, filepath.Join(d, "sd1-tiny.safetensors"))
			return d
		}, ": a folder without model_index.json is not a diffusers model; to open the file in it, give its path", ""},
		{"no model_index.json", func(t *testing.T) string {
			return folder(t, func(d string) { os.Remove(filepath.Join(d, "model_index.json")) })
		}, "sd1: folder has unet/ or vae/ but no model_index.json; a diffusers model needs one", ""},
		{"bad model_index.json", func(t *testing.T) string {
			return folder(t, func(d string) { writeFile(t, filepath.Join(d, "model_index.json"), "{") })
		}, "sd1/model_index.json: not valid JSON", ""},
		{"sdxl pipeline", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "model_index.json"), "StableDiffusionPipeline", "StableDiffusionXLPipeline")
			})
		}, "sd1: this is an SDXL model (StableDiffusionXLPipeline)", "unsupported"},
		{"flux pipeline", func(t *testing.T) string {
			return folder(t, func(d string) { writeFile(t, filepath.Join(d, "model_index.json"), `{"_class_name": "FluxPipeline"}`) })
		}, "sd1: this is a FLUX model (FluxPipeline)", "unsupported"},
		{"missing vae", func(t *testing.T) string {
			return folder(t, func(d string) { os.RemoveAll(filepath.Join(d, "vae")) })
		}, "sd1: the vae/ folder is missing", ""},
		{"no weights", func(t *testing.T) string {
			return folder(t, func(d string) { os.Remove(filepath.Join(d, "vae", "diffusion_pytorch_model.safetensors")) })
		}, "sd1/vae/: no weights file (looked for diffusion_pytorch_model.safetensors, model.safetensors)", ""},
		{"config contradicts tensors", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "unet", "config.json"), `"cross_attention_dim": 128`, `"cross_attention_dim": 768`)
			})
		}, "sd1/unet/config.json: cross_attention_dim is 768, but the tensors say 128", ""},
		{"sdxl unet config", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "unet", "config.json"), `"addition_embed_type": null`, `"addition_embed_type": "text_time"`)
			})
		}, `sd1/unet/config.json: addition_embed_type = "text_time" is not supported`, ""},
		{"truncated component", func(t *testing.T) string {
			return folder(t, func(d string) {
				p := filepath.Join(d, "unet", "diffusion_pytorch_model.safetensors")
				b, _ := os.ReadFile(p)
				os.Remove(p)
				os.WriteFile(p, b[:1000], 0o644)
			})
		}, "sd1/unet/diffusion_pytorch_model.safetensors: header length", ""},
		{"sample prediction", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "scheduler", "scheduler_config.json"), `"epsilon"`, `"sample"`)
			})
		}, `sd1/scheduler/scheduler_config.json: prediction_type "sample" is not supported`, ""},
		// Settings that would make NaN or meaningless images.
		{"negative norm eps", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "unet", "config.json"), `"norm_eps": 1e-05`, `"norm_eps": -1`)
			})
		}, "sd1/unet/config.json: norm_eps -1 must be between 0 and 1", ""},
		{"groups not dividing", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "unet", "config.json"), `"norm_num_groups": 32`, `"norm_num_groups": 7`)
			})
		}, "sd1/unet/config.json: norm_num_groups 7 does not divide block_out_channels [32 64 64 64]", ""},
		{"zero scaling factor", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "vae", "config.json"), `"scaling_factor": 0.18215`, `"scaling_factor": 0`)
			})
		}, "sd1/vae/config.json: scaling_factor 0 must be positive", ""},
		{"negative layer norm eps", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "text_encoder", "config.json"), `"layer_norm_eps": 1e-05`, `"layer_norm_eps": -1`)
			})
		}, "sd1/text_encoder/config.json: layer_norm_eps -1 must be between 0 and 1", ""},
		{"no training steps", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "scheduler", "scheduler_config.json"), `"num_train_timesteps": 1000`, `"num_train_timesteps": 0`)
			})
		}, "sd1/scheduler/scheduler_config.json: num_train_timesteps 0 is out of range", ""},
		{"beta above 1", func(t *testing.T) string {
			return folder(t, func(d string) {
				editJSON(t, filepath.Join(d, "scheduler", "scheduler_config.json"), `"beta_end": 0.012`, `"beta_end": 2.0`)
			})
		}, "sd1/scheduler/scheduler_config.json: beta_start 0.00085 and beta_end 2 must satisfy 0 < start <= end < 1", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path(t)
			m, err := model.Open(path, model.Options{})
			if err == nil {
				m.Close()
				t.Fatalf("opened; want %q", c.want)
			}
			msg := err.Error()
			t.Logf("%s", msg)
			if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q\nwant it to contain %q, on one line", msg, c.want)
			}
			var ue *model.UnsupportedError
			if (c.kind == "unsupported") != errors.As(err, &ue) {
				t.Errorf("UnsupportedError: %v, want %v", errors.As(err, &ue), c.kind == "unsupported")
			}
		})
	}
}

// TestVPredMarker: a single file carrying ComfyUI's "v_pred" marker key is
// v-prediction; the marker itself is not a weight.
func TestVPredMarker(t *testing.T) {
	cfg := tinyConfig(t)
	path, _ := writeLDM(t, "v.safetensors", cfg, func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
		return append(ts, safetensors.F32Tensor("v_pred", []int{0}, nil))
	})
	m := open(t, path, model.Options{})
	if m.Config.Prediction != model.VPrediction || len(m.Ignored) != 1 {
		t.Errorf("prediction %v (%s), ignored %v", m.Config.Prediction, m.Config.PredictionSource, m.Ignored)
	}
}
