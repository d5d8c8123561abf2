package model_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"glimmer/engine"
	"glimmer/engine/ckpt"
	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/model/modeltest"
	"glimmer/engine/safetensors"
)

func open(t *testing.T, path string, opts model.Options) *model.Model {
	t.Helper()
	m, err := model.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestSD1SingleFileEqualsDiffusers: the fixture's single file (LDM names)
// and diffusers folder hold the same weights, so after mapping every
// canonical tensor must have the same shape and the same bytes. Exact
// comparison: both are the same fp16 values, only renamed (and the VAE
// attention reshaped, which does not move bytes).
func TestSD1SingleFileEqualsDiffusers(t *testing.T) {
	single := open(t, fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"), model.Options{})
	diff := open(t, fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers"), model.Options{})
	if single.Layout != model.SingleFile || diff.Layout != model.Diffusers {
		t.Errorf("layouts %v, %v", single.Layout, diff.Layout)
	}
	if !reflect.DeepEqual(single.Names(), diff.Names()) {
		t.Fatalf("canonical names differ: %d vs %d", single.Len(), diff.Len())
	}
	if single.Len() != 980 {
		t.Errorf("%d tensors, want 980", single.Len())
	}
	for _, n := range single.Names() {
		a, err := single.Raw(n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := diff.Raw(n)
		if err != nil {
			t.Fatal(err)
		}
		if a.DType != engine.F16 || b.DType != engine.F16 || !a.Shape.Equal(b.Shape) || !bytes.Equal(a.Bytes, b.Bytes) {
			t.Fatalf("%s: single %v %v, diffusers %v %v, bytes equal %v", n, a.DType, a.Shape, b.DType, b.Shape, bytes.Equal(a.Bytes, b.Bytes))
		}
	}
	// The configs agree, except where the diffusers folder has more to say.
	sc, dc := single.Config, diff.Config
	sc.PredictionSource, dc.PredictionSource = "", ""
	sc.Tokenizer.Dir, dc.Tokenizer.Dir = "", ""
	if !reflect.DeepEqual(sc, dc) {
		t.Errorf("configs differ:\nsingle    %+v\ndiffusers %+v", sc, dc)
	}
	if len(single.Ignored) != 0 || len(single.Unexpected) != 0 || len(diff.Unexpected) != 0 {
		t.Errorf("ignored %v, unexpected %v / %v", single.Ignored, single.Unexpected, diff.Unexpected)
	}
	// The VAE attention is a 1x1 conv in the LDM file and Linear here.
	info, _ := single.Info("vae/decoder.mid_block.attentions.0.to_q.weight")
	if info.Key != "first_stage_model.decoder.mid.attn_1.q.weight" || !info.Shape.Equal(engine.Shape{64, 64}) {
		t.Errorf("VAE attention: %+v", info)
	}
	// Weights views drop the component prefix.
	w := single.Component(model.UNet)
	if v, err := w.Float32("conv_in.weight"); err != nil || len(v) != 32*4*3*3 {
		t.Errorf("unet conv_in: %d values, %v", len(v), err)
	}
	if got, want := len(w.Names()), countPrefix(single.Names(), "unet/"); got != want || got == 0 {
		t.Errorf("unet view has %d names, want %d", got, want)
	}
}

func countPrefix(names []string, p string) int {
	n := 0
	for _, s := range names {
		if strings.HasPrefix(s, p) {
			n++
		}
	}
	return n
}

// jsonFile reads a fixture config file into a generic map.
func jsonFile(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func ints(v any) []int {
	switch v := v.(type) {
	case float64:
		return []int{int(v)}
	case []any:
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x.(float64))
		}
		return out
	}
	return nil
}

func repeat(v []int, n int) []int {
	if len(v) == 1 {
		out := make([]int, n)
		for i := range out {
			out[i] = v[0]
		}
		return out
	}
	return v
}

// checkAgainstJSON compares a derived Config with a diffusers folder's
// config files, field by field, the way diffusers reads them.
func checkAgainstJSON(t *testing.T, c model.Config, dir string) {
	t.Helper()
	u := jsonFile(t, filepath.Join(dir, "unet", "config.json"))
	n := len(c.UNet.BlockOutChannels)
	heads := u["num_attention_heads"]
	if heads == nil {
		heads = u["attention_head_dim"] // diffusers: a head *count* despite its name
	}
	var downAttn, upAttn []bool
	for _, s := range u["down_block_types"].([]any) {
		downAttn = append(downAttn, strings.HasPrefix(s.(string), "CrossAttn"))
	}
	for _, s := range u["up_block_types"].([]any) {
		upAttn = append(upAttn, strings.HasPrefix(s.(string), "CrossAttn"))
	}
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"unet in_channels", c.UNet.InChannels, int(u["in_channels"].(float64))},
		{"unet out_channels", c.UNet.OutChannels, int(u["out_channels"].(float64))},
		{"unet block_out_channels", c.UNet.BlockOutChannels, ints(u["block_out_channels"])},
		{"unet layers_per_block", c.UNet.LayersPerBlock, int(u["layers_per_block"].(float64))},
		{"unet cross_attention_dim", c.UNet.CrossAttentionDim, int(u["cross_attention_dim"].(float64))},
		{"unet heads", c.UNet.Heads, repeat(ints(heads), n)},
		{"unet use_linear_projection", c.UNet.UseLinearProjection, u["use_linear_projection"].(bool)},
		{"unet transformer_layers_per_block", c.UNet.TransformerDepth, int(u["transformer_layers_per_block"].(float64))},
		{"unet down attention", c.UNet.DownAttention, downAttn},
		{"unet up attention", c.UNet.UpAttention, upAttn},
		{"unet mid attention", c.UNet.MidAttention, u["mid_block_type"] == "UNetMidBlock2DCrossAttn"},
		{"unet norm_num_groups", c.UNet.NormGroups, int(u["norm_num_groups"].(float64))},
		{"unet norm_eps", c.UNet.NormEps, u["norm_eps"].(float64)},
		{"unet flip_sin_to_cos", c.UNet.FlipSinToCos, u["flip_sin_to_cos"].(bool)},
		{"unet freq_shift", c.UNet.FreqShift, int(u["freq_shift"].(float64))},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: derived %v, config.json %v", c.field, c.got, c.want)
		}
	}
	v := jsonFile(t, filepath.Join(dir, "vae", "config.json"))
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"vae in_channels", c.VAE.InChannels, int(v["in_channels"].(float64))},
		{"vae out_channels", c.VAE.OutChannels, int(v["out_channels"].(float64))},
		{"vae latent_channels", c.VAE.LatentChannels, int(v["latent_channels"].(float64))},
		{"vae block_out_channels", c.VAE.BlockOutChannels, ints(v["block_out_channels"])},
		{"vae layers_per_block", c.VAE.LayersPerBlock, int(v["layers_per_block"].(float64))},
		{"vae norm_num_groups", c.VAE.NormGroups, int(v["norm_num_groups"].(float64))},
		{"vae scaling_factor", c.VAE.ScalingFactor, v["scaling_factor"].(float64)},
		{"vae mid_block_add_attention", c.VAE.MidAttention, v["mid_block_add_attention"].(bool)},
		{"vae use_quant_conv", c.VAE.UseQuantConv, v["use_quant_conv"].(bool)},
		{"vae use_post_quant_conv", c.VAE.UsePostQuantConv, v["use_post_quant_conv"].(bool)},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: derived %v, config.json %v", c.field, c.got, c.want)
		}
	}
	x := jsonFile(t, filepath.Join(dir, "text_encoder", "config.json"))
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"text hidden_size", c.Text.HiddenSize, int(x["hidden_size"].(float64))},
		{"text intermediate_size", c.Text.IntermediateSize, int(x["intermediate_size"].(float64))},
		{"text num_hidden_layers", c.Text.Layers, int(x["num_hidden_layers"].(float64))},
		{"text num_attention_heads", c.Text.Heads, int(x["num_attention_heads"].(float64))},
		{"text hidden_act", c.Text.Activation, x["hidden_act"].(string)},
		{"text vocab_size", c.Text.VocabSize, int(x["vocab_size"].(float64))},
		{"text max_position_embeddings", c.Text.MaxPositions, int(x["max_position_embeddings"].(float64))},
		{"text layer_norm_eps", c.Text.LayerNormEps, x["layer_norm_eps"].(float64)},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: derived %v, config.json %v", c.field, c.got, c.want)
		}
	}
	s := jsonFile(t, filepath.Join(dir, "scheduler", "scheduler_config.json"))
	if string(c.Prediction) != s["prediction_type"].(string) && c.PredictionSource != "override" {
		t.Errorf("prediction %v, scheduler_config.json %v", c.Prediction, s["prediction_type"])
	}
	if c.Schedule.BetaStart != s["beta_start"].(float64) || c.Schedule.BetaEnd != s["beta_end"].(float64) ||
		c.Schedule.BetaSchedule != s["beta_schedule"].(string) || c.Schedule.NumTrainTimesteps != int(s["num_train_timesteps"].(float64)) {
		t.Errorf("schedule %+v, scheduler_config.json %v", c.Schedule, s)
	}
}

// TestConfigsMatchJSON: the configuration derived from the tensors (and
// for the single file, the SD1 family rules alone) must equal what the
// fixtures' config.json files say.
func TestConfigsMatchJSON(t *testing.T) {
	sd1 := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	sd2 := fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers")
	single := open(t, fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"), model.Options{})
	t.Run("sd1 single file", func(t *testing.T) { checkAgainstJSON(t, single.Config, sd1) })
	d1 := open(t, sd1, model.Options{})
	t.Run("sd1 diffusers", func(t *testing.T) { checkAgainstJSON(t, d1.Config, sd1) })
	d2 := open(t, sd2, model.Options{})
	t.Run("sd2 diffusers", func(t *testing.T) { checkAgainstJSON(t, d2.Config, sd2) })

	if single.Config.Family != model.SD1 || d1.Config.Family != model.SD1 || d2.Config.Family != model.SD2 {
		t.Errorf("families %v %v %v", single.Config.Family, d1.Config.Family, d2.Config.Family)
	}
	if single.Config.Prediction != model.Epsilon || d2.Config.Prediction != model.VPrediction {
		t.Errorf("predictions %v %v", single.Config.Prediction, d2.Config.Prediction)
	}
	// sd2-tiny: attention_head_dim [4, 8, 8, 8] over widths [32, 64, ...]
	// is head dim 8 everywhere (fixtures README).
	for l := range d2.Config.UNet.BlockOutChannels {
		if hd := d2.Config.UNet.HeadDim(l); hd != 8 {
			t.Errorf("sd2 level %d head dim %d, want 8", l, hd)
		}
	}
	if d1.Config.UNet.HeadDim(0) != 4 || d1.Config.UNet.HeadDim(1) != 8 {
		t.Errorf("sd1 head dims %d %d, want 4 8 (8 heads)", d1.Config.UNet.HeadDim(0), d1.Config.UNet.HeadDim(1))
	}
	tk1, tk2 := d1.Config.Tokenizer, d2.Config.Tokenizer
	if tk1.Pad != 49407 || tk2.Pad != 0 || tk2.PadTokenStr != "!" || tk1.Dir == "" || single.Config.Tokenizer.Dir != "" {
		t.Errorf("tokenizers %+v %+v %+v", tk1, tk2, single.Config.Tokenizer)
	}
	if d2.Len() != 964 || len(d2.Config.Expected()) != 964 {
		t.Errorf("sd2: %d tensors, %d expected", d2.Len(), len(d2.Config.Expected()))
	}
}

func TestPredictionOverride(t *testing.T) {
	m := open(t, fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"), model.Options{Prediction: model.VPrediction})
	if m.Config.Prediction != model.VPrediction || m.Config.PredictionSource != "override" {
		t.Errorf("%v from %q", m.Config.Prediction, m.Config.PredictionSource)
	}
	d := open(t, fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers"), model.Options{Prediction: model.Epsilon})
	if d.Config.Prediction != model.Epsilon {
		t.Errorf("override ignored: %v", d.Config.Prediction)
	}
	for in, want := range map[string]model.Prediction{"v": model.VPrediction, "v_prediction": model.VPrediction, "epsilon": model.Epsilon, "eps": model.Epsilon} {
		if p, err := model.ParsePrediction(in); err != nil || p != want {
			t.Errorf("ParsePrediction(%q) = %v, %v", in, p, err)
		}
	}
	if _, err := model.ParsePrediction("x0"); err == nil {
		t.Error("ParsePrediction(x0): no error")
	}
}

// TestCkptSingleFile: the fixture's weights re-saved in torch.save's zip
// format (as a training checkpoint, under "state_dict") open to the same
// canonical tensors, byte for byte.
func TestCkptSingleFile(t *testing.T) {
	stPath := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	st, err := safetensors.Open(stPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var tensors []safetensors.NamedTensor
	for _, n := range st.Names() {
		info, _ := st.Info(n)
		raw, _ := st.Raw(n)
		tensors = append(tensors, safetensors.NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: raw})
	}
	tensors = append(tensors, safetensors.F32Tensor("betas", []int{1000}, make([]float32, 1000)))
	path := filepath.Join(t.TempDir(), "sd1-tiny.ckpt")
	if err := ckpt.Write(path, tensors, ckpt.WriteOptions{StateDict: true}); err != nil {
		t.Fatal(err)
	}
	a := open(t, stPath, model.Options{})
	b := open(t, path, model.Options{})
	if b.Format != "ckpt" || b.Layout != model.SingleFile || !reflect.DeepEqual(a.Names(), b.Names()) {
		t.Fatalf("format %s, %d vs %d names", b.Format, a.Len(), b.Len())
	}
	for _, n := range a.Names() {
		x, _ := a.Raw(n)
		y, err := b.Raw(n)
		if err != nil || !bytes.Equal(x.Bytes, y.Bytes) || !x.Shape.Equal(y.Shape) {
			t.Fatalf("%s differs (%v)", n, err)
		}
	}
	if len(b.Ignored) != 1 || b.Ignored[0].Key != "betas" {
		t.Errorf("ignored %v", b.Ignored)
	}
}

// tinyConfig is sd1-tiny's configuration with a small vocabulary, for
// synthetic files that stay small.
func tinyConfig(t *testing.T) model.Config {
	m := open(t, fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"), model.Options{})
	c := m.Config
	c.Text.VocabSize = 1000
	return c
}

func tsvRows(t *testing.T) []modeltest.Row {
	rows, err := modeltest.ReadTSV(fixtures.Path(t, "refdata", "sd15_tensor_names.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// writeLDM writes a synthetic single file for cfg; edit may change the
// tensor list first.
func writeLDM(t *testing.T, name string, cfg model.Config, edit func([]safetensors.NamedTensor) []safetensors.NamedTensor) (string, []modeltest.Stored) {
	t.Helper()
	layout, err := modeltest.LDMLayout(&cfg, tsvRows(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := modeltest.Tensors(layout)
	if edit != nil {
		ts = edit(ts)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := safetensors.Write(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	return path, layout
}

// TestSD2SingleFile: an SD 2.x single file (OpenCLIP text tower with fused
// q/k/v, an unused last layer, SD2 U-Net with linear projections) maps to
// the canonical names, with every canonical tensor holding exactly the
// bytes of its stored tensor (or of its row block of in_proj).
func TestSD2SingleFile(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Family = model.SD2
	cfg.UNet.BlockOutChannels = []int{64, 128, 128, 128}
	cfg.UNet.Heads = []int{1, 2, 2, 2} // SD2 rule: channels / 64
	cfg.UNet.TimeEmbedDim = 256
	cfg.UNet.UseLinearProjection = true
	cfg.Text.Activation = "gelu"
	cfg.Text.Layers = 2
	cfg.Tokenizer.Pad, cfg.Tokenizer.PadTokenStr = 0, "!"
	path, layout := writeLDM(t, "sd2.safetensors", cfg, nil)
	m := open(t, path, model.Options{})
	want := cfg
	want.Prediction, want.PredictionSource = model.Epsilon, "default for single-file checkpoints"
	if !reflect.DeepEqual(m.Config, want) {
		t.Errorf("config\n got %+v\nwant %+v", m.Config, want)
	}
	st, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bound := 0
	for _, s := range layout {
		raw, _ := st.Raw(s.Key)
		for i, canon := range s.Parts {
			part := len(raw) / len(s.Parts)
			d, err := m.Raw(canon)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d.Bytes, raw[i*part:(i+1)*part]) {
				t.Fatalf("%s is not block %d of %s", canon, i, s.Key)
			}
			bound++
		}
	}
	if bound != m.Len() || m.Len() != len(cfg.Expected()) {
		t.Errorf("%d bound, %d canonical, %d expected", bound, m.Len(), len(cfg.Expected()))
	}
	// What the loader skipped: the last OpenCLIP layer (12 tensors),
	// text_projection and logit_scale.
	if len(m.Ignored) != 14 || len(m.Unexpected) != 0 {
		t.Errorf("ignored %d %v, unexpected %v", len(m.Ignored), m.Ignored, m.Unexpected)
	}
	q, _ := m.Info("text_encoder/text_model.encoder.layers.1.self_attn.v_proj.bias")
	if q.Key != "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_bias" || !q.Shape.Equal(engine.Shape{128}) {
		t.Errorf("v_proj.bias: %+v", q)
	}
}

// TestStoredDTypes: BF16, F32 and F64 weights come out of Raw as F32 (F16
// stays F16), with exactly the stored values (the fills are exact in all
// four types; F64 → F32 is exact for values that started as float32).
func TestStoredDTypes(t *testing.T) {
	cfg := tinyConfig(t)
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16, safetensors.F64} {
		path, _ := writeLDM(t, "m.safetensors", cfg, func(ts []safetensors.NamedTensor) []safetensors.NamedTensor {
			for i, x := range ts {
				v, _ := safetensors.ToFloat32(x.DType, x.Data)
				ts[i] = convert(x.Name, x.Shape, v, dt)
			}
			return ts
		})
		m := open(t, path, model.Options{})
		for _, n := range []string{"unet/conv_in.weight", "vae/decoder.mid_block.attentions.0.to_q.weight", "text_encoder/text_model.final_layer_norm.bias"} {
			d, err := m.Raw(n)
			if err != nil || d.DType != engine.F32 || len(d.Bytes) != 4*d.Shape.Numel() {
				t.Fatalf("%s %s: %v %v %d bytes", dt, n, err, d.DType, len(d.Bytes))
			}
			info, _ := m.Info(n)
			want := modeltest.Fill(info.Key, d.Shape.Numel())
			got, _ := m.Float32(n)
			for i := range want {
				w := safetensors.HalfToFloat32(safetensors.Float32ToHalf(want[i])) // the fill was stored as F16 first
				if dt == safetensors.BF16 {
					w = bf16(w)
				}
				if got[i] != w {
					t.Fatalf("%s %s[%d] = %v, want %v", dt, n, i, got[i], w)
				}
			}
		}
		if st := m.Stats(); st[0].DTypes[dt] != st[0].Tensors {
			t.Errorf("%s: stats %+v", dt, st[0])
		}
	}
}

func bf16(f float32) float32 {
	v, _ := safetensors.ToFloat32(safetensors.BF16, convert("", []int{1}, []float32{f}, safetensors.BF16).Data)
	return v[0]
}

// convert stores float32 values as dt (BF16 by rounding to nearest even).
func convert(name string, shape []int, v []float32, dt safetensors.DType) safetensors.NamedTensor {
	switch dt {
	case safetensors.F32:
		return safetensors.F32Tensor(name, shape, v)
	case safetensors.F16:
		return safetensors.F16Tensor(name, shape, v)
	}
	t := safetensors.F32Tensor(name, shape, v)
	out := safetensors.NamedTensor{Name: name, DType: dt, Shape: shape}
	for i := 0; i < len(t.Data); i += 4 {
		b := uint32(t.Data[i]) | uint32(t.Data[i+1])<<8 | uint32(t.Data[i+2])<<16 | uint32(t.Data[i+3])<<24
		switch dt {
		case safetensors.BF16:
			b += 0x7fff + (b>>16)&1
			out.Data = append(out.Data, byte(b>>16), byte(b>>24))
		case safetensors.F64:
			f := float64(v[i/4])
			var e [8]byte
			u := math.Float64bits(f)
			for k := range e {
				e[k] = byte(u >> (8 * k))
			}
			out.Data = append(out.Data, e[:]...)
		}
	}
	return out
}

func TestSubView(t *testing.T) {
	m := open(t, fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"), model.Options{})
	mid := m.Component(model.UNet).Sub("mid_block").Sub("attentions.0")
	info, ok := mid.Info("transformer_blocks.0.attn2.to_k.weight")
	if !ok || info.Name != "unet/mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight" || !info.Shape.Equal(engine.Shape{64, 128}) {
		t.Errorf("%+v %v", info, ok)
	}
	if n := len(mid.Names()); n != 26 { // norm, proj_in, proj_out: 6; one transformer block: 20
		t.Errorf("mid attention has %d tensors, want 26", n)
	}
}
