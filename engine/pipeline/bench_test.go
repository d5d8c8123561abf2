package pipeline_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"
	"time"

	"glimmer/engine"
	"glimmer/engine/device"
	"glimmer/engine/model/modeltest"
	"glimmer/engine/pipeline"
)

// BenchmarkSD15 generates 512x512 images in 20 steps with CFG on a
// full-size SD 1.5-architecture checkpoint with random weights, and
// reports each stage's time and the peak device memory. It needs
// GLIMMER_SD15_TSV (refdata's sd15_tensor_names.tsv, for the tensor names
// and shapes) and GLIMMER_SD15_VOCAB (CLIP's bpe_simple_vocab_16e6.txt.gz);
// the checkpoint is written once to GLIMMER_SD15_DIR (default the temp
// folder). GLIMMER_BACKEND picks the backend (default gl);
// GLIMMER_OFFLOAD=1 loads it with Options.Offload.
func BenchmarkSD15(b *testing.B) {
	tsv, vocab := os.Getenv("GLIMMER_SD15_TSV"), os.Getenv("GLIMMER_SD15_VOCAB")
	if tsv == "" || vocab == "" {
		b.Skip("set GLIMMER_SD15_TSV and GLIMMER_SD15_VOCAB to run the full-size benchmark")
	}
	dir := os.Getenv("GLIMMER_SD15_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "sd15-random.safetensors")
	if _, err := os.Stat(path); err != nil {
		rows, err := modeltest.ReadTSV(tsv)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := modeltest.WriteRandom(path, rows, 1); err != nil {
			b.Fatal(err)
		}
		b.Logf("wrote %s in %.1fs", path, time.Since(start).Seconds())
	}
	name := os.Getenv("GLIMMER_BACKEND")
	if name == "" {
		name = "gl"
	}
	be, _, err := device.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	start := time.Now()
	p, err := pipeline.Load(path, be, pipeline.Options{Tokenizer: vocab, Offload: os.Getenv("GLIMMER_OFFLOAD") == "1"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.Logf("%s: loaded in %.2fs", be.Name(), time.Since(start).Seconds())
	req := pipeline.Request{Prompt: "a photograph of an astronaut riding a horse", Negative: "blurry",
		Steps: 20, CFG: 7.5, Seed: 42, Sampler: "euler", Schedule: "default", Width: 512, Height: 512}
	if _, err := p.Generate(context.Background(), req, nil); err != nil { // warm-up: shader compiles
		b.Fatal(err)
	}
	// GLIMMER_GL_PROFILE=1 makes the GL backend's Profile non-empty; this
	// first call drops the warm-up's numbers.
	pr, canProfile := be.(interface{ Profile() string })
	profiling := canProfile && pr.Profile() != ""

	// With profiling, the shaders' time is reported apart for the
	// denoising steps and for what follows them (the VAE decode).
	var unetProf []string
	var stepDone []time.Duration // the last image's: when each step was seen done, from Generate's start
	onStep := func(s pipeline.Step) {
		if s.Index == 1 {
			stepDone = stepDone[:0]
		}
		stepDone = append(stepDone, s.Elapsed)
		if profiling && s.Index == s.Total {
			unetProf = append(unetProf, pr.Profile())
		}
	}
	var sum pipeline.Timings
	hashes := map[uint64]int{} // the decoded images' bits: one value when runs are deterministic
	b.ResetTimer()
	for range b.N {
		p.ForgetText() // every image encodes its prompt, as a new prompt would (Offload keeps the last one)
		res, err := p.Generate(context.Background(), req, onStep)
		if err != nil {
			b.Fatal(err)
		}
		h := fnv.New64a()
		binary.Write(h, binary.LittleEndian, res.Decoded) // a hash's Write never fails
		hashes[h.Sum64()]++
		t := res.Timings
		sum.Text += t.Text
		sum.Denoise += t.Denoise
		sum.Decode += t.Decode
		sum.Total += t.Total
	}
	if profiling {
		b.Logf("per-shader GPU time of the text encoder and the denoising steps, image 1:\n%s", unetProf[0])
		if s := pr.Profile(); s != "" {
			b.Logf("per-shader GPU time of the VAE decode, image %d:\n%s", b.N, s)
		}
	}
	// Logged so that runs under other settings that must not change a bit
	// (GLIMMER_GL_BARRIERS=all) can be compared.
	b.Logf("decoded image FNV-1a hashes (count): %v", hashes)
	// Each step's wall time in the last image (the first from Generate's
	// start, so it holds the text encoding): where a setting's extra cost
	// falls, at the first step (uploads) or in all of them.
	steps := ""
	for i, d := range stepDone {
		if i > 0 {
			d -= stepDone[i-1]
		}
		steps += fmt.Sprintf(" %.2f", float64(d.Microseconds())/1000)
	}
	b.Logf("step times (ms) of the last image:%s", steps)
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(sum.Total), "ms/image")
	b.ReportMetric(ms(sum.Text), "text_ms")
	b.ReportMetric(ms(sum.Denoise)/float64(req.Steps), "unet_step_ms")
	b.ReportMetric(ms(sum.Decode), "vae_ms")
	b.ReportMetric(float64(req.Steps)/(sum.Denoise.Seconds()/n), "it/s")
	if mr, ok := be.(engine.MemoryReporter); ok {
		peak := mr.MemoryStats().Peak
		b.ReportMetric(float64(peak)/(1<<30), "peak_GiB")
		b.Logf("peak device memory (the backend's count): %d bytes; the U-Net's activations %d", peak, p.UNet.ActivationPeak())
	}
	if !profiling && os.Getenv("GLIMMER_OFFLOAD") != "1" { // offloaded U-Net weights are in only inside Generate
		b.ReportMetric(unetBackToBack(b, be, p, req.Steps), "unet_b2b_ms")
	}
}

// unetBackToBack is the milliseconds per U-Net call (batch 2, 64x64
// latents, 77 tokens) when req.Steps calls are queued back to back with
// one Sync at the end: what a step costs without Generate's per-step read
// of the model output, guidance and sampler step on the host, and upload
// of the next input. Inputs are zeros; the time does not depend on values.
func unetBackToBack(b *testing.B, be engine.Backend, p *pipeline.Pipeline, steps int) float64 {
	c := p.Config.UNet
	x := be.New(engine.F32, 2, c.InChannels, 64, 64)      // [2, 4, 64, 64]
	out := be.New(engine.F32, 2, c.OutChannels, 64, 64)   // [2, 4, 64, 64]
	ctx := be.New(engine.F32, 2, 77, c.CrossAttentionDim) // [2, 77, C]
	be.Write(x, make([]float32, x.Numel()))
	be.Write(ctx, make([]float32, ctx.Numel()))
	defer func() { be.Free(x); be.Free(out); be.Free(ctx); p.UNet.FreeActivations() }()
	run := func() time.Duration {
		start := time.Now()
		for i := range steps {
			if err := p.UNet.Forward(out, x, []float32{float32(999 - 50*i)}, ctx); err != nil {
				b.Fatal(err)
			}
		}
		if err := be.Sync(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	run() // the pool's buffers
	return float64(run().Microseconds()) / 1000 / float64(steps)
}
