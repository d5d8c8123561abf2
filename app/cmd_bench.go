package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"glimmer/engine"
	"glimmer/engine/pipeline"
)

func init() {
	register("bench", "time text encoding, U-Net steps and VAE decoding on a model", runBench)
}

func runBench(env *Env, args []string) error {
	fs := newFlags(env, "bench")
	var g genFlags
	d := DefaultParams()
	fs.StringVar(&g.model, "model", "", "model: a .safetensors/.ckpt file or a diffusers folder")
	fs.IntVar(&g.p.Steps, "steps", 20, "denoising steps")
	fs.IntVar(&g.p.Width, "width", d.Width, "image width")
	fs.IntVar(&g.p.Height, "height", d.Height, "image height")
	fs.Float64Var(&g.cfg, "cfg", 7.5, "guidance scale (1 runs the U-Net on one prompt only)")
	fs.StringVar(&g.p.Sampler, "sampler", "euler", "sampler")
	fs.StringVar(&g.backend, "backend", "auto", "compute backend: auto, gl or cpu")
	fs.StringVar(&g.tokenizer, "tokenizer", "", "tokenizer to use instead of the one found beside the model")
	fs.BoolVar(&g.offload, "offload", false, offloadHelp)
	runs := fs.Int("runs", 3, "timed runs after one warm-up run")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("bench: unexpected argument %q", pos[0])
	}
	g.p.Prompt, g.p.Negative = "a photograph of an astronaut riding a horse", "blurry"
	g.p.Schedule, g.p.CFG, g.p.Seed, g.p.ClipSkip = "default", g.cfg, 42, 1
	if err := g.validate("bench"); err != nil {
		return err
	}
	if g.model == "" {
		return usagef("bench: --model is required")
	}
	if *runs < 1 {
		return usagef("bench: --runs must be at least 1")
	}
	b, err := openBackend(env, g.backend)
	if err != nil {
		return err
	}
	defer b.Close()
	start := time.Now()
	p, err := pipeline.Load(g.model, b, pipeline.Options{Tokenizer: g.tokenizer, Offload: g.offload}, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	load := time.Since(start)
	req := g.p.Request()
	var all []pipeline.Timings
	// When each step was seen done, from Generate's start: the first step
	// apart from the rest, since on a GPU backend it also holds the text
	// encoding's run (its Timings entry is what the host took to queue it)
	// and, with --offload, the weights coming back.
	var done []time.Duration
	var first, rest []time.Duration
	onStep := func(s pipeline.Step) { done = append(done, s.Elapsed) }
	for i := 0; i <= *runs; i++ {
		p.ForgetText() // each run encodes the prompt, as a new prompt would (--offload keeps the last one)
		done = done[:0]
		res, err := p.Generate(context.Background(), req, onStep)
		if err != nil {
			return err
		}
		if i > 0 { // run 0 warms up: shader compilation, first allocations
			all = append(all, res.Timings)
			if len(done) > 0 { // Generate reports every step; a run of none reports none
				first = append(first, done[0])
			}
			if n := len(done); n > 1 {
				rest = append(rest, (done[n-1]-done[0])/time.Duration(n-1))
			}
		}
	}
	median := func(v []time.Duration) time.Duration {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	med := func(f func(pipeline.Timings) time.Duration) time.Duration {
		v := make([]time.Duration, len(all))
		for i, t := range all {
			v[i] = f(t)
		}
		return median(v)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%9.1f ms", float64(d.Microseconds())/1000) }
	den := med(func(t pipeline.Timings) time.Duration { return t.Denoise })
	w := env.Stdout
	fmt.Fprintf(w, "backend          %s\n", b.Name())
	fmt.Fprintf(w, "model            %s (%s, %s)\n", modelName(g.model), p.Config.Family, p.Model.Layout)
	fmt.Fprintf(w, "image            %dx%d, %d steps, %s, CFG %g\n", g.p.Width, g.p.Height, g.p.Steps, g.p.Sampler, g.p.CFG)
	fmt.Fprintf(w, "load             %s\n", ms(load))
	fmt.Fprintf(w, "median of %d runs:\n", len(all))
	fmt.Fprintf(w, "  text encode    %s  (the host's time; a GPU's run of it is in the first step)\n",
		ms(med(func(t pipeline.Timings) time.Duration { return t.Text })))
	holds := "the prompt and one U-Net step"
	if g.offload {
		holds = "the prompt, the weights coming back and one U-Net step"
	}
	if len(first) > 0 {
		fmt.Fprintf(w, "  first step     %s  (from the start: %s)\n", ms(median(first)), holds)
	}
	if len(rest) > 0 {
		fmt.Fprintf(w, "  U-Net step     %s  (the steps after the first)\n", ms(median(rest)))
	}
	fmt.Fprintf(w, "  denoise        %s  (%.2f it/s)\n", ms(den), float64(g.p.Steps)/den.Seconds())
	fmt.Fprintf(w, "  VAE decode     %s\n", ms(med(func(t pipeline.Timings) time.Duration { return t.Decode })))
	fmt.Fprintf(w, "  total          %s\n", ms(med(func(t pipeline.Timings) time.Duration { return t.Total })))
	if mr, ok := b.(engine.MemoryReporter); ok {
		m := mr.MemoryStats()
		fmt.Fprintf(w, "peak memory      %.2f GiB in tensors (weights %.2f GiB)\n",
			float64(m.Peak)/(1<<30), float64(p.WeightBytes())/(1<<30))
	}
	return nil
}
