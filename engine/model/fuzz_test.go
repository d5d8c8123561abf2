package model

import (
	"strings"
	"testing"
)

// FuzzMapLDM feeds arbitrary key sets (newline-separated) to the
// single-file name mapping. It must never panic, and must account for
// every key exactly once: bound (three bindings for a fused in_proj),
// ignored, or unexpected.
func FuzzMapLDM(f *testing.F) {
	f.Add("model.diffusion_model.input_blocks.0.0.weight\nmodel.diffusion_model.input_blocks.3.0.op.weight\nmodel.diffusion_model.output_blocks.2.1.conv.weight")
	f.Add("first_stage_model.decoder.up.3.block.0.conv1.weight\nfirst_stage_model.encoder.mid.attn_1.q.weight")
	f.Add("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight\ncond_stage_model.model.transformer.resblocks.1.ln_1.weight")
	f.Add("model.diffusion_model.input_blocks.0.0.op.weight\nmodel.diffusion_model.middle_block.1.proj_in.weight\nmodel.diffusion_model.middle_block.2.in_layers.0.bias")
	f.Fuzz(func(t *testing.T, s string) {
		keys := strings.Split(s, "\n")
		m := mapLDM(keys)
		accounted := len(m.ignored) + len(m.unexpected)
		fused := 0
		for _, b := range m.bindings {
			switch {
			case b.parts == 0:
				accounted++
			case b.parts == 3 && b.part >= 0 && b.part < 3:
				fused++
			default:
				t.Fatalf("binding %+v", b)
			}
			if !strings.HasPrefix(b.canon, "unet/") && !strings.HasPrefix(b.canon, "vae/") && !strings.HasPrefix(b.canon, "text_encoder/") {
				t.Fatalf("canonical name %q has no component", b.canon)
			}
		}
		if fused%3 != 0 || accounted+fused/3 != len(keys) {
			t.Fatalf("%d keys, %d accounted for (+%d fused bindings)", len(keys), accounted, fused)
		}
	})
}
