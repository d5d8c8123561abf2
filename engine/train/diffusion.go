package train

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"glimmer/engine"
	"glimmer/engine/autograd"
	"glimmer/engine/clip"
	"glimmer/engine/model"
	"glimmer/engine/rng"
)

// posterior is the VAE encoder's output for one image: the diagonal
// Gaussian a latent is drawn from (mean and log-variance, [L, h, w]).
type posterior struct{ mean, logvar []float32 }

// trainDiffusion runs the diffusion objective until cfg.Steps, saving and
// sampling as configured.
func (s *session) trainDiffusion(ctx context.Context) error {
	s.stage = "diffusion"
	if s.step >= s.cfg.Steps {
		return s.save()
	}
	return s.loop(ctx, "diffusion", s.cfg.Steps, s.opt, s.diffusionStep)
}

// loop drives one stage: batches from disk, one optimiser step each,
// events, periodic saves and samples, and a save when cancelled.
func (s *session) loop(ctx context.Context, stage string, steps int, opt *optimizer,
	step func(b Batch, gen *rng.Generator) (float64, error)) error {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A resumed run starts a fresh shuffle from its step: the data order
	// differs from an uninterrupted run's, the optimiser state does not.
	bsz := s.cfg.BatchSize
	if stage == "vae" {
		bsz = s.cfg.VAEBatchSize
	}
	batches := s.data.Batches(dctx, bsz, s.cfg.Size, s.cfg.Seed+uint64(s.step))
	last, lastStep := time.Now(), s.step
	rate := 0.0
	for s.step < steps {
		if err := ctx.Err(); err != nil {
			if serr := s.save(); serr != nil {
				return serr
			}
			return err
		}
		b, ok := <-batches
		if !ok {
			if err := ctx.Err(); err != nil {
				if serr := s.save(); serr != nil {
					return serr
				}
				return err
			}
			return fmt.Errorf("train: the data stream of %s ended", s.cfg.Data)
		}
		if b.Err != nil {
			return b.Err
		}
		loss, err := step(b, s.noise(stage, s.step))
		if err != nil {
			s.tp.Reset()
			return err
		}
		norm, err := opt.apply()
		if err != nil {
			s.report(Event{Stage: stage, Step: s.step + 1, Steps: steps, Message: err.Error()})
		}
		s.tp.Reset()
		s.step++
		ev := Event{Stage: stage, Step: s.step, Steps: steps, Loss: loss, GradNorm: norm,
			Smoothed: s.smooth(loss, s.step == 1), Elapsed: time.Since(s.start)}
		if stage == "diffusion" {
			s.losses = append(s.losses, loss)
		}
		if dt := time.Since(last); dt > 2*time.Second || s.step == steps {
			rate = float64(s.step-lastStep) / dt.Seconds()
			last, lastStep = time.Now(), s.step
		}
		ev.Rate = rate
		if s.cfg.SampleEvery > 0 && s.step%s.cfg.SampleEvery == 0 && stage == "diffusion" && ctx.Err() == nil {
			img, err := s.makeSample(ctx)
			switch {
			case err == nil:
				ev.Sample = img
			case ctx.Err() != nil: // stopped while sampling: save below
			default:
				return err
			}
		}
		if (s.cfg.SaveEvery > 0 && s.step%s.cfg.SaveEvery == 0) || s.step == steps || ctx.Err() != nil {
			if err := s.save(); err != nil {
				return err
			}
			ev.Saved = s.cfg.Out
		}
		s.report(ev)
	}
	return nil
}

// diffusionStep computes the loss of one batch and leaves its gradients:
//
//	z   = scaling · (μ + σ·n)          a latent from the VAE posterior
//	y   = CLIP(caption), or CLIP("") with probability CaptionDropout
//	t   ~ U{0, …, 999};  ε ~ N(0, I)  (+ offset·N(0, 1) per channel with NoiseOffset)
//	z_t = √ᾱ_t·z + √(1−ᾱ_t)·ε
//	L   = mean ‖target − U-Net(z_t, t, y)‖²,  target ε (or v = √ᾱ_t·ε − √(1−ᾱ_t)·z)
func (s *session) diffusionStep(b Batch, gen *rng.Generator) (float64, error) {
	bsz := len(b.Captions)
	post, err := s.posteriors(b)
	if err != nil {
		return 0, err
	}
	lc := s.mc.VAE.LatentChannels
	h := s.cfg.Size / s.mc.VAE.DownsampleFactor()
	d := s.draw(post, gen)
	ids := make([][clip.Context]int, bsz)
	for i, c := range b.Captions {
		if d.dropped[i] {
			c = ""
		}
		ids[i] = s.tok.Window(c)
	}

	tp := s.tp
	text, err := s.text.Encode(ids, 1) // [B, 77, C]
	if err != nil {
		return 0, err
	}
	defer s.text.Release(text)
	x := tp.New(engine.F32, bsz, lc, h, h) // [B, L, h, w]
	defer tp.Free(x)
	tp.Write(x, d.zt)
	pred := tp.New(engine.F32, bsz, lc, h, h) // [B, L, h, w]
	defer tp.Free(pred)
	if err := s.unet.Forward(pred, x, d.ts, text); err != nil {
		return 0, err
	}
	return s.mseBackward(pred, d.target)
}

// draws are one batch's random parts of the diffusion objective.
type draws struct {
	dropped    []bool    // [B]: the caption is replaced by ""
	ts         []float32 // [B]: the timesteps
	zt, target []float32 // [B, L, h, w]: the noised latents and what the U-Net must predict
}

// draw samples the objective's random parts for a batch of posteriors.
// Each item draws its random numbers from its own generator, seeded in turn
// from the step's: the draws depend only on (seed, step, item), and the
// items' 2·L·h·w normals are drawn on all cores at once.
func (s *session) draw(post []posterior, gen *rng.Generator) draws {
	bsz := len(post)
	lc := s.mc.VAE.LatentChannels
	n := len(post[0].mean) // L·h·w
	sf := float32(s.mc.VAE.ScalingFactor)
	d := draws{dropped: make([]bool, bsz), ts: make([]float32, bsz),
		zt: make([]float32, bsz*n), target: make([]float32, bsz*n)}
	forEachItem(gen, bsz, func(i int, g *rng.Generator) {
		d.dropped[i] = float64(g.Uint32())/(1<<32) < s.cfg.CaptionDropout
		t := int(g.Uint32() % uint32(len(s.alphas)))
		d.ts[i] = float32(t)
		a := float64(s.alphas[t])
		sa, sb := float32(math.Sqrt(a)), float32(math.Sqrt(1-a))
		noise := g.Randn(n)
		eps := g.Randn(n)
		if s.cfg.NoiseOffset > 0 {
			plane := n / lc
			for c, o := range g.Randn(lc) {
				off := float32(s.cfg.NoiseOffset) * o
				for j := c * plane; j < (c+1)*plane; j++ {
					eps[j] += off
				}
			}
		}
		p := post[i]
		for j := range n {
			std := float32(math.Exp(0.5 * float64(clampLogvar(p.logvar[j]))))
			z := sf * (p.mean[j] + std*noise[j])
			k := i*n + j
			d.zt[k] = sa*z + sb*eps[j]
			if s.mc.Prediction == model.VPrediction {
				d.target[k] = sa*eps[j] - sb*z
			} else {
				d.target[k] = eps[j]
			}
		}
	})
	return d
}

// mseBackward reads out, returns mean((out − target)²) and runs the
// backward pass from d loss / d out = 2(out − target)/N.
func (s *session) mseBackward(out *engine.Tensor, target []float32, extra ...autograd.Seed) (float64, error) {
	v, err := s.tp.Read(out)
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	grad := make([]float32, len(v))
	var sum float64
	k := 2 / float32(len(v))
	for i := range v {
		d := v[i] - target[i]
		sum += float64(d) * float64(d)
		grad[i] = k * d
	}
	loss := sum / float64(len(v))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("train: the loss is %g (diverged); lower the learning rate", loss)
	}
	b := s.tp.Backend()
	g := b.New(engine.F32, out.Shape()...) // out's shape
	defer b.Free(g)
	b.Write(g, grad)
	s.tp.Backward(append([]autograd.Seed{{T: out, Grad: g}}, extra...)...)
	return loss, nil
}

// forEachItem calls f for items 0..n-1 on all cores, item i with a
// generator seeded by the i-th value drawn from gen (drawn in order before
// any f runs, so the results do not depend on scheduling).
func forEachItem(gen *rng.Generator, n int, f func(i int, g *rng.Generator)) {
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = gen.Uint64()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i, rng.New(seeds[i]))
			}
		}()
	}
	wg.Wait()
}

// clampLogvar is diffusers' DiagonalGaussianDistribution clamp.
func clampLogvar(v float32) float32 { return min(max(v, -30), 20) }

// posteriors returns each batch image's VAE posterior, encoding (without
// gradients) the images not seen before: the VAE is frozen while the
// diffusion objective trains, so each image is encoded once (kohya's
// latent cache).
func (s *session) posteriors(b Batch) ([]posterior, error) {
	if s.latents == nil {
		s.latents = map[string]posterior{}
	}
	var todo []int
	for i, p := range b.Paths {
		if _, ok := s.latents[p]; !ok {
			todo = append(todo, i)
		}
	}
	if len(todo) > 0 {
		plane := 3 * s.cfg.Size * s.cfg.Size
		imgs := make([]float32, 0, len(todo)*plane)
		for _, i := range todo {
			imgs = append(imgs, b.Images[i*plane:(i+1)*plane]...)
		}
		ps, err := s.encode(imgs, len(todo))
		if err != nil {
			return nil, err
		}
		for k, i := range todo {
			s.latents[b.Paths[i]] = ps[k]
		}
	}
	out := make([]posterior, len(b.Paths))
	for i, p := range b.Paths {
		out[i] = s.latents[p]
	}
	return out, nil
}

// encode runs the VAE encoder on n images [n, 3, S, S] without recording.
func (s *session) encode(imgs []float32, n int) ([]posterior, error) {
	tp := s.tp
	size := s.cfg.Size
	lc, h := s.mc.VAE.LatentChannels, size/s.mc.VAE.DownsampleFactor()
	var mean, logvar []float32
	var err error
	tp.NoGrad(func() {
		img := tp.New(engine.F32, n, 3, size, size) // [n, 3, S, S]
		mu := tp.New(engine.F32, n, lc, h, h)       // [n, L, h, w]
		lv := tp.New(engine.F32, n, lc, h, h)       // [n, L, h, w]
		defer func() { tp.Free(img); tp.Free(mu); tp.Free(lv) }()
		tp.Write(img, imgs)
		if err = s.vae.Encode(mu, lv, img); err != nil {
			return
		}
		if mean, err = tp.Read(mu); err != nil {
			return
		}
		logvar, err = tp.Read(lv)
	})
	tp.Reset()
	if err != nil {
		return nil, fmt.Errorf("train: VAE encoder: %w", err)
	}
	m := lc * h * h
	out := make([]posterior, n)
	for i := range out {
		out[i] = posterior{mean: mean[i*m : (i+1)*m], logvar: logvar[i*m : (i+1)*m]}
	}
	return out, nil
}
