package app

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"glimmer/assets"
	"glimmer/engine"
	"glimmer/engine/device"
	"glimmer/engine/model"
	"glimmer/engine/pipeline"
	"glimmer/engine/rng"
	"glimmer/engine/sample"
)

func init() {
	register("generate", "make an image from a prompt", runGenerate)
}

// genFlags are generate's flags; bench shares most of them.
type genFlags struct {
	model, tokenizer, taesd, prediction, backend, out string
	p                                                 Params
	seed                                              int64
	cfg                                               float64
	loras                                             loraFlags
	loraDir                                           string
	offload                                           bool
}

// offloadHelp documents --offload for generate and bench.
const offloadHelp = "keep idle weights off the GPU (text encoder between prompts, VAE during the steps, part of the U-Net while decoding): less GPU memory, copies back per image"

func runGenerate(env *Env, args []string) error {
	fs := newFlags(env, "generate")
	d := DefaultParams()
	var g genFlags
	fs.StringVar(&g.model, "model", "", "model: a .safetensors/.ckpt file or a diffusers folder; default: the built-in starter model")
	fs.StringVar(&g.p.Prompt, "prompt", "", "what to draw; (word:1.2) raises a word's weight, [word] lowers it")
	fs.StringVar(&g.p.Negative, "negative", "", "what to keep out of the image")
	fs.IntVar(&g.p.Steps, "steps", d.Steps, "denoising steps")
	fs.Float64Var(&g.cfg, "cfg", d.CFG, "classifier-free guidance scale (1 turns guidance off)")
	fs.Int64Var(&g.seed, "seed", -1, "noise seed; -1 picks one and prints it")
	fs.StringVar(&g.p.Sampler, "sampler", d.Sampler, "sampler: "+strings.Join(sample.Names(), ", "))
	fs.StringVar(&g.p.Schedule, "schedule", d.Schedule, "noise schedule: default or karras")
	fs.IntVar(&g.p.Width, "width", d.Width, "image width in pixels, a multiple of 8")
	fs.IntVar(&g.p.Height, "height", d.Height, "image height in pixels, a multiple of 8")
	fs.IntVar(&g.p.ClipSkip, "clip-skip", 1, "use the text encoder's N-th last layer (2 for many anime models)")
	fs.StringVar(&g.out, "out", "", "PNG to write (never overwritten); default glimmer-SEED.png here")
	fs.StringVar(&g.backend, "backend", "auto", "compute backend: auto, gl or cpu")
	fs.StringVar(&g.tokenizer, "tokenizer", "", "tokenizer to use instead of the one found beside the model")
	fs.StringVar(&g.taesd, "taesd", "", "TAESD decoder file for previews (not needed for the final image)")
	fs.BoolVar(&g.offload, "offload", false, offloadHelp)
	fs.StringVar(&g.prediction, "prediction", "", "override the prediction type: eps or v (SD 2.x 768-v single files)")
	fs.Var(&g.loras, "lora", "apply a kohya/A1111 LoRA: FILE or FILE:WEIGHT (repeatable; weight 1 by default)")
	fs.StringVar(&g.loraDir, "lora-dir", "", "folder of the LoRAs named by <lora:NAME:WEIGHT> prompt tags; default: loras beside the model")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: glimmer generate [--model PATH] --prompt TEXT [--lora FILE:WEIGHT ...] [flags]")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("generate: unexpected argument %q (quote the prompt and pass it with --prompt)", pos[0])
	}
	g.p.CFG, g.p.Seed = g.cfg, g.seed
	if g.model == "" {
		// No model chosen: Glimmer's own starter model, at its size unless
		// the command line set one.
		if g.model, err = assets.StarterDir(); err != nil {
			return err
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["width"] {
			g.p.Width = assets.StarterSize
		}
		if !set["height"] {
			g.p.Height = assets.StarterSize
		}
		fmt.Fprintln(env.Stderr, "note: no --model given: using the built-in starter model (64x64 coloured shapes)")
	}
	if err := g.validate("generate"); err != nil {
		return err
	}
	if g.out != "" && !strings.EqualFold(filepath.Ext(g.out), ".png") {
		return usagef("generate: --out %s: Glimmer writes PNG images; give a name ending in .png", g.out)
	}
	var pred model.Prediction
	if g.prediction != "" {
		if pred, err = model.ParsePrediction(g.prediction); err != nil {
			return usagef("generate: %v", err)
		}
	}
	specs, notes, err := ResolveLoRAs(g.p, g.loras, LoRADirs(g.model, g.loraDir))
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(env.Stderr, "note: "+n)
	}
	loras, err := ReadLoRAs(specs)
	if err != nil {
		return err
	}
	if g.p.Seed < 0 {
		g.p.Seed = randomSeed()
		fmt.Fprintf(env.Stderr, "seed: %d\n", g.p.Seed)
	}
	out := g.out
	if out == "" {
		out = FreeName(fmt.Sprintf("glimmer-%d.png", g.p.Seed))
	} else if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s already exists; not overwriting it (choose another --out)", out)
	}
	if err := CheckWritable(out); err != nil {
		return err
	}
	b, err := openBackend(env, g.backend)
	if err != nil {
		return err
	}
	defer b.Close()
	loadStart := time.Now()
	p, err := pipeline.Load(g.model, b, pipeline.Options{Prediction: pred, Tokenizer: g.tokenizer, TAESD: g.taesd, LoRAs: loras, Offload: g.offload},
		func(stage string) { fmt.Fprintf(env.Stderr, "loading %s\n", stage) })
	if err != nil {
		return err
	}
	defer p.Close()
	g.p.Model = modelName(g.model)
	fmt.Fprintf(env.Stderr, "loaded %s on %s in %.1fs\n", g.p.Model, b.Name(), time.Since(loadStart).Seconds())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := p.Generate(ctx, g.p.Request(), progressLine(env))
	fmt.Fprintln(env.Stderr)
	if errors.Is(err, context.Canceled) {
		return errors.New("cancelled; no image written")
	}
	if err != nil {
		return err
	}
	saved, err := withLoRAs(g.p, specs)
	if err != nil {
		return err
	}
	data, err := EncodePNG(res.Image, [][2]string{{"parameters", saved.Format()}})
	if err != nil {
		return err
	}
	if err := WriteNew(out, data); err != nil {
		return err
	}
	t := res.Timings
	fmt.Fprintf(env.Stderr, "text %.2fs, denoise %.2fs (%.2f it/s), decode %.2fs, total %.2fs\n",
		t.Text.Seconds(), t.Denoise.Seconds(), float64(g.p.Steps)/t.Denoise.Seconds(), t.Decode.Seconds(), t.Total.Seconds())
	fmt.Fprintf(env.Stdout, "%s\n", out)
	return nil
}

// validate checks the request's flags; cmd ("generate", "bench") begins
// each message, as the command line names it, or nothing where cmd is ""
// (the window's jobs, whose fields are not flags).
func (g *genFlags) validate(cmd string) error {
	p := g.p
	bad := func(format string, args ...any) error {
		if cmd != "" {
			format = cmd + ": " + format
		}
		return usagef(format, args...)
	}
	switch {
	case strings.TrimSpace(p.Prompt) == "":
		return bad("--prompt is required")
	case p.Steps < 1 || p.Steps > 1000:
		return bad("--steps %d must be between 1 and 1000", p.Steps)
	case !(p.CFG >= 1 && p.CFG <= 100):
		return bad("--cfg %g must be between 1 and 100", p.CFG)
	case p.Width < 8 || p.Height < 8 || p.Width%8 != 0 || p.Height%8 != 0:
		return bad("size %dx%d must be positive multiples of 8", p.Width, p.Height)
	case p.Width > pipeline.MaxSide || p.Height > pipeline.MaxSide || p.Width*p.Height > 4096*4096:
		return bad("size %dx%d is larger than 4096x4096", p.Width, p.Height)
	case p.ClipSkip < 1 || p.ClipSkip > 12:
		return bad("--clip-skip %d must be between 1 and 12", p.ClipSkip)
	case g.seed < -1 || g.seed > 1<<53:
		return bad("--seed %d must be -1 or between 0 and 2^53", g.seed)
	}
	if !contains(sample.Names(), p.Sampler) {
		return bad("unknown --sampler %q (want %s)", p.Sampler, strings.Join(sample.Names(), ", "))
	}
	if !contains(sample.Schedules(), p.Schedule) {
		return bad("unknown --schedule %q (want default or karras)", p.Schedule)
	}
	if !contains(device.Names, g.backend) {
		return bad("unknown --backend %q (want auto, gl or cpu)", g.backend)
	}
	// Combinations the sampler refuses (karras with ddim, ...).
	if _, err := sample.New(p.Sampler, p.Schedule, p.Steps, sample.ScheduleConfig{}, rng.New(0)); err != nil {
		return bad("%v", err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// openBackend opens the named backend, telling the user when "auto" fell
// back to the CPU.
func openBackend(env *Env, name string) (engine.Backend, error) {
	b, notice, err := device.Open(name)
	if err != nil {
		return nil, err
	}
	if notice != "" {
		fmt.Fprintln(env.Stderr, "note: "+notice)
	}
	return b, nil
}

// Request is the engine's form of p. The prompts lose their
// <lora:...> tags (see ResolveLoRAs for the LoRAs they name).
func (p Params) Request() pipeline.Request {
	return pipeline.Request{Prompt: stripTags(p.Prompt), Negative: stripTags(p.Negative), Steps: p.Steps, CFG: float32(p.CFG),
		Seed: uint64(p.Seed), Sampler: p.Sampler, Schedule: p.Schedule, Width: p.Width, Height: p.Height,
		ClipSkip: p.ClipSkip}
}

// randomSeed picks a seed in [0, 2^32), the range A1111 and ComfyUI show.
func randomSeed() int64 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return time.Now().UnixNano() & 0xffffffff
	}
	return int64(binary.LittleEndian.Uint32(b[:]))
}

// modelName is a model path's file or folder name without extension.
func modelName(path string) string {
	base := filepath.Base(filepath.Clean(path))
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// progressLine rewrites one terminal line per step: step, speed and ETA.
func progressLine(env *Env) func(pipeline.Step) {
	return func(s pipeline.Step) {
		rate := float64(s.Index) / s.Elapsed.Seconds()
		eta := time.Duration(float64(s.Total-s.Index) / rate * float64(time.Second))
		fmt.Fprintf(env.Stderr, "\rstep %d/%d  %.2f it/s  ETA %s   ", s.Index, s.Total, rate, eta.Round(time.Second))
	}
}
