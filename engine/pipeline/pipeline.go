// Package pipeline is text to image: prompt → CLIP → U-Net denoising loop
// with classifier-free guidance → VAE decoder, the same computation as
// diffusers' StableDiffusionPipeline, with a per-step callback for
// progress and previews and a context for cancellation.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"time"

	"glimmer/engine"
	"glimmer/engine/clip"
	"glimmer/engine/lora"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/prompt"
	"glimmer/engine/rng"
	"glimmer/engine/sample"
	"glimmer/engine/taesd"
	"glimmer/engine/tokenizer"
	"glimmer/engine/unet"
	"glimmer/engine/vae"
)

// Options adjust Load.
type Options struct {
	// Prediction overrides the model's prediction type ("" keeps it).
	Prediction model.Prediction
	// Tokenizer is a tokenizer path overriding the lookup beside the model.
	Tokenizer string
	// TAESD is an optional tiny-autoencoder file for previews.
	TAESD string
	// F32Weights widens F16 weights on upload (twice the memory).
	F32Weights bool
	// VAEMemory is the activation memory the VAE decoder may use before it
	// decodes in overlapping tiles; 0 means DefaultVAEMemory, < 0 never
	// tiles.
	VAEMemory int64
	// LoRAs are merged into the text encoder's and U-Net's weights as they
	// load (lora.Apply); a different set needs a new Load.
	LoRAs []lora.Weighted
	// VAEEncoder loads the VAE's encoder too, for code that encodes
	// pictures into latents (VAE.Encode). Generate only decodes, so by
	// default the encoder's weights are not loaded.
	VAEEncoder bool
	// Offload keeps idle weights off the device, for cards with little
	// memory: the text encoder's between prompts (the last prompt's
	// encoding is kept, so repeating it does not encode again), the VAE's
	// while the U-Net runs and, during the VAE decode, as many of the
	// U-Net's largest weights as the VAE's weights and the decode's
	// activations take. Those three take turns in one region of device
	// memory, made for the image size and kept: each image copies the
	// U-Net's weights there back (and the text encoder's for a new
	// prompt, and the VAE's), by the GPU itself from pinned host memory
	// where the backend parks them (nn.Offload), and allocates nothing
	// for them. Outputs are identical. Outside Generate those weights are
	// off the device: run the networks through Generate only. Needs a
	// backend that is an engine.Suballocator (both of Glimmer's are).
	Offload bool
}

// DefaultVAEMemory lets SD's decoder run whole up to about 1450x1450
// pixels (0.5 GiB at 512x512, 2 GiB at 1024x1024) and tiles larger
// images, so a card with 8 GiB holds an SD 1.5 model and any image size.
const DefaultVAEMemory = 4 << 30

// Pipeline holds one model's networks on one backend. Weights are loaded
// once; Generate may be called many times, one call at a time.
type Pipeline struct {
	B      engine.Backend
	Model  *model.Model
	Config model.Config
	Tok    *tokenizer.Tokenizer
	Text   *clip.TextEncoder
	UNet   *unet.UNet
	VAE    *vae.VAE
	TAESD  *taesd.Model // nil without a TAESD file

	pool        *nn.Pool
	weightBytes int64

	// The region the activations (and with Options.Offload, weights)
	// take turns in (region.go), the latent shape it was made for, and
	// the backend's Suballocator (nil: no region).
	sub       engine.Suballocator
	region    *engine.Tensor // [elements]
	regionFor engine.Shape

	// With Options.Offload: the text encoder's, U-Net's and VAE's
	// weights that go off the device (the U-Net's: those in the region),
	// and the last prompt's encoding and what it was encoded from.
	offText, offUNet, offVAE *nn.Offload
	lastText                 *engine.Tensor
	lastKey                  string
}

// Load opens the model at path (file or diffusers folder) and uploads its
// weights to b. report, when not nil, is told each stage as it loads.
func Load(path string, b engine.Backend, o Options, report func(stage string)) (*Pipeline, error) {
	say := func(s string) {
		if report != nil {
			report(s)
		}
	}
	say("model " + filepath.Base(path))
	m, err := model.Open(path, model.Options{Prediction: o.Prediction})
	if err != nil {
		return nil, err
	}
	p := &Pipeline{B: b, Model: m, Config: m.Config, pool: nn.NewPool(b)}
	fail := func(err error) (*Pipeline, error) {
		p.Close()
		return nil, err
	}
	if u := m.Config.UNet; u.InChannels != u.OutChannels {
		return fail(fmt.Errorf("%s: a U-Net with %d input channels (an inpainting or other conditioned model) cannot make images from text yet",
			filepath.Base(path), u.InChannels))
	}
	if p.Tok, err = Tokenizer(m, o.Tokenizer); err != nil {
		return fail(err)
	}
	// Every prompt ends in the tokenizer's last id (<|endoftext|>), so a
	// text encoder with fewer rows than the tokenizer has ids fails on
	// the first prompt: say so now, naming the model.
	if n, v := p.Tok.VocabSize(), m.Config.Text.VocabSize; n > v {
		return fail(fmt.Errorf("%s: the text encoder's token embedding has %d rows, but its tokenizer has %d tokens", filepath.Base(path), v, n))
	}
	var textSrc, unetSrc nn.Source = m.Component(model.TextEncoder), m.Component(model.UNet)
	if len(o.LoRAs) > 0 {
		say("LoRA")
		if textSrc, err = lora.Apply(textSrc, lora.TextEncoder, o.LoRAs); err != nil {
			return fail(err)
		}
		if unetSrc, err = lora.Apply(unetSrc, lora.UNet, o.LoRAs); err != nil {
			return fail(err)
		}
	}
	say("text encoder")
	tl := nn.NewLoader(b, textSrc, o.F32Weights).Sub("text_model")
	if p.Text, err = clip.Load(tl, m.Config.Text); err != nil {
		return fail(fmt.Errorf("%s: text encoder: %w", path, err))
	}
	say("U-Net")
	ul := nn.NewLoader(b, unetSrc, o.F32Weights)
	ul.TransposeLinears() // inference only: products read the weights along their outputs
	if p.UNet, err = unet.Load(ul, m.Config.UNet); err != nil {
		return fail(fmt.Errorf("%s: U-Net: %w", path, err))
	}
	say("VAE")
	vl := nn.NewLoader(b, m.Component("vae"), o.F32Weights)
	loadVAE := vae.LoadDecoder
	if o.VAEEncoder {
		loadVAE = vae.Load
	}
	if p.VAE, err = loadVAE(vl, m.Config.VAE); err != nil {
		return fail(fmt.Errorf("%s: VAE: %w", path, err))
	}
	p.VAE.FastDecode(true) // images end as 8-bit pixels
	p.UNet.FastConvs(true) // inference only: training's U-Net stays on the exact path
	p.UNet.FoldTimeEmbedding(true)
	switch {
	case o.VAEMemory == 0:
		p.VAE.MaxActivationBytes = DefaultVAEMemory
	case o.VAEMemory > 0:
		p.VAE.MaxActivationBytes = o.VAEMemory
	}
	if o.TAESD != "" {
		say("TAESD")
		if p.TAESD, err = taesd.Open(o.TAESD, b); err != nil {
			return fail(err)
		}
	}
	if err := b.Sync(); err != nil {
		return fail(fmt.Errorf("%s: uploading weights: %w", path, err))
	}
	p.weightBytes = tl.Bytes() + ul.Bytes() + vl.Bytes()
	p.sub, _ = b.(engine.Suballocator)
	if o.Offload {
		if p.sub == nil {
			return fail(fmt.Errorf("%s: offloading weights needs a backend that can place tensors within others; %s cannot", path, b.Name()))
		}
		p.offText = nn.NewOffload(b, p.Text.Weights())
		p.offVAE = nn.NewOffload(b, p.VAE.Weights())
		for _, o := range []*nn.Offload{p.offText, p.offVAE} {
			if err := o.Out(math.MaxInt64); err != nil {
				return fail(fmt.Errorf("%s: %w", path, err))
			}
		}
	}
	return p, nil
}

// Tokenizer finds the tokenizer for m: override when given, else beside
// the model or in the data folder (tokenizer.ForModel). When no tokenizer
// config chose the pad token (CLIP's .gz vocabulary, as single-file
// checkpoints need), the model family decides it: SD 2.x pads with "!".
func Tokenizer(m *model.Model, override string) (*tokenizer.Tokenizer, error) {
	var tok *tokenizer.Tokenizer
	var err error
	if override != "" {
		tok, err = tokenizer.Open(override)
	} else {
		tok, err = tokenizer.ForModel(m.Path)
	}
	if err != nil {
		return nil, err
	}
	if !tok.PadConfigured && tok.PadID != m.Config.Tokenizer.Pad {
		t := *tok // shares the vocabulary
		t.PadID = m.Config.Tokenizer.Pad
		tok = &t
	}
	return tok, nil
}

// Close frees the networks' device memory and closes the model files.
func (p *Pipeline) Close() error {
	// Offloaded weights not in the region come back first, so that each
	// network frees all of its own; those in it end with it.
	p.vacate()
	for _, o := range []*nn.Offload{p.offText, p.offUNet, p.offVAE} {
		if o != nil {
			o.Close()
		}
	}
	p.ForgetText()
	if p.Text != nil {
		p.Text.Close()
	}
	if p.UNet != nil {
		p.UNet.Close()
	}
	if p.VAE != nil {
		p.VAE.Close()
	}
	if p.TAESD != nil {
		p.TAESD.Close()
	}
	p.pool.Free()
	if p.region != nil {
		p.B.Free(p.region)
	}
	return p.Model.Close()
}

// Preview selects what a step's preview image shows.
type Preview int

const (
	PreviewNone   Preview = iota
	PreviewLatent         // a linear latent→RGB projection (cheap)
	PreviewTAESD          // the tiny autoencoder's decode (needs Options.TAESD)
)

// Request is one image to make.
type Request struct {
	Prompt, Negative string
	Steps            int
	CFG              float32 // ≤ 1 skips the unconditional pass
	Seed             uint64
	Sampler          string // ddim, euler, euler_a, dpmpp_2m
	Schedule         string // default, karras
	Width, Height    int    // multiples of 8
	ClipSkip         int    // 0 or 1: last layer
	Preview          Preview
	// AfterStep, when not nil, sees the latents [4, h, w] after each step
	// (0-based) and may change them: tests compare them with a reference
	// or restart a step from it.
	AfterStep func(step int, x []float32)
}

// Step reports one finished denoising step.
type Step struct {
	Index, Total int // 1-based step number and count
	Elapsed      time.Duration
	Preview      image.Image // nil when previews are off
}

// Timings are where a Generate call spent its time.
type Timings struct {
	Text, Denoise, Decode, Total time.Duration
}

// Result is a generated image and what led to it.
type Result struct {
	Image   *image.NRGBA
	Decoded []float32 // [3, H, W] in [-1, 1], the VAE's output
	Latent  []float32 // [4, H/8, W/8], the final latents (VAE-scaled space)
	Timings Timings
}

// ErrBadRequest wraps a request the pipeline cannot run.
var ErrBadRequest = errors.New("bad request")

// ErrNotFinite wraps an image whose latents or pixels came out NaN or
// infinite: broken weights or settings (a NaN weight, a negative norm
// eps, a zero scaling factor), which would otherwise save as a black
// picture.
var ErrNotFinite = errors.New("the model produced values that are not numbers")

// finite fails with ErrNotFinite, naming the model file, where v (what,
// as the message calls it) holds a NaN or an infinity.
func (p *Pipeline) finite(v []float32, what string) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%s: %w: the %s hold %v (value %d of %d); its weights or settings are broken",
				filepath.Base(p.Model.Path), ErrNotFinite, what, x, i+1, len(v))
		}
	}
	return nil
}

// MaxSide bounds an image's width and height, so that no size in pixels
// or elements can overflow: SD 1.x and 2.x make good pictures up to about
// 1024, and the VAE tiles anything larger.
const MaxSide = 16384

func (p *Pipeline) check(r *Request) error {
	f := p.Config.VAE.DownsampleFactor()
	switch {
	case r.Width <= 0 || r.Height <= 0 || r.Width%f != 0 || r.Height%f != 0:
		return fmt.Errorf("%w: size %dx%d must be positive multiples of %d", ErrBadRequest, r.Width, r.Height, f)
	case r.Width > MaxSide || r.Height > MaxSide:
		return fmt.Errorf("%w: size %dx%d: a side over %d pixels", ErrBadRequest, r.Width, r.Height, MaxSide)
	case !(r.CFG >= 0 && r.CFG <= 1000):
		return fmt.Errorf("%w: guidance scale %v outside 0..1000", ErrBadRequest, r.CFG)
	case r.Steps < 1 || r.Steps > sample.MaxSteps:
		return fmt.Errorf("%w: steps %d outside 1..%d", ErrBadRequest, r.Steps, sample.MaxSteps)
	case r.Preview == PreviewTAESD && p.TAESD == nil:
		return fmt.Errorf("%w: TAESD previews need a TAESD file", ErrBadRequest)
	}
	for _, text := range []string{r.Prompt, r.Negative} {
		if err := checkWeights(text); err != nil {
			return err
		}
	}
	return nil
}

// MaxWeight bounds a prompt's attention weights: A1111's users write 0.5
// to 2, and "(x:1e45)" or a few hundred nested brackets reach infinity,
// which turns the whole encoding into NaN.
const MaxWeight = 1000

// checkWeights refuses text whose parsed weights (prompt.Parse) are not
// finite or beyond MaxWeight either way.
func checkWeights(text string) error {
	for _, s := range prompt.Parse(text) {
		if !(math.Abs(s.Weight) <= MaxWeight) {
			return fmt.Errorf("%w: the prompt gives %q the weight %g; weights must lie within ±%d", ErrBadRequest, s.Text, s.Weight, MaxWeight)
		}
	}
	return nil
}

// Generate makes one image. onStep, when not nil, is called after every
// step on the calling goroutine. Cancelling ctx stops the loop between
// steps with ctx's error.
func (p *Pipeline) Generate(ctx context.Context, r Request, onStep func(Step)) (*Result, error) {
	if err := p.check(&r); err != nil {
		return nil, err
	}
	start := time.Now()
	res := &Result{}
	guided := sample.UseGuidance(r.CFG)
	lc := p.Config.UNet.InChannels
	h, w := r.Height/p.Config.VAE.DownsampleFactor(), r.Width/p.Config.VAE.DownsampleFactor()
	if err := p.placeRegion(engine.Shape{1, lc, h, w}); err != nil {
		return nil, err
	}

	// Text: the prompt and, with guidance, the negative prompt padded to
	// the same number of 77-token chunks, encoded as one batch: uncond
	// first, as diffusers concatenates them.
	text, err := p.text(r, guided) // [B, 77·chunks, C]
	if err != nil {
		return nil, err
	}
	if p.offText == nil {
		defer p.Text.Release(text)
	}
	res.Timings.Text = time.Since(start)

	gen := rng.New(r.Seed)
	s, err := sample.New(r.Sampler, r.Schedule, r.Steps,
		sample.ScheduleConfig{Prediction: sample.Prediction(p.Config.Prediction), Train: p.Config.Schedule.Train()}, gen)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	x := sample.InitLatents(s, gen, lc*h*w) // [1, 4, h, w]
	denoise := time.Now()
	if p.offUNet != nil {
		p.offUNet.In()
	}
	if err := p.denoise(ctx, &r, s, x, text, guided, start, onStep); err != nil {
		return nil, err
	}
	res.Timings.Denoise = time.Since(denoise)
	if err := p.finite(x, "denoised latents"); err != nil {
		return nil, err
	}
	res.Latent = x

	dec := time.Now()
	if p.offUNet != nil {
		// The VAE's weights and the decode's activations take the
		// region's U-Net weights' place.
		if err := p.offUNet.Out(math.MaxInt64); err != nil {
			return nil, err
		}
		p.offVAE.In()
	}
	res.Decoded, err = p.decode(x, lc, h, w)
	if p.offVAE != nil {
		if oerr := p.offVAE.Out(math.MaxInt64); err == nil {
			err = oerr
		}
	}
	if err != nil {
		return nil, err
	}
	if err := p.finite(res.Decoded, "decoded pixels"); err != nil {
		return nil, err
	}
	res.Image = ToImage(res.Decoded, r.Width, r.Height)
	res.Timings.Decode = time.Since(dec)
	res.Timings.Total = time.Since(start)
	return res, nil
}

// denoise runs the sampler's steps on the latents x [1, 4, h, w] in place,
// conditioned on text [B, L, C] (negative prompt then prompt when guided).
// The latents stay on the device from the first step to the last: each
// step's guidance and sampler update run there (Ops.SampleStep), writing
// the next step's U-Net input as they go, so the host reads nothing until
// the end unless a caller asks to see every step (a preview or
// AfterStep). On a backend that runs behind the host (engine.Fencer), the
// host queues step i and then waits for step i−1, so the device always
// has a step queued and the host is never more than a step ahead.
// The U-Net's activations lie in the region (region.go), which the VAE
// decode's take over after the steps; the rest of its pool (and the
// TAESD previews' buffers) is freed at the end.
func (p *Pipeline) denoise(ctx context.Context, r *Request, s sample.Sampler, x []float32, text *engine.Tensor,
	guided bool, start time.Time, onStep func(Step)) error {
	defer p.UNet.FreeActivations()
	p.UNet.KeepContext(text) // the text's keys and values, projected at the first step
	defer p.UNet.ForgetContext()
	if p.TAESD != nil {
		defer p.TAESD.FreeActivations()
	}
	batch := text.Dim(0)
	ts := s.Timesteps()
	p.UNet.KeepTimesteps(ts, batch) // every step's time embedding, projected at once
	defer p.UNet.ForgetTimesteps()
	lc := p.Config.UNet.InChannels
	h, w := r.Height/p.Config.VAE.DownsampleFactor(), r.Width/p.Config.VAE.DownsampleFactor()
	n := lc * h * w
	xt := p.pool.Get(1, lc, h, w)      // [1, 4, h, w] the latents
	hist := p.pool.Get(1, lc, h, w)    // [1, 4, h, w] the previous step's x̂₀ (dpmpp_2m)
	noise := p.pool.Get(1, lc, h, w)   // [1, 4, h, w] the step's fresh noise (euler_a)
	xb := p.pool.Get(1, lc, h, w)      // [1, 4, h, w] the U-Net's input, shared by the B prompts (UNet.Forward)
	eps := p.pool.Get(batch, lc, h, w) // [B, 4, h, w] its output
	defer p.pool.Put(xt, hist, noise, xb, eps)
	p.B.Write(xt, x)
	p.writeInput(xb, s, x, 0)
	hostNoise := make([]float32, n)
	tsBatch := make([]float32, batch)
	fencer, _ := p.B.(engine.Fencer)
	see := r.AfterStep != nil || onStep != nil && r.Preview != PreviewNone
	report := func(i int) error { // step i (0-based) is done; x holds its latents when see
		if onStep == nil {
			return nil
		}
		st := Step{Index: i + 1, Total: len(ts), Elapsed: time.Since(start)}
		if see && r.Preview != PreviewNone {
			var err error
			if st.Preview, err = p.preview(r.Preview, x, lc, h, w); err != nil {
				return err
			}
		}
		onStep(st)
		return nil
	}
	// behind waits for the last fence placed and frees it; each fence is
	// waited on once, on an early return too (the device then finishes
	// what was queued, at most two steps).
	var behind func() error
	defer func() {
		if behind != nil {
			behind()
		}
	}()
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return err
		}
		for j := range tsBatch {
			tsBatch[j] = t
		}
		if err := p.UNet.Forward(eps, xb, tsBatch, text); err != nil {
			return err
		}
		st, err := s.Plan(i, hostNoise)
		if err != nil {
			return err
		}
		if guided {
			st.Guidance = r.CFG
		}
		var fresh, next *engine.Tensor
		if st.NeedsNoise() {
			p.B.Write(noise, hostNoise)
			fresh = noise
		}
		if i+1 < len(ts) {
			next, st.NextDiv = xb, s.InputDivisor(i+1)
		}
		p.B.SampleStep(xt, eps, hist, fresh, next, st)
		switch {
		case see: // the caller sees (and may change) every step's latents
			if err := p.readLatents(x, xt); err != nil {
				return err
			}
			if r.AfterStep != nil {
				r.AfterStep(i, x)
				p.B.Write(xt, x)
				if next != nil {
					p.writeInput(xb, s, x, i+1)
				}
			}
			if err := report(i); err != nil {
				return err
			}
		case fencer != nil: // step i is queued: wait for step i−1
			prev := behind
			behind = fencer.Fence()
			if prev != nil {
				if err := prev(); err != nil {
					return err
				}
				if err := report(i - 1); err != nil {
					return err
				}
			}
		default: // the backend has done step i already
			if err := report(i); err != nil {
				return err
			}
		}
	}
	if see {
		return nil
	}
	if err := p.readLatents(x, xt); err != nil {
		return err
	}
	if last := behind; last != nil {
		behind = nil
		if err := last(); err != nil {
			return err
		}
		return report(len(ts) - 1)
	}
	return nil
}

// writeInput uploads the U-Net input of step i, x scaled by the sampler's
// scale_model_input, into xb [1, 4, h, w].
func (p *Pipeline) writeInput(xb *engine.Tensor, s sample.Sampler, x []float32, i int) {
	in := make([]float32, len(x))
	sample.ScaleInput(s, in, x, i)
	p.B.Write(xb, in)
}

// readLatents copies the device's latents xt into x.
func (p *Pipeline) readLatents(x []float32, xt *engine.Tensor) error {
	v, err := p.B.Read(xt)
	if err != nil {
		return err
	}
	copy(x, v)
	return nil
}

// text returns the text context for r (encodeText). With Offload, the
// text encoder's weights are on the device only while it encodes, and
// the last prompt's context is kept for the next request that asks for
// the same; the pipeline owns it (Generate does not release it).
func (p *Pipeline) text(r Request, guided bool) (*engine.Tensor, error) {
	if p.offText == nil {
		return p.encodeText(r, guided)
	}
	key := fmt.Sprintf("%q %q %v %d", r.Prompt, r.Negative, guided, r.ClipSkip)
	if p.lastText != nil && key == p.lastKey {
		return p.lastText, nil
	}
	p.ForgetText()
	p.offText.In()
	text, err := p.encodeText(r, guided)
	if err != nil {
		return nil, err
	}
	if err := p.offText.Out(math.MaxInt64); err != nil {
		p.Text.Release(text)
		return nil, err
	}
	p.lastText, p.lastKey = text, key
	return text, nil
}

// ForgetText drops the text context kept for the last prompt (Offload),
// so that the next Generate encodes its prompt again even when it is the
// same: benchmarks call it to time what a new prompt costs.
func (p *Pipeline) ForgetText() {
	if p.lastText != nil {
		p.Text.Release(p.lastText)
		p.lastText, p.lastKey = nil, ""
	}
}

// encodeText returns the text context: [1, L, C] for the prompt alone, or
// [2, L, C] holding the negative prompt then the prompt.
func (p *Pipeline) encodeText(r Request, guided bool) (*engine.Tensor, error) {
	pc := prompt.Tokenize(p.Tok, r.Prompt)
	prompts := [][]prompt.Chunk{pc}
	if guided {
		nc := prompt.Tokenize(p.Tok, r.Negative)
		pc, nc = prompt.PadChunks(p.Tok, pc, nc)
		prompts = [][]prompt.Chunk{nc, pc}
	}
	return p.Text.EncodeChunks(prompts, r.ClipSkip)
}

// decode runs the VAE decoder on the final latents (divided by the scaling
// factor first) and returns the image [3, H, W] in [-1, 1]. The decoder's
// activations lie in the region; what else its pool holds is freed when
// it is done.
func (p *Pipeline) decode(x []float32, c, h, w int) ([]float32, error) {
	defer p.VAE.FreeActivations()
	inv := float32(1 / p.Config.VAE.ScalingFactor)
	z := make([]float32, len(x))
	for i, v := range x {
		z[i] = v * inv
	}
	f := p.Config.VAE.DownsampleFactor()
	zt := p.pool.Get(1, c, h, w)      // [1, 4, h, w]
	img := p.pool.Get(1, 3, h*f, w*f) // [1, 3, H, W]
	defer p.pool.Put(zt, img)
	p.B.Write(zt, z)
	if err := p.VAE.Decode(img, zt); err != nil {
		return nil, err
	}
	return p.B.Read(img)
}

func (p *Pipeline) preview(mode Preview, x []float32, c, h, w int) (image.Image, error) {
	switch mode {
	case PreviewLatent:
		return LatentPreview(x, w, h), nil
	case PreviewTAESD:
		zt := p.pool.Get(1, c, h, w)      // [1, 4, h, w]
		img := p.pool.Get(1, 3, h*8, w*8) // [1, 3, 8h, 8w]
		defer p.pool.Put(zt, img)
		p.B.Write(zt, x)
		if err := p.TAESD.Decode(img, zt); err != nil {
			return nil, err
		}
		v, err := p.B.Read(img)
		if err != nil {
			return nil, err
		}
		return ToImage(v, w*8, h*8), nil
	}
	return nil, nil
}

// WeightBytes is the device memory the networks' weights take.
func (p *Pipeline) WeightBytes() int64 { return p.weightBytes }
