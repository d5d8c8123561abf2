//go:build linux

package model_test

import (
	"path/filepath"
	"reflect"
	"runtime"
	"syscall"
	"testing"
	"time"

	"glimmer/engine/model"
	"glimmer/engine/model/modeltest"
	"glimmer/engine/safetensors"
)

// sd15Extras are the non-learned tensors real SD 1.5 files carry beside
// the weights (v1-5-pruned.ckpt has all of them); the loader skips them.
var sd15Extras = []modeltest.Stored{
	{Key: "betas", Shape: []int{1000}}, {Key: "alphas_cumprod", Shape: []int{1000}},
	{Key: "alphas_cumprod_prev", Shape: []int{1000}}, {Key: "sqrt_alphas_cumprod", Shape: []int{1000}},
	{Key: "sqrt_one_minus_alphas_cumprod", Shape: []int{1000}}, {Key: "log_one_minus_alphas_cumprod", Shape: []int{1000}},
	{Key: "sqrt_recip_alphas_cumprod", Shape: []int{1000}}, {Key: "sqrt_recipm1_alphas_cumprod", Shape: []int{1000}},
	{Key: "posterior_variance", Shape: []int{1000}}, {Key: "posterior_log_variance_clipped", Shape: []int{1000}},
	{Key: "posterior_mean_coef1", Shape: []int{1000}}, {Key: "posterior_mean_coef2", Shape: []int{1000}},
	{Key: "logvar", Shape: []int{1000}}, {Key: "model_ema.decay", Shape: []int{}},
	{Key: "model_ema.num_updates", Shape: []int{}},
	{Key: "model_ema.diffusion_modelinput_blocks00weight", Shape: []int{320, 4, 3, 3}},
	{Key: "cond_stage_model.transformer.text_model.embeddings.position_ids", Shape: []int{1, 77}},
}

// TestSD15FullSize is the done-when check for loading: a full-size SD 1.5
// single file (every one of the TSV's 1,130 tensors with its real LDM
// name and shape, F32, 4.27 GB) opens and yields its info in under a
// second, using under 200 MB more memory. The file is sparse: a real
// header, a hole for the data, so it costs no disk and is made in
// milliseconds, and the test always runs.
//
// It also checks the mapping: every TSV row's LDM key must come out
// under the row's canonical name with the row's diffusers shape.
func TestSD15FullSize(t *testing.T) {
	rows := tsvRows(t)
	if len(rows) != 1130 {
		t.Fatalf("TSV has %d rows, want 1130", len(rows))
	}
	var layout []modeltest.Stored
	for _, r := range rows {
		layout = append(layout, modeltest.Stored{Key: r.LDMKey, Shape: r.LDMShape, Parts: []string{r.Canonical()}})
	}
	layout = append(layout, sd15Extras...)
	path := filepath.Join(t.TempDir(), "v1-5-synthetic.safetensors")
	size, err := modeltest.WriteSparse(path, layout, safetensors.F32)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == nil && st.Blocks*512 > 64<<20 {
		t.Skipf("the temp file system does not keep files sparse (%d MB on disk)", st.Blocks*512>>20)
	}

	runtime.GC()
	rss0 := modeltest.VmRSS(t)
	start := time.Now()
	m, err := model.Open(path, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	stats := m.Stats()
	cfg := m.Config
	elapsed := time.Since(start)
	rss1 := modeltest.VmRSS(t)
	t.Logf("SD 1.5 full size: %.2f GB file, Open+Stats %v, RSS +%.1f MB (%.1f → %.1f MB)",
		float64(size)/1e9, elapsed, float64(rss1-rss0)/(1<<20), float64(rss0)/(1<<20), float64(rss1)/(1<<20))
	if size < 4_200_000_000 {
		t.Errorf("file is %d bytes; SD 1.5 in F32 is 4.27 GB", size)
	}
	if elapsed > time.Second {
		t.Errorf("Open+Stats took %v, want < 1s", elapsed)
	}
	if rss1-rss0 > 200<<20 {
		t.Errorf("RSS grew by %d MB, want < 200 MB", (rss1-rss0)>>20)
	}

	// Every row mapped, by rule, to its canonical name and shape.
	if m.Len() != 1130 || len(m.Unexpected) != 0 || len(m.Ignored) != len(sd15Extras) {
		t.Errorf("%d canonical, unexpected %v, %d ignored", m.Len(), m.Unexpected, len(m.Ignored))
	}
	for _, r := range rows {
		info, ok := m.Info(r.Canonical())
		if !ok || info.Key != r.LDMKey || !info.Shape.Equal(r.DiffusersShape) {
			t.Errorf("%s → %s %v, want %s %v", r.LDMKey, info.Key, info.Shape, r.Canonical(), r.DiffusersShape)
		}
	}
	want := model.Config{
		Family: model.SD1, Prediction: model.Epsilon, PredictionSource: "default for single-file checkpoints",
		UNet: model.UNetConfig{
			InChannels: 4, OutChannels: 4, BlockOutChannels: []int{320, 640, 1280, 1280}, LayersPerBlock: 2,
			DownAttention: []bool{true, true, true, false}, UpAttention: []bool{false, true, true, true}, MidAttention: true,
			Heads: []int{8, 8, 8, 8}, CrossAttentionDim: 768, TransformerDepth: 1, UseLinearProjection: false,
			TimeEmbedDim: 1280, FlipSinToCos: true, FreqShift: 0, NormGroups: 32, NormEps: 1e-5, AttnNormEps: 1e-6,
		},
		VAE: model.VAEConfig{
			InChannels: 3, OutChannels: 3, LatentChannels: 4, BlockOutChannels: []int{128, 256, 512, 512}, LayersPerBlock: 2,
			MidAttention: true, UseQuantConv: true, UsePostQuantConv: true, ScalingFactor: 0.18215, NormGroups: 32, NormEps: 1e-6,
		},
		Text: model.TextConfig{
			HiddenSize: 768, IntermediateSize: 3072, Layers: 12, Heads: 12, HeadDim: 64, Activation: "quick_gelu",
			VocabSize: 49408, MaxPositions: 77, LayerNormEps: 1e-5,
		},
		Schedule:  model.ScheduleConfig{NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: "scaled_linear"},
		Tokenizer: model.TokenizerConfig{BOS: 49406, EOS: 49407, Pad: 49407, MaxLength: 77, PadTokenStr: "<|endoftext|>"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}
	// Parameter totals from the TSV's header (known SD 1.5 counts).
	for i, w := range []struct {
		tensors int
		params  int64
	}{{686, 859_520_964}, {248, 83_653_863}, {196, 123_060_480}} {
		if stats[i].Tensors != w.tensors || stats[i].Params != w.params || stats[i].DTypes[safetensors.F32] != w.tensors {
			t.Errorf("%s: %+v, want %d tensors, %d params", stats[i].Name, stats[i], w.tensors, w.params)
		}
	}
	// Data is readable at the far end of the 4 GB file (a hole: zeros).
	last := rows[len(rows)-1].Canonical()
	v, err := m.Float32(last)
	if err != nil || len(v) == 0 || v[0] != 0 {
		t.Errorf("%s: %d values, %v", last, len(v), err)
	}
}

// TestSD15ExpectedMatchesTSV: the tensor list Config.Expected derives for
// SD 1.5's configuration is exactly the TSV's diffusers side.
func TestSD15ExpectedMatchesTSV(t *testing.T) {
	rows := tsvRows(t)
	var layout []modeltest.Stored
	for _, r := range rows {
		layout = append(layout, modeltest.Stored{Key: r.LDMKey, Shape: r.LDMShape})
	}
	path := filepath.Join(t.TempDir(), "sd15.safetensors")
	if _, err := modeltest.WriteSparse(path, layout, safetensors.F16); err != nil {
		t.Fatal(err)
	}
	m := open(t, path, model.Options{})
	want := map[string]string{}
	for _, r := range rows {
		want[r.Canonical()] = r.DiffusersShape.String()
	}
	got := map[string]string{}
	for _, s := range m.Config.Expected() {
		got[s.Name] = s.Shape.String()
	}
	if !reflect.DeepEqual(got, want) {
		for n := range want {
			if got[n] != want[n] {
				t.Errorf("%s: expected %s, TSV %s", n, got[n], want[n])
			}
		}
		for n := range got {
			if _, ok := want[n]; !ok {
				t.Errorf("%s expected, not in the TSV", n)
			}
		}
	}
}
