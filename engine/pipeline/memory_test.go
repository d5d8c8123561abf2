package pipeline_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"glimmer/engine"
	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/pipeline"
	"glimmer/engine/safetensors"
)

// counter is a backend's memory counter, as both backends embed
// engine.MemCounter.
type counter interface {
	engine.MemoryReporter
	ResetPeak()
}

// memCounter returns b's memory counter; a backend without one fails the
// test rather than skipping it.
func memCounter(t *testing.T, b engine.Backend) counter {
	t.Helper()
	mem, ok := b.(counter)
	if !ok {
		t.Fatalf("%s does not count its memory", b.Name())
	}
	return mem
}

// activationsBefore is what sd1-tiny's euler_8 run peaked at in
// activations (over the weights) on the CPU backend before the U-Net's and
// the VAE's pools were freed after use, the VAE's trimmed between
// resolutions and the pools taught to reuse bigger buffers: both networks'
// pools were held at once, every buffer they ever made. With both
// networks' arenas and the steps' kept tensors in one region it peaks at
// 3,072,000 bytes (2,940,928 when each arena was allocated for its pass
// and freed after it).
const activationsBefore = 6394120

// TestGenerateMemory checks, on sd1-tiny's euler_8 run and with the
// backend's own memory counter, that Generate
//   - loads no VAE encoder (2.9 of 22.9 MB of weights on the CPU);
//   - allocates nothing after the first denoising step;
//   - never holds the U-Net's activations and the VAE decoder's at once:
//     both lie in one region the pipeline keeps between images
//     (region.go), so the U-Net's pool holds nothing of its own during
//     the steps nor either pool after Generate, what the pipeline keeps
//     (text, latents, the region) holds the decode's activations, and the
//     peak over the weights stays under that plus the VAE's
//     DecodeMemory estimate (were the decode's activations outside the
//     region, the peak would reach it);
//   - still matches the reference, and a second call (whose pools start
//     empty again but whose pipeline buffers are reused) is bit-identical.
func TestGenerateMemory(t *testing.T) {
	path := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	refs, err := safetensors.Open(fixtures.Path(t, "fixtures", "sd1-tiny", "refs", "sd1-pipelines.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer refs.Close()
	r := sd1Runs[1] // euler_8, with a negative prompt
	req := r.request()
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			mem := memCounter(t, b)

			// The VAE encoder's weights are loaded only when asked for.
			before := mem.MemoryStats().Current
			full, err := pipeline.Load(path, b, pipeline.Options{VAEEncoder: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			withEncoder := mem.MemoryStats().Current - before
			full.Close()
			p, err := pipeline.Load(path, b, pipeline.Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			weights := mem.MemoryStats().Current
			if p.VAE.Encoder != nil || weights-before >= withEncoder {
				t.Errorf("Load took %d bytes of weights, %d with the VAE encoder: want fewer, without it", weights-before, withEncoder)
			}
			z := b.New(engine.F32, 1, 4, 8, 8)     // [1, 4, 8, 8]
			img := b.New(engine.F32, 1, 3, 64, 64) // [1, 3, 64, 64]
			if err := p.VAE.Encode(z, z, img); err == nil {
				t.Errorf("Encode without an encoder did not fail")
			}
			b.Free(z)
			b.Free(img)

			var latents, images [][]float32
			for run := range 2 {
				mem.ResetPeak()
				var unetPool int64
				var steps []engine.MemoryStats
				res, err := p.Generate(context.Background(), req, func(s pipeline.Step) {
					steps = append(steps, mem.MemoryStats())
					unetPool = max(unetPool, p.UNet.ActivationBytes())
				})
				if err != nil {
					t.Fatal(err)
				}
				end := mem.MemoryStats()
				for i, s := range steps[1:] {
					if s != steps[0] {
						t.Errorf("run %d: step %d holds %+v bytes, step 1 %+v: a step allocated", run, i+2, s, steps[0])
					}
				}
				if p.UNet.ActivationBytes() != 0 || p.VAE.ActivationBytes() != 0 {
					t.Errorf("run %d: after Generate the U-Net's pool holds %d bytes, the VAE's %d; want both freed",
						run, p.UNet.ActivationBytes(), p.VAE.ActivationBytes())
				}
				kept := end.Current - weights // text encoder's, pipeline's buffers and region
				decode := p.VAE.DecodeMemory(engine.Shape{1, 4, r.h / 8, r.w / 8})
				peak := end.Peak - weights
				t.Logf("run %d: peak %d bytes over the weights: U-Net pool %d, VAE decode %d, kept %d (before this change: %d on the CPU)",
					run, peak, unetPool, decode, kept, activationsBefore)
				if unetPool != 0 {
					t.Errorf("run %d: the U-Net's pool held %d bytes of its own during the steps, want 0 (its arena in the region)", run, unetPool)
				}
				if kept < decode || peak >= kept+decode {
					t.Errorf("run %d: kept %d bytes, peak %d over the weights; want at least the decode's %d kept, and a peak under kept + decode (%d)",
						run, kept, peak, decode, kept+decode)
				}
				if be.Name == "cpu" && peak >= activationsBefore {
					t.Errorf("run %d: peak %d bytes over the weights, no lower than before (%d)", run, peak, activationsBefore)
				}
				latents, images = append(latents, res.Latent), append(images, res.Decoded)
			}
			compare(t, r.name+".latent", latents[0], refFloats(t, refs, r.name+".latent"), latentTol, false)
			compare(t, r.name+".image", pipeline.Unit01(images[0]), refFloats(t, refs, r.name+".image"), imageTol, true)
			if !slices.Equal(latents[0], latents[1]) || !slices.Equal(images[0], images[1]) {
				t.Errorf("a second Generate differs from the first")
			}
		})
	}
}

// TestGenerateOffload checks Options.Offload on sd1-tiny with the
// backend's memory counter: its images are bit-identical to those of a
// pipeline that keeps every weight on the device, for a first prompt, the
// same prompt again (its encoding reused), another prompt without
// guidance (the text encoder uploaded again) and an image of another
// size (a new region), also after ForgetText and back at the first size,
// and after an image cancelled halfway;
// the U-Net's activation arena lies in the region;
// Close frees everything; and on the
// repeated prompt the peak (over the memory held before Load) is lower
// than the plain pipeline's by at least the text encoder's and the VAE's
// weights (they stay off the device while the U-Net runs, and the decode
// borrows the U-Net's largest weights rather than growing past the
// denoising steps' peak).
func TestGenerateOffload(t *testing.T) {
	path := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	// The last request is another size: Offload's region is made anew
	// for it, and again for the 64x64 request after ForgetText below.
	reqs := []pipeline.Request{sd1Runs[1].request(), sd1Runs[1].request(), sd1Runs[4].request(), sd1Runs[2].request()}
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			mem := memCounter(t, b)
			// generate runs reqs, returning each image and its peak over
			// the memory held before Load.
			// unetOwn is the most the U-Net's pool held in buffers of its
			// own during the steps.
			var unetOwn int64
			generate := func(o pipeline.Options) ([][]float32, []int64, *pipeline.Pipeline) {
				base := mem.MemoryStats().Current
				p, err := pipeline.Load(path, b, o, nil)
				if err != nil {
					t.Fatal(err)
				}
				var images [][]float32
				var peaks []int64
				unetOwn = 0
				onStep := func(pipeline.Step) { unetOwn = max(unetOwn, p.UNet.ActivationBytes()) }
				for _, req := range reqs {
					mem.ResetPeak()
					res, err := p.Generate(context.Background(), req, onStep)
					if err != nil {
						t.Fatal(err)
					}
					images, peaks = append(images, res.Decoded), append(peaks, mem.MemoryStats().Peak-base)
				}
				return images, peaks, p
			}
			plain, plainPeaks, p := generate(pipeline.Options{})
			plainUNetOwn := unetOwn
			var textBytes int64
			for _, w := range p.Text.Weights() {
				textBytes += int64(w.Bytes())
			}
			vaeBytes := p.VAE.WeightBytes()
			p.Close()
			start := mem.MemoryStats().Current
			off, offPeaks, p := generate(pipeline.Options{Offload: true})
			held := mem.MemoryStats().Current - start
			// Offload's region holds the U-Net's arena, the bulk of its
			// activations: what the pool keeps of its own is the time
			// embedding's scratch.
			t.Logf("the U-Net's pool held %d bytes of its own during the steps, %d with Offload", plainUNetOwn, unetOwn)
			if unetOwn*4 > plainUNetOwn {
				t.Errorf("with Offload the U-Net's pool held %d bytes of its own during the steps, want under a quarter of the %d without: its arena belongs in the region",
					unetOwn, plainUNetOwn)
			}
			// ForgetText drops the kept context (benchmarks call it so that
			// every run encodes its prompt); the same request afterwards
			// decodes to the same bits, and a second ForgetText, with
			// nothing kept, does nothing.
			p.ForgetText()
			p.ForgetText()
			res, err := p.Generate(context.Background(), reqs[2], nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Decoded, off[2]) {
				t.Errorf("after ForgetText the repeated request's image differs from the first")
			}
			// Cancelled from its step callback at step 2 (the window's
			// Cancel), an image leaves the U-Net's weights in the region,
			// which the next image of that size reuses: with its prompt
			// encoded anew, the text encoder's weights come back over
			// theirs, so the U-Net's must be marked out first (vacate), and
			// the image must match the plain pipeline's bit for bit.
			ctx, cancel := context.WithCancel(context.Background())
			_, err = p.Generate(ctx, reqs[0], func(s pipeline.Step) {
				if s.Index == 2 {
					cancel()
				}
			})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled at step 2: Generate returned %v, want context.Canceled", err)
			}
			p.ForgetText()
			if res, err = p.Generate(context.Background(), reqs[0], nil); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Decoded, plain[0]) {
				t.Errorf("after a cancelled image, the same request with Offload differs from the plain pipeline's")
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if end := mem.MemoryStats().Current; end != start {
				t.Errorf("after Close %d bytes are held, %d before Load: Close must free what Offload brought back", end, start)
			}
			for i := range reqs {
				if !slices.Equal(plain[i], off[i]) {
					t.Errorf("request %d: the image with Offload differs from the plain pipeline's", i)
				}
			}
			t.Logf("peaks over the memory held before Load: plain %v, offload %v; text encoder %d bytes, VAE %d; offload pipeline holds %d bytes after the requests",
				plainPeaks, offPeaks, textBytes, vaeBytes, held)
			if want := plainPeaks[1] - textBytes - vaeBytes; offPeaks[1] > want {
				t.Errorf("repeated prompt: peak %d bytes with Offload, want at most %d (plain %d less the text encoder's %d and the VAE's %d)",
					offPeaks[1], want, plainPeaks[1], textBytes, vaeBytes)
			}
		})
	}
}
