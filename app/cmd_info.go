package app

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"glimmer/engine/model"
	"glimmer/engine/safetensors"
)

func init() {
	register("info", "describe a model: family, layout, dtypes, parameter counts", runInfo)
}

// infoOptions are the flags that shape what `info` prints.
type infoOptions struct {
	prediction model.Prediction // override; "" keeps the model's
	tensors    bool             // list every tensor
}

// infoKind is one kind of file `glimmer info` describes. A PATH given
// without --model goes to the first kind that claims it, so describing
// another kind (a PNG's generation parameters) is one more entry,
// registered from its own file.
type infoKind struct {
	name     string
	claims   func(path string) bool
	describe func(env *Env, path string, o infoOptions) error
}

var infoKinds = []infoKind{
	{name: "model", claims: isModelPath, describe: describeModel},
}

// isModelPath: a folder (diffusers), or a file with a weights extension.
func isModelPath(path string) bool {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return true
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin":
		return true
	}
	return false
}

func runInfo(env *Env, args []string) error {
	fs := newFlags(env, "info")
	modelPath := fs.String("model", "", "model: a .safetensors/.ckpt file or a diffusers folder")
	pred := fs.String("prediction", "", "override the prediction type: epsilon or v (single files default to epsilon)")
	tensors := fs.Bool("tensors", false, "also list every tensor: canonical name, shape, stored dtype, name in the file")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: glimmer info --model PATH [--prediction epsilon|v] [--tensors]")
		fmt.Fprintln(w, "       glimmer info PATH")
		fmt.Fprintln(w, "Describes a model: family, layout, dtypes, parameter counts, hyper-parameters,")
		fmt.Fprintln(w, "and tensors that were ignored or not understood.")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var o infoOptions
	o.tensors = *tensors
	if *pred != "" {
		p, err := model.ParsePrediction(*pred)
		if err != nil {
			return usagef("info: --prediction: %v", err)
		}
		o.prediction = p
	}
	switch {
	case *modelPath != "" && len(pos) > 0:
		return usagef("info: give either --model PATH or a PATH, not both")
	case *modelPath != "":
		return describeModel(env, *modelPath, o)
	case len(pos) == 0:
		return usagef("info: missing --model PATH")
	case len(pos) > 1:
		return usagef("info: one PATH expected, got %d", len(pos))
	}
	path := pos[0]
	for _, k := range infoKinds {
		if k.claims(path) {
			return k.describe(env, path, o)
		}
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: no such file or folder", path)
	}
	names := make([]string, len(infoKinds))
	for i, k := range infoKinds {
		names[i] = k.name
	}
	return fmt.Errorf("%s: not something info describes (it reads: %s; a model is a .safetensors/.ckpt/.pt file or a diffusers folder)", filepath.Base(path), strings.Join(names, ", "))
}

func describeModel(env *Env, path string, o infoOptions) error {
	m, err := model.Open(path, model.Options{Prediction: o.prediction})
	if err != nil {
		return err
	}
	defer m.Close()
	w := bufio.NewWriter(env.Stdout)
	writeModelInfo(w, m)
	if o.tensors {
		writeTensors(w, m)
	}
	return w.Flush()
}

// writeModelInfo prints the summary: one "key  value" line per fact,
// then a table of components, then each component's hyper-parameters.
func writeModelInfo(w io.Writer, m *model.Model) {
	c := &m.Config
	line := func(k, format string, args ...any) {
		fmt.Fprintf(w, "%-13s %s\n", k, oneLine(fmt.Sprintf(format, args...)))
	}
	line("model", "%s", m.Path)
	line("family", "%s", c.Family)
	switch m.Layout {
	case model.SingleFile:
		line("layout", "single-file checkpoint, original LDM naming (%s)", m.Format)
	default:
		line("layout", "diffusers folder (%s)", m.Format)
	}
	pred := fmt.Sprintf("%s (from %s)", c.Prediction, c.PredictionSource)
	switch {
	case c.PredictionSource == "override":
		pred = fmt.Sprintf("%s (set by --prediction)", c.Prediction)
	case m.Layout == model.SingleFile && c.PredictionSource == "default for single-file checkpoints":
		pred = fmt.Sprintf("%s (the default for single files; use --prediction v for a v-prediction model)", c.Prediction)
	}
	line("prediction", "%s", pred)
	stats := m.Stats()
	all := map[safetensors.DType]int{}
	var total int64
	var bytes int64
	for _, s := range stats {
		for dt, n := range s.DTypes {
			all[dt] += n
		}
		total += s.Params
		bytes += s.Bytes
	}
	line("dtype", "%s", infoDTypes(all))
	line("tensors", "%d (%d ignored, %d unexpected)", m.Len(), len(m.Ignored), len(m.Unexpected))
	line("parameters", "%s (%s of weights)", infoThousands(total), infoSize(bytes))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-13s %8s %15s  %-8s %10s\n", "component", "tensors", "parameters", "dtype", "size")
	for _, s := range stats {
		fmt.Fprintf(w, "%-13s %8d %15s  %-8s %10s\n", s.Name, s.Tensors, infoThousands(s.Params), infoDTypes(s.DTypes), infoSize(s.Bytes))
	}
	fmt.Fprintln(w)

	u := c.UNet
	heads := make([]string, len(u.Heads))
	for l := range u.Heads {
		heads[l] = fmt.Sprintf("%d×%d", u.Heads[l], u.HeadDim(l))
	}
	proj := "1x1 conv"
	if u.UseLinearProjection {
		proj = "linear"
	}
	line("unet", "in %d, out %d channels; levels %s; %d ResNets per down block", u.InChannels, u.OutChannels, infoInts(u.BlockOutChannels), u.LayersPerBlock)
	line("", "cross-attention: down %s, mid %s, up %s", infoYesNo(u.DownAttention...), infoYesNo(u.MidAttention), infoYesNo(u.UpAttention...))
	line("", "heads×dim %s; context width %d; proj_in %s; transformer depth %d", strings.Join(heads, " "), u.CrossAttentionDim, proj, u.TransformerDepth)
	line("", "time embedding %d; GroupNorm %d groups", u.TimeEmbedDim, u.NormGroups)
	v := c.VAE
	line("vae", "levels %s; %d ResNets per encoder block; latent %d channels, 1/%d scale; scaling factor %g",
		infoInts(v.BlockOutChannels), v.LayersPerBlock, v.LatentChannels, v.DownsampleFactor(), v.ScalingFactor)
	t := c.Text
	line("text_encoder", "CLIP width %d, %d layers, %d heads of %d, MLP %d, %s; vocabulary %d, %d positions",
		t.HiddenSize, t.Layers, t.Heads, t.HeadDim, t.IntermediateSize, t.Activation, t.VocabSize, t.MaxPositions)
	tk := c.Tokenizer
	where := "built-in CLIP BPE vocabulary"
	if tk.Dir != "" {
		where = tk.Dir
	}
	line("tokenizer", "%s; pads with %d (%s)", where, tk.Pad, tk.PadTokenStr)
	s := c.Schedule
	line("schedule", "%s betas %g to %g over %d training steps", s.BetaSchedule, s.BetaStart, s.BetaEnd, s.NumTrainTimesteps)
	fmt.Fprintln(w)

	line("missing", "none (all %d tensors this configuration needs are present)", len(c.Expected()))
	if len(m.Unexpected) == 0 {
		line("unexpected", "none")
	} else {
		line("unexpected", "%d tensor(s) not part of an SD %s model, left out: %s", len(m.Unexpected), infoFamily(c.Family), infoSample(m.Unexpected, 5))
	}
	if len(m.Ignored) == 0 {
		line("ignored", "none")
	} else {
		byReason := map[string]int{}
		for _, ig := range m.Ignored {
			byReason[ig.Reason]++
		}
		reasons := make([]string, 0, len(byReason))
		for r := range byReason {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for i, r := range reasons {
			k := ""
			if i == 0 {
				k = "ignored"
			}
			line(k, "%d %s", byReason[r], r)
		}
	}
	for i, n := range m.Notes {
		k := ""
		if i == 0 {
			k = "notes"
		}
		line(k, "%s", n)
	}
	if len(m.Files) > 1 {
		for i, f := range m.Files {
			k := ""
			if i == 0 {
				k = "files"
			}
			line(k, "%s", f)
		}
	}
}

func writeTensors(w io.Writer, m *model.Model) {
	fmt.Fprintln(w)
	for _, n := range m.Names() {
		ti, _ := m.Info(n)
		fmt.Fprintf(w, "%s\t%v\t%s\t%s\n", oneLine(n), ti.Shape, ti.Stored, oneLine(ti.Key))
	}
}

func infoFamily(f model.Family) string {
	switch f {
	case model.SD1:
		return "1.x"
	case model.SD2:
		return "2.x"
	}
	return string(f)
}

func infoDTypes(m map[safetensors.DType]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for dt := range m {
		keys = append(keys, string(dt))
	}
	sort.Strings(keys)
	if len(keys) == 1 {
		return keys[0]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[safetensors.DType(k)])
	}
	return strings.Join(parts, " ")
}

func infoInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " ")
}

func infoYesNo(v ...bool) string {
	s := make([]string, len(v))
	for i, b := range v {
		s[i] = "no"
		if b {
			s[i] = "yes"
		}
	}
	return strings.Join(s, " ")
}

func infoThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func infoSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func infoSample(v []string, n int) string {
	if len(v) <= n {
		return strings.Join(v, ", ")
	}
	return strings.Join(v[:n], ", ") + fmt.Sprintf(", … (%d more)", len(v)-n)
}
