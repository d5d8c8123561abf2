package train

import (
	"math"
	"slices"
	"testing"

	"glimmer/engine/model"
	"glimmer/engine/rng"
	"glimmer/engine/sample"
)

// drawSession is a session with just what draw reads: SD's training
// schedule and 4-channel 16x16 latents at scaling factor 2.
func drawSession(t *testing.T, offset float64) *session {
	a, err := sample.AlphasCumprod(sample.SDTrain())
	if err != nil {
		t.Fatal(err)
	}
	return &session{
		cfg:    Config{CaptionDropout: 0.1, NoiseOffset: offset},
		alphas: a,
		mc:     model.Config{Prediction: model.Epsilon, VAE: model.VAEConfig{LatentChannels: 4, ScalingFactor: 2}},
	}
}

// posteriors of B images whose latent mean is 0.25 everywhere and whose
// variance is e^-30 (the clamp's floor), so z = 2 · 0.25 to within 1e-6.
func flatPosteriors(b, n int) []posterior {
	ps := make([]posterior, b)
	for i := range ps {
		ps[i] = posterior{mean: make([]float32, n), logvar: make([]float32, n)}
		for j := range n {
			ps[i].mean[j], ps[i].logvar[j] = 0.25, -30
		}
	}
	return ps
}

// The draws follow z_t = √ᾱ_t·z + √(1−ᾱ_t)·ε with target ε, are a pure
// function of the generator's seed, and drop about a tenth of the captions.
func TestDrawObjective(t *testing.T) {
	const b, n = 512, 4 * 16 * 16
	s := drawSession(t, 0)
	post := flatPosteriors(b, n)
	d := s.draw(post, rng.New(7))
	again := s.draw(post, rng.New(7))
	if !slices.Equal(d.zt, again.zt) || !slices.Equal(d.target, again.target) || !slices.Equal(d.ts, again.ts) {
		t.Fatal("two draws from the same seed differ")
	}
	dropped := 0
	var sum, sq float64
	for i := range b {
		tt := int(d.ts[i])
		if float32(tt) != d.ts[i] || tt < 0 || tt >= 1000 {
			t.Fatalf("item %d: timestep %v", i, d.ts[i])
		}
		if d.dropped[i] {
			dropped++
		}
		a := float64(s.alphas[tt])
		for j := range n {
			k := i*n + j
			want := math.Sqrt(a)*0.5 + math.Sqrt(1-a)*float64(d.target[k])
			if math.Abs(float64(d.zt[k])-want) > 1e-5 { // float32 arithmetic on values of order 1
				t.Fatalf("item %d value %d: z_t %v, want %v", i, j, d.zt[k], want)
			}
			sum += float64(d.target[k])
			sq += float64(d.target[k]) * float64(d.target[k])
		}
	}
	// 524,288 standard normals: mean within 5 standard errors (0.007),
	// variance within 1%.
	m := sum / (b * n)
	if v := sq/(b*n) - m*m; math.Abs(m) > 0.007 || math.Abs(v-1) > 0.01 {
		t.Errorf("ε: mean %.4f, variance %.4f, want 0 and 1", m, v)
	}
	// 512 captions at 10%: 51 expected, standard deviation 6.8.
	if dropped < 24 || dropped > 78 {
		t.Errorf("%d of %d captions dropped, want about 51", dropped, b)
	}
}

// With NoiseOffset, each image's noise differs from the plain draw by one
// constant per latent channel, offset·N(0, 1).
func TestDrawNoiseOffset(t *testing.T) {
	const b, plane, lc = 256, 16 * 16, 4
	post := flatPosteriors(b, lc*plane)
	plain := drawSession(t, 0).draw(post, rng.New(3))
	off := drawSession(t, 0.5).draw(post, rng.New(3))
	var shifts []float64
	for p := range b * lc {
		base := p * plane
		c := off.target[base] - plain.target[base]
		for j := base; j < base+plane; j++ {
			if d := off.target[j] - plain.target[j]; math.Abs(float64(d-c)) > 1e-5 {
				t.Fatalf("plane %d: shift %v at %d, %v at its start: not one constant", p, d, j-base, c)
			}
		}
		shifts = append(shifts, float64(c)/0.5)
	}
	var sum, sq float64
	for _, x := range shifts {
		sum += x
		sq += x * x
	}
	// 1024 standard normals: mean within 5 standard errors (0.16), variance
	// within 0.8..1.2 (its standard error is 0.044).
	m := sum / float64(len(shifts))
	if v := sq/float64(len(shifts)) - m*m; math.Abs(m) > 0.16 || v < 0.8 || v > 1.2 {
		t.Errorf("offsets / 0.5: mean %.3f, variance %.3f, want 0 and 1", m, v)
	}
}
