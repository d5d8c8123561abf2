package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"glimmer/engine/ckpt"
	"glimmer/engine/safetensors"
)

// A diffusers folder: model_index.json names the pipeline and its
// components; unet/, vae/ and text_encoder/ each hold config.json and a
// weights file whose tensor names are already canonical (after the
// component prefix); scheduler/scheduler_config.json holds the training
// schedule and prediction type; tokenizer/ the CLIP BPE files.

// readJSON reads a JSON object file into v. A missing file returns
// os.ErrNotExist (wrapped).
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("not valid JSON (at byte %d: %v)", se.Offset, err)
		}
		return fmt.Errorf("unexpected content: %v", err)
	}
	return nil
}

// rel names a file inside the model folder for messages:
// "sd15/unet/config.json".
func rel(dir, path string) string {
	r, err := filepath.Rel(filepath.Dir(dir), path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}

// relError rewrites a reader's "file: message" error to name the file
// relative to the model folder, so the unet's and vae's
// diffusion_pytorch_model.safetensors are told apart.
func relError(dir string, err error) error {
	var se *safetensors.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %s", rel(dir, se.Path), se.Msg)
	}
	var ce *ckpt.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %s", rel(dir, ce.Path), ce.Msg)
	}
	return err
}

func openDiffusers(dir string, opts Options) (*Model, error) {
	var index map[string]any
	indexPath := filepath.Join(dir, "model_index.json")
	if err := readJSON(indexPath, &index); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notAModelFolder(dir)
		}
		return nil, fmt.Errorf("%s: %v", rel(dir, indexPath), unwrapPathError(err))
	}
	class, _ := index["_class_name"].(string)
	if what := foreignPipeline(class); what != "" {
		return nil, &UnsupportedError{Path: dir, What: what}
	}
	for _, c := range []string{"text_encoder_2", "tokenizer_2"} {
		if v, ok := index[c].([]any); ok && len(v) == 2 && v[0] != nil {
			return nil, &UnsupportedError{Path: dir, What: "an SDXL-style model (it has " + c + ")"}
		}
	}
	if _, ok := index["transformer"]; ok {
		return nil, &UnsupportedError{Path: dir, What: "a transformer (DiT) model, not a U-Net one"}
	}

	m := &Model{Path: dir, Layout: Diffusers, entries: map[string]*entry{}}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	formats := map[string]bool{}
	for _, comp := range Components {
		src, note, err := openComponent(dir, comp, opts.PreferFP16)
		if err != nil {
			return nil, err
		}
		m.sources = append(m.sources, src)
		m.Files = append(m.Files, src.Path())
		if note != "" {
			m.Notes = append(m.Notes, note)
		}
		if isCkpt(src) {
			formats["ckpt"] = true
		} else {
			formats["safetensors"] = true
		}
		keys := src.Names()
		if what := foreignKeys(keys); what != "" {
			return nil, &UnsupportedError{Path: dir, What: what + " (in " + comp + "/)"}
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "position_ids") {
				m.Ignored = append(m.Ignored, Ignored{comp + "/" + k, "position_ids buffer"})
				continue
			}
			b := binding{canon: comp + "/" + k, key: k}
			if comp == VAE {
				b.canon, b.squeeze = legacyVAE(b.canon)
			}
			if err := m.add(src, b); err != nil {
				return nil, relError(dir, err)
			}
		}
	}
	switch {
	case len(formats) > 1:
		m.Format = "mixed"
	case formats["ckpt"]:
		m.Format = "ckpt"
	default:
		m.Format = "safetensors"
	}

	cfg, err := diffusersConfig(dir, m.shapes(), opts)
	if err != nil {
		return nil, err
	}
	m.Config = cfg
	if err := m.validate(); err != nil {
		return nil, relError(dir, err)
	}
	ok = true
	return m, nil
}

func isCkpt(s source) bool {
	switch s := s.(type) {
	case ckptSource:
		return true
	case *multiSource:
		return len(s.files) > 0 && isCkpt(s.files[0])
	}
	return false
}

func notAModelFolder(dir string) error {
	ents, _ := os.ReadDir(dir)
	var weights []string
	hasUNet := false
	for _, e := range ents {
		n := e.Name()
		switch {
		case e.IsDir() && (n == "unet" || n == "vae" || n == "text_encoder"):
			hasUNet = true
		case !e.IsDir() && isWeightsName(n):
			weights = append(weights, n)
		}
	}
	switch {
	case hasUNet:
		return fmt.Errorf("%s: folder has unet/ or vae/ but no model_index.json; a diffusers model needs one", base(dir))
	case len(weights) == 1:
		return fmt.Errorf("%s: a folder without model_index.json is not a diffusers model; to open the file in it, give its path (%s)", base(dir), filepath.Join(dir, weights[0]))
	case len(weights) > 1:
		return fmt.Errorf("%s: a folder without model_index.json is not a diffusers model; give the path of one model file (%s, ...)", base(dir), weights[0])
	}
	return fmt.Errorf("%s: not a model: a folder needs model_index.json (a diffusers model), and this one has none", base(dir))
}

func isWeightsName(n string) bool {
	switch strings.ToLower(filepath.Ext(n)) {
	case ".safetensors", ".ckpt", ".pt", ".pth":
		return true
	}
	return false
}

// legacyVAE renames the 2022 diffusers VAE attention (query, key, value,
// proj_attn) to the current names, and marks the attention's weights for
// squeezing in case they are stored as 1x1 convolutions.
func legacyVAE(name string) (string, bool) {
	mod, param := splitParam(name)
	i := strings.LastIndexByte(mod, '.')
	if i < 0 || !strings.Contains(mod, ".mid_block.attentions.") {
		return name, false
	}
	parent, leaf := mod[:i], mod[i+1:]
	switch leaf {
	case "query":
		leaf = "to_q"
	case "key":
		leaf = "to_k"
	case "value":
		leaf = "to_v"
	case "proj_attn":
		leaf = "to_out.0"
	}
	if strings.HasSuffix(parent, ".to_out") {
		parent, leaf = parent[:len(parent)-len(".to_out")], "to_out."+leaf
	}
	squeeze := param == "weight" && leaf != "group_norm"
	return parent + "." + leaf + "." + param, squeeze
}

// weightFiles are a component's candidate files, best first.
func weightFiles(preferFP16 bool) [][2]string {
	full := [][2]string{
		{"diffusion_pytorch_model.safetensors", ""}, {"model.safetensors", ""},
		{"diffusion_pytorch_model.safetensors.index.json", ""}, {"model.safetensors.index.json", ""},
	}
	half := [][2]string{
		{"diffusion_pytorch_model.fp16.safetensors", "fp16"}, {"model.fp16.safetensors", "fp16"},
		{"diffusion_pytorch_model.safetensors.index.fp16.json", "fp16"}, {"model.safetensors.index.fp16.json", "fp16"},
	}
	bins := [][2]string{
		{"diffusion_pytorch_model.bin", ""}, {"pytorch_model.bin", ""},
		{"diffusion_pytorch_model.fp16.bin", "fp16"}, {"pytorch_model.fp16.bin", "fp16"},
	}
	if preferFP16 {
		return append(append(half, full...), bins...)
	}
	return append(append(full, half...), bins...)
}

func openComponent(dir, comp string, preferFP16 bool) (source, string, error) {
	cdir := filepath.Join(dir, comp)
	if st, err := os.Stat(cdir); err != nil || !st.IsDir() {
		return nil, "", fmt.Errorf("%s: the %s/ folder is missing", base(dir), comp)
	}
	var tried []string
	for _, cand := range weightFiles(preferFP16) {
		path := filepath.Join(cdir, cand[0])
		if _, err := os.Stat(path); err != nil {
			tried = append(tried, cand[0])
			continue
		}
		var src source
		var err error
		if strings.HasSuffix(path, ".json") {
			src, err = openSharded(dir, path)
		} else {
			src, err = openFile(path)
		}
		if err != nil {
			return nil, "", relError(dir, err)
		}
		note := ""
		if cand[1] != "" {
			note = fmt.Sprintf("%s: using the %s variant %s", comp, cand[1], cand[0])
		}
		return src, note, nil
	}
	return nil, "", fmt.Errorf("%s/: no weights file (looked for %s)", rel(dir, cdir), strings.Join(tried[:2], ", "))
}

// openSharded opens the shards a *.safetensors.index.json names.
func openSharded(dir, indexPath string) (source, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := readJSON(indexPath, &idx); err != nil {
		return nil, fmt.Errorf("%s: %v", rel(dir, indexPath), unwrapPathError(err))
	}
	ms := &multiSource{path: indexPath, owner: map[string]source{}}
	byFile := map[string]source{}
	ok := false
	defer func() {
		if !ok {
			ms.Close()
		}
	}()
	var files []string
	for _, f := range idx.WeightMap {
		if _, seen := byFile[f]; !seen {
			byFile[f] = nil
			files = append(files, f)
		}
	}
	sort.Strings(files)
	for _, f := range files {
		if f != filepath.Base(f) {
			return nil, fmt.Errorf("%s: shard %q is not a plain file name", rel(dir, indexPath), f)
		}
		src, err := openFile(filepath.Join(filepath.Dir(indexPath), f))
		if err != nil {
			return nil, err
		}
		byFile[f] = src
		ms.files = append(ms.files, src)
	}
	for name, f := range idx.WeightMap {
		src := byFile[f]
		if _, _, ok := src.info(name); !ok {
			return nil, fmt.Errorf("%s: names %s in %s, which does not hold it", rel(dir, indexPath), name, f)
		}
		ms.owner[name] = src
		ms.names = append(ms.names, name)
	}
	sort.Strings(ms.names)
	ok = true
	return ms, nil
}

// The config files' fields Glimmer reads. Pointers and raw messages tell
// "absent" from zero.
type unetJSON struct {
	InChannels                *int            `json:"in_channels"`
	OutChannels               *int            `json:"out_channels"`
	BlockOutChannels          []int           `json:"block_out_channels"`
	LayersPerBlock            json.RawMessage `json:"layers_per_block"`
	CrossAttentionDim         json.RawMessage `json:"cross_attention_dim"`
	AttentionHeadDim          json.RawMessage `json:"attention_head_dim"`
	NumAttentionHeads         json.RawMessage `json:"num_attention_heads"`
	UseLinearProjection       *bool           `json:"use_linear_projection"`
	DownBlockTypes            []string        `json:"down_block_types"`
	UpBlockTypes              []string        `json:"up_block_types"`
	MidBlockType              *string         `json:"mid_block_type"`
	TransformerLayersPerBlock json.RawMessage `json:"transformer_layers_per_block"`
	NormNumGroups             *int            `json:"norm_num_groups"`
	NormEps                   *float64        `json:"norm_eps"`
	FlipSinToCos              *bool           `json:"flip_sin_to_cos"`
	FreqShift                 *int            `json:"freq_shift"`
	// Must be absent or at their SD default:
	ActFn                *string         `json:"act_fn"`
	TimeEmbeddingType    *string         `json:"time_embedding_type"`
	ResnetTimeScaleShift *string         `json:"resnet_time_scale_shift"`
	ConvInKernel         *int            `json:"conv_in_kernel"`
	ConvOutKernel        *int            `json:"conv_out_kernel"`
	ClassEmbedType       json.RawMessage `json:"class_embed_type"`
	NumClassEmbeds       json.RawMessage `json:"num_class_embeds"`
	AdditionEmbedType    json.RawMessage `json:"addition_embed_type"`
	TimeCondProjDim      json.RawMessage `json:"time_cond_proj_dim"`
	EncoderHidDim        json.RawMessage `json:"encoder_hid_dim"`
	OnlyCrossAttention   json.RawMessage `json:"only_cross_attention"`
	DualCrossAttention   *bool           `json:"dual_cross_attention"`
	AttentionType        *string         `json:"attention_type"`
	CenterInputSample    *bool           `json:"center_input_sample"`
}

type vaeJSON struct {
	InChannels           *int     `json:"in_channels"`
	OutChannels          *int     `json:"out_channels"`
	LatentChannels       *int     `json:"latent_channels"`
	BlockOutChannels     []int    `json:"block_out_channels"`
	LayersPerBlock       *int     `json:"layers_per_block"`
	NormNumGroups        *int     `json:"norm_num_groups"`
	ScalingFactor        *float64 `json:"scaling_factor"`
	ShiftFactor          *float64 `json:"shift_factor"`
	MidBlockAddAttention *bool    `json:"mid_block_add_attention"`
	UseQuantConv         *bool    `json:"use_quant_conv"`
	UsePostQuantConv     *bool    `json:"use_post_quant_conv"`
	ActFn                *string  `json:"act_fn"`
}

type textJSON struct {
	HiddenSize            *int     `json:"hidden_size"`
	IntermediateSize      *int     `json:"intermediate_size"`
	NumHiddenLayers       *int     `json:"num_hidden_layers"`
	NumAttentionHeads     *int     `json:"num_attention_heads"`
	HiddenAct             *string  `json:"hidden_act"`
	VocabSize             *int     `json:"vocab_size"`
	MaxPositionEmbeddings *int     `json:"max_position_embeddings"`
	LayerNormEps          *float64 `json:"layer_norm_eps"`
}

type schedulerJSON struct {
	PredictionType    *string         `json:"prediction_type"`
	NumTrainTimesteps *int            `json:"num_train_timesteps"`
	BetaStart         *float64        `json:"beta_start"`
	BetaEnd           *float64        `json:"beta_end"`
	BetaSchedule      *string         `json:"beta_schedule"`
	TrainedBetas      json.RawMessage `json:"trained_betas"`
}

// optionalJSON reads a config file that may be absent (ok false).
func optionalJSON(dir, path string, v any) (bool, error) {
	err := readJSON(path, v)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("%s: %v", rel(dir, path), unwrapPathError(err))
}

func isNull(r json.RawMessage) bool {
	s := strings.TrimSpace(string(r))
	return s == "" || s == "null"
}

// intOrList reads an int (repeated n times) or a list of n ints.
func intOrList(r json.RawMessage, n int) ([]int, error) {
	var one int
	if err := json.Unmarshal(r, &one); err == nil {
		out := make([]int, n)
		for i := range out {
			out[i] = one
		}
		return out, nil
	}
	var list []int
	if err := json.Unmarshal(r, &list); err != nil {
		return nil, fmt.Errorf("%s is neither a number nor a list of numbers", strings.TrimSpace(string(r)))
	}
	if len(list) != n {
		return nil, fmt.Errorf("%v has %d entries, the U-Net has %d levels", list, len(list), n)
	}
	return list, nil
}

// mismatch is an error for a config value the tensors contradict.
func mismatch(file, field string, cfg, tensors any) error {
	return fmt.Errorf("%s: %s is %v, but the tensors say %v", file, field, cfg, tensors)
}

func diffusersConfig(dir string, sh shapes, opts Options) (Config, error) {
	var cfg Config
	var tj textJSON
	textPath := filepath.Join(dir, TextEncoder, "config.json")
	haveText, err := optionalJSON(dir, textPath, &tj)
	if err != nil {
		return cfg, err
	}
	var uj unetJSON
	unetPath := filepath.Join(dir, UNet, "config.json")
	haveUNet, err := optionalJSON(dir, unetPath, &uj)
	if err != nil {
		return cfg, err
	}
	// Family: SD 2.x's OpenCLIP text tower uses plain GELU, SD 1.x's CLIP
	// quick-GELU; without a text config, SD2's linear proj_in tells.
	cfg.Family = SD1
	switch {
	case haveText && tj.HiddenAct != nil:
		if *tj.HiddenAct == "gelu" {
			cfg.Family = SD2
		}
	case haveUNet && uj.UseLinearProjection != nil:
		if *uj.UseLinearProjection {
			cfg.Family = SD2
		}
	case len(sh["unet/down_blocks.0.attentions.0.proj_in.weight"]) == 2:
		cfg.Family = SD2
	}

	if cfg.UNet, err = deriveUNet(sh); err != nil {
		return cfg, fmt.Errorf("%s: %v", base(dir), err)
	}
	if err := familyHeads(cfg.Family, &cfg.UNet); err != nil && !haveUNet {
		return cfg, fmt.Errorf("%s: %v", base(dir), err)
	}
	if haveUNet {
		if err := applyUNetJSON(rel(dir, unetPath), &uj, &cfg.UNet); err != nil {
			return cfg, err
		}
	}
	if cfg.VAE, err = deriveVAE(sh); err != nil {
		return cfg, fmt.Errorf("%s: %v", base(dir), err)
	}
	var vj vaeJSON
	vaePath := filepath.Join(dir, VAE, "config.json")
	if have, err := optionalJSON(dir, vaePath, &vj); err != nil {
		return cfg, err
	} else if have {
		if err := applyVAEJSON(rel(dir, vaePath), &vj, &cfg.VAE); err != nil {
			return cfg, err
		}
	}
	if cfg.Text, err = deriveText(sh, cfg.Family); err != nil {
		return cfg, fmt.Errorf("%s: %v", base(dir), err)
	}
	if haveText {
		if err := applyTextJSON(rel(dir, textPath), &tj, &cfg.Text); err != nil {
			return cfg, err
		}
	}

	cfg.Schedule = defaultSchedule()
	cfg.Prediction, cfg.PredictionSource = Epsilon, "default (no scheduler config)"
	var sj schedulerJSON
	schedPath := filepath.Join(dir, "scheduler", "scheduler_config.json")
	if have, err := optionalJSON(dir, schedPath, &sj); err != nil {
		return cfg, err
	} else if have {
		name := rel(dir, schedPath)
		if sj.PredictionType != nil {
			switch p := Prediction(*sj.PredictionType); p {
			case Epsilon, VPrediction:
				cfg.Prediction, cfg.PredictionSource = p, name
			default:
				return cfg, fmt.Errorf("%s: prediction_type %q is not supported (epsilon or v_prediction)", name, *sj.PredictionType)
			}
		}
		if sj.NumTrainTimesteps != nil {
			cfg.Schedule.NumTrainTimesteps = *sj.NumTrainTimesteps
		}
		if sj.BetaStart != nil {
			cfg.Schedule.BetaStart = *sj.BetaStart
		}
		if sj.BetaEnd != nil {
			cfg.Schedule.BetaEnd = *sj.BetaEnd
		}
		if sj.BetaSchedule != nil {
			cfg.Schedule.BetaSchedule = *sj.BetaSchedule
		}
		if !isNull(sj.TrainedBetas) {
			return cfg, fmt.Errorf("%s: trained_betas (an explicit beta list) is not supported", name)
		}
		if err := cfg.Schedule.Train().Check(); err != nil {
			return cfg, fmt.Errorf("%s: %w", name, err)
		}
		switch cfg.Schedule.BetaSchedule {
		case "scaled_linear", "linear":
		default:
			return cfg, fmt.Errorf("%s: beta_schedule %q is not supported (scaled_linear or linear)", name, cfg.Schedule.BetaSchedule)
		}
	}
	if opts.Prediction != "" {
		cfg.Prediction, cfg.PredictionSource = opts.Prediction, "override"
	}

	cfg.Tokenizer = defaultTokenizer(cfg.Family)
	tokDir := filepath.Join(dir, "tokenizer")
	if st, err := os.Stat(filepath.Join(tokDir, "vocab.json")); err == nil && !st.IsDir() {
		cfg.Tokenizer.Dir = tokDir
		if err := readTokenizer(dir, tokDir, &cfg.Tokenizer); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func applyUNetJSON(name string, j *unetJSON, u *UNetConfig) error {
	unsupported := func(field string, v any) error {
		return fmt.Errorf("%s: %s = %v is not supported (not a Stable Diffusion 1.x/2.x U-Net)", name, field, v)
	}
	for field, r := range map[string]json.RawMessage{
		"class_embed_type": j.ClassEmbedType, "num_class_embeds": j.NumClassEmbeds,
		"addition_embed_type": j.AdditionEmbedType, "time_cond_proj_dim": j.TimeCondProjDim,
		"encoder_hid_dim": j.EncoderHidDim,
	} {
		if !isNull(r) {
			return unsupported(field, strings.TrimSpace(string(r)))
		}
	}
	if !isNull(j.OnlyCrossAttention) && strings.TrimSpace(string(j.OnlyCrossAttention)) != "false" {
		return unsupported("only_cross_attention", string(j.OnlyCrossAttention))
	}
	checks := []struct {
		field string
		got   any
		ok    bool
	}{
		{"act_fn", deref(j.ActFn), j.ActFn == nil || *j.ActFn == "silu"},
		{"time_embedding_type", deref(j.TimeEmbeddingType), j.TimeEmbeddingType == nil || *j.TimeEmbeddingType == "positional"},
		{"resnet_time_scale_shift", deref(j.ResnetTimeScaleShift), j.ResnetTimeScaleShift == nil || *j.ResnetTimeScaleShift == "default"},
		{"conv_in_kernel", deref(j.ConvInKernel), j.ConvInKernel == nil || *j.ConvInKernel == 3},
		{"conv_out_kernel", deref(j.ConvOutKernel), j.ConvOutKernel == nil || *j.ConvOutKernel == 3},
		{"dual_cross_attention", deref(j.DualCrossAttention), j.DualCrossAttention == nil || !*j.DualCrossAttention},
		{"attention_type", deref(j.AttentionType), j.AttentionType == nil || *j.AttentionType == "default"},
		{"center_input_sample", deref(j.CenterInputSample), j.CenterInputSample == nil || !*j.CenterInputSample},
	}
	for _, c := range checks {
		if !c.ok {
			return unsupported(c.field, c.got)
		}
	}
	n := len(u.BlockOutChannels)
	if j.InChannels != nil && *j.InChannels != u.InChannels {
		return mismatch(name, "in_channels", *j.InChannels, u.InChannels)
	}
	if j.OutChannels != nil && *j.OutChannels != u.OutChannels {
		return mismatch(name, "out_channels", *j.OutChannels, u.OutChannels)
	}
	if j.BlockOutChannels != nil && !reflect.DeepEqual(j.BlockOutChannels, u.BlockOutChannels) {
		return mismatch(name, "block_out_channels", j.BlockOutChannels, u.BlockOutChannels)
	}
	if !isNull(j.LayersPerBlock) {
		l, err := intOrList(j.LayersPerBlock, n)
		if err != nil {
			return fmt.Errorf("%s: layers_per_block: %v", name, err)
		}
		for _, v := range l {
			if v != u.LayersPerBlock {
				return mismatch(name, "layers_per_block", strings.TrimSpace(string(j.LayersPerBlock)), u.LayersPerBlock)
			}
		}
	}
	if !isNull(j.CrossAttentionDim) {
		l, err := intOrList(j.CrossAttentionDim, n)
		if err != nil {
			return fmt.Errorf("%s: cross_attention_dim: %v", name, err)
		}
		for _, v := range l {
			if v != u.CrossAttentionDim {
				return mismatch(name, "cross_attention_dim", strings.TrimSpace(string(j.CrossAttentionDim)), u.CrossAttentionDim)
			}
		}
	}
	if j.UseLinearProjection != nil && *j.UseLinearProjection != u.UseLinearProjection {
		return mismatch(name, "use_linear_projection", *j.UseLinearProjection, u.UseLinearProjection)
	}
	if !isNull(j.TransformerLayersPerBlock) {
		l, err := intOrList(j.TransformerLayersPerBlock, n)
		if err != nil {
			return fmt.Errorf("%s: transformer_layers_per_block: %v", name, err)
		}
		for _, v := range l {
			if v != u.TransformerDepth {
				return mismatch(name, "transformer_layers_per_block", strings.TrimSpace(string(j.TransformerLayersPerBlock)), u.TransformerDepth)
			}
		}
	}
	if j.DownBlockTypes != nil {
		if len(j.DownBlockTypes) != n {
			return mismatch(name, "down_block_types", j.DownBlockTypes, fmt.Sprintf("%d levels", n))
		}
		for i, t := range j.DownBlockTypes {
			if attn := strings.HasPrefix(t, "CrossAttn"); attn != u.DownAttention[i] || !strings.HasSuffix(t, "DownBlock2D") {
				return mismatch(name, "down_block_types", j.DownBlockTypes, fmt.Sprintf("cross-attention %v", u.DownAttention))
			}
		}
	}
	if j.UpBlockTypes != nil {
		if len(j.UpBlockTypes) != n {
			return mismatch(name, "up_block_types", j.UpBlockTypes, fmt.Sprintf("%d levels", n))
		}
		for i, t := range j.UpBlockTypes {
			if attn := strings.HasPrefix(t, "CrossAttn"); attn != u.UpAttention[i] || !strings.HasSuffix(t, "UpBlock2D") {
				return mismatch(name, "up_block_types", j.UpBlockTypes, fmt.Sprintf("cross-attention %v", u.UpAttention))
			}
		}
	}
	if j.MidBlockType != nil {
		if want := *j.MidBlockType == "UNetMidBlock2DCrossAttn"; want != u.MidAttention {
			return mismatch(name, "mid_block_type", *j.MidBlockType, fmt.Sprintf("mid-block attention %v", u.MidAttention))
		}
	}
	// Heads: diffusers reads num_attention_heads, falling back to
	// attention_head_dim, and (a historical naming slip it keeps for
	// compatibility) uses either as the number of heads: SD1's 8 means 8
	// heads, SD2's [5, 10, 20, 20] means 5, 10, 20, 20 heads of 64.
	heads := j.NumAttentionHeads
	field := "num_attention_heads"
	if isNull(heads) {
		heads, field = j.AttentionHeadDim, "attention_head_dim"
	}
	if !isNull(heads) {
		h, err := intOrList(heads, n)
		if err != nil {
			return fmt.Errorf("%s: %s: %v", name, field, err)
		}
		for l, c := range u.BlockOutChannels {
			if h[l] <= 0 || c%h[l] != 0 {
				return fmt.Errorf("%s: %s gives level %d (%d channels) %d heads, which do not divide them", name, field, l, c, h[l])
			}
		}
		u.Heads = h
	}
	if u.Heads == nil {
		return fmt.Errorf("%s: no attention_head_dim, and the family rule does not fit these widths", name)
	}
	if j.NormNumGroups != nil {
		if err := groupsDivide(name, *j.NormNumGroups, u.BlockOutChannels); err != nil {
			return err
		}
		u.NormGroups = *j.NormNumGroups
	}
	if j.NormEps != nil {
		if err := smallPositive(name, "norm_eps", *j.NormEps); err != nil {
			return err
		}
		u.NormEps = *j.NormEps
	}
	if j.FlipSinToCos != nil {
		u.FlipSinToCos = *j.FlipSinToCos
	}
	if j.FreqShift != nil {
		u.FreqShift = *j.FreqShift
	}
	return nil
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func applyVAEJSON(name string, j *vaeJSON, v *VAEConfig) error {
	if j.ActFn != nil && *j.ActFn != "silu" {
		return fmt.Errorf("%s: act_fn = %q is not supported", name, *j.ActFn)
	}
	if j.ShiftFactor != nil && *j.ShiftFactor != 0 {
		return fmt.Errorf("%s: shift_factor = %v: a VAE with a latent shift (SD3/FLUX) is not supported", name, *j.ShiftFactor)
	}
	for _, c := range []struct {
		field     string
		cfg, tens int
		set       bool
	}{
		{"in_channels", derefInt(j.InChannels), v.InChannels, j.InChannels != nil},
		{"out_channels", derefInt(j.OutChannels), v.OutChannels, j.OutChannels != nil},
		{"latent_channels", derefInt(j.LatentChannels), v.LatentChannels, j.LatentChannels != nil},
		{"layers_per_block", derefInt(j.LayersPerBlock), v.LayersPerBlock, j.LayersPerBlock != nil},
	} {
		if c.set && c.cfg != c.tens {
			return mismatch(name, c.field, c.cfg, c.tens)
		}
	}
	if j.BlockOutChannels != nil && !reflect.DeepEqual(j.BlockOutChannels, v.BlockOutChannels) {
		return mismatch(name, "block_out_channels", j.BlockOutChannels, v.BlockOutChannels)
	}
	if j.MidBlockAddAttention != nil && *j.MidBlockAddAttention != v.MidAttention {
		return mismatch(name, "mid_block_add_attention", *j.MidBlockAddAttention, v.MidAttention)
	}
	if j.UseQuantConv != nil && *j.UseQuantConv != v.UseQuantConv {
		return mismatch(name, "use_quant_conv", *j.UseQuantConv, v.UseQuantConv)
	}
	if j.UsePostQuantConv != nil && *j.UsePostQuantConv != v.UsePostQuantConv {
		return mismatch(name, "use_post_quant_conv", *j.UsePostQuantConv, v.UsePostQuantConv)
	}
	if j.NormNumGroups != nil {
		if err := groupsDivide(name, *j.NormNumGroups, v.BlockOutChannels); err != nil {
			return err
		}
		v.NormGroups = *j.NormNumGroups
	}
	if j.ScalingFactor != nil {
		// SD's 0.18215, SD 2's the same; other VAEs stay near 1.
		if f := *j.ScalingFactor; !(f > 0 && f <= 100) {
			return fmt.Errorf("%s: scaling_factor %v must be positive (SD's is 0.18215)", name, f)
		}
		v.ScalingFactor = *j.ScalingFactor
	}
	return nil
}

// smallPositive checks a normalisation's eps: added to a variance before
// its square root, it must be above 0 (a negative one makes NaN images)
// and small (SD's are 1e-5 and 1e-6).
func smallPositive(file, field string, v float64) error {
	if !(v > 0 && v < 1) {
		return fmt.Errorf("%s: %s %v must be between 0 and 1 (SD's are 1e-5 and 1e-6)", file, field, v)
	}
	return nil
}

// groupsDivide checks a GroupNorm's group count against the channel
// counts it normalises.
func groupsDivide(file string, groups int, channels []int) error {
	for _, c := range channels {
		if groups <= 0 || c%groups != 0 {
			return fmt.Errorf("%s: norm_num_groups %d does not divide block_out_channels %v", file, groups, channels)
		}
	}
	return nil
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func applyTextJSON(name string, j *textJSON, t *TextConfig) error {
	for _, c := range []struct {
		field     string
		cfg, tens int
		set       bool
	}{
		{"hidden_size", derefInt(j.HiddenSize), t.HiddenSize, j.HiddenSize != nil},
		{"intermediate_size", derefInt(j.IntermediateSize), t.IntermediateSize, j.IntermediateSize != nil},
		{"vocab_size", derefInt(j.VocabSize), t.VocabSize, j.VocabSize != nil},
		{"max_position_embeddings", derefInt(j.MaxPositionEmbeddings), t.MaxPositions, j.MaxPositionEmbeddings != nil},
	} {
		if c.set && c.cfg != c.tens {
			return mismatch(name, c.field, c.cfg, c.tens)
		}
	}
	if j.NumHiddenLayers != nil {
		// The config says how many layers run; a file may hold more
		// (they are then reported unexpected), never fewer.
		if *j.NumHiddenLayers > t.Layers || *j.NumHiddenLayers <= 0 {
			return mismatch(name, "num_hidden_layers", *j.NumHiddenLayers, t.Layers)
		}
		t.Layers = *j.NumHiddenLayers
	}
	if j.NumAttentionHeads != nil {
		h := *j.NumAttentionHeads
		if h <= 0 || t.HiddenSize%h != 0 {
			return fmt.Errorf("%s: num_attention_heads %d does not divide hidden_size %d", name, h, t.HiddenSize)
		}
		t.Heads, t.HeadDim = h, t.HiddenSize/h
	}
	if j.HiddenAct != nil {
		switch *j.HiddenAct {
		case "quick_gelu", "gelu":
			t.Activation = *j.HiddenAct
		default:
			return fmt.Errorf("%s: hidden_act %q is not supported (quick_gelu or gelu)", name, *j.HiddenAct)
		}
	}
	if j.LayerNormEps != nil {
		if err := smallPositive(name, "layer_norm_eps", *j.LayerNormEps); err != nil {
			return err
		}
		t.LayerNormEps = *j.LayerNormEps
	}
	return nil
}

// readTokenizer reads the pad token (SD2's tokenizer pads with "!", id 0;
// SD1's with <|endoftext|>) from special_tokens_map.json or
// tokenizer_config.json, and finds its id in vocab.json when it is
// neither of the two usual ones.
func readTokenizer(dir, tokDir string, t *TokenizerConfig) error {
	pad := ""
	for _, f := range []string{"special_tokens_map.json", "tokenizer_config.json"} {
		var m map[string]any
		path := filepath.Join(tokDir, f)
		have, err := optionalJSON(dir, path, &m)
		if err != nil {
			return err
		}
		if !have {
			continue
		}
		switch p := m["pad_token"].(type) {
		case string:
			pad = p
		case map[string]any: // {"content": "!", ...}
			pad, _ = p["content"].(string)
		}
		if pad != "" {
			break
		}
	}
	if pad == "" {
		return nil
	}
	t.PadTokenStr = pad
	switch pad {
	case "<|endoftext|>":
		t.Pad = t.EOS
		return nil
	case "!":
		t.Pad = 0
		return nil
	}
	var vocab map[string]int
	path := filepath.Join(tokDir, "vocab.json")
	if err := readJSON(path, &vocab); err != nil {
		return fmt.Errorf("%s: %v", rel(dir, path), unwrapPathError(err))
	}
	id, ok := vocab[pad]
	if !ok {
		return fmt.Errorf("%s: pad token %q is not in the vocabulary", rel(dir, path), pad)
	}
	t.Pad = id
	return nil
}
