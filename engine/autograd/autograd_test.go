package autograd_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
	"glimmer/engine/autograd"
	"glimmer/engine/clip"
	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/unet"
	"glimmer/engine/vae"
)

// The tape is checked on whole networks, the way training uses it: the
// gradient of L = Σ r ⊙ f(θ) (r fixed random) along a random direction v
// of every parameter (scaled by that parameter's RMS), ⟨∇L, v⟩, must
// equal the central difference
// (L(θ+hv) − L(θ−hv)) / 2h of the forward pass alone. The networks are
// the sd1-tiny fixture's, with F32 weights, so every op the U-Net, VAE and
// CLIP use (including in-place residual adds and recycled buffers, which
// the tape must version) is on the path.
//
// Tolerance: the forward runs in float32, so each loss carries a rounding
// error of about 1e-6 relative; h = 3e-4 (every weight moved by 0.03% of
// its RMS) makes the difference quotient's rounding error ≈ 1e-6/h ≈ 3e-3
// relative. The O(h²) truncation error is what limits h: the random
// fixture U-Net at t = 999 is so curved that h = 3e-3 gives a quotient of
// the wrong sign (measured), while 3e-4 agrees to 2e-3. A
// bound of 1e-2 relative leaves margin for both while any wrong backward
// rule (a missing term, a transposed operand, a lost gradient through an
// overwritten buffer) moves the result by far more than 1%.
const relTol = 1e-2

type network struct {
	params  []*engine.Tensor
	forward func(b engine.Backend) *engine.Tensor // returns the output tape tensor
}

// directional checks ⟨∇L, v⟩ against a central difference on one backend.
func directional(t *testing.T, b engine.TrainBackend, build func(tp *autograd.Tape) network) {
	tp := autograd.New(b)
	defer tp.Close()
	net := build(tp)
	for _, p := range net.params {
		tp.Param(p)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	base := make([][]float32, len(net.params))
	dirs := make([][]float32, len(net.params))
	for i, p := range net.params {
		v, err := tp.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		base[i] = v
		// Directions scale with each parameter's RMS, so a step h moves
		// every weight by the same relative amount.
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		rms := math.Sqrt(ss / float64(len(v)))
		if rms == 0 {
			rms = 1
		}
		dirs[i] = make([]float32, len(v))
		for j := range dirs[i] {
			dirs[i][j] = float32(rnd.NormFloat64() * rms)
		}
	}
	var r []float32
	loss := func() float64 {
		out := net.forward(tp)
		v, err := tp.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			r = make([]float32, len(v))
			for j := range r {
				r[j] = float32(rnd.NormFloat64())
			}
		}
		var s float64
		for j := range v {
			s += float64(r[j]) * float64(v[j])
		}
		return s
	}
	shift := func(h float64) {
		for i, p := range net.params {
			v := make([]float32, len(base[i]))
			for j := range v {
				v[j] = base[i][j] + float32(h)*dirs[i][j]
			}
			tp.Write(p, v)
		}
	}

	// Gradient by the tape.
	loss() // makes r
	tp.Reset()
	out := net.forward(tp)
	seed := b.New(engine.F32, out.Shape()...)
	defer b.Free(seed)
	b.Write(seed, r)
	tp.Backward(autograd.Seed{T: out, Grad: seed})
	var got float64
	reached := 0
	for i, p := range net.params {
		g := tp.Grad(p)
		if g == nil {
			continue
		}
		reached++
		gv, err := b.Read(g)
		if err != nil {
			t.Fatal(err)
		}
		for j := range gv {
			if math.IsNaN(float64(gv[j])) {
				t.Fatalf("parameter %d: NaN gradient", i)
			}
			got += float64(gv[j]) * float64(dirs[i][j])
		}
	}
	if reached != len(net.params) {
		t.Errorf("gradients reached %d of %d parameters", reached, len(net.params))
	}
	tp.Reset()

	const h = 3e-4
	shift(h)
	lp := loss()
	tp.Reset()
	shift(-h)
	lm := loss()
	tp.Reset()
	shift(0)
	want := (lp - lm) / (2 * h)
	rel := math.Abs(got-want) / math.Abs(want)
	t.Logf("%s: ⟨∇L, v⟩ = %.6g, central difference %.6g, relative difference %.2e", b.Name(), got, want, rel)
	if !(rel < relTol) {
		t.Errorf("directional derivative %.6g, central difference %.6g: relative error %.2e > %.0e", got, want, rel, relTol)
	}
}

func trainBackends(t *testing.T, f func(t *testing.T, b engine.TrainBackend)) {
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			f(t, b.(engine.TrainBackend))
		})
	}
}

func openTiny(t *testing.T) *model.Model {
	m, err := model.Open(fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers"), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// subset keeps every k-th tensor as a parameter (a few hundred tensors'
// worth of directions otherwise makes the check slow on llvmpipe without
// making it stronger), always including the first and last.
func subset(ts []*engine.Tensor, k int) []*engine.Tensor {
	var out []*engine.Tensor
	for i, x := range ts {
		if i%k == 0 || i == len(ts)-1 {
			out = append(out, x)
		}
	}
	return out
}

func TestUNetGradient(t *testing.T) {
	m := openTiny(t)
	trainBackends(t, func(t *testing.T, b engine.TrainBackend) {
		directional(t, b, func(tp *autograd.Tape) network {
			l := nn.NewLoader(tp, m.Component("unet"), true)
			u, err := unet.Load(l, m.Config.UNet)
			if err != nil {
				t.Fatal(err)
			}
			rnd := rand.New(rand.NewPCG(3, 4))
			x := randn(tp, rnd, 2, 4, 8, 8)                               // [B, 4, h, w]
			ctx := randn(tp, rnd, 2, 77, m.Config.UNet.CrossAttentionDim) // [B, 77, C]
			out := tp.New(engine.F32, 2, 4, 8, 8)                         // [B, 4, h, w]
			// The input and the text are parameters too, so gradients
			// through the data path (skips, cross-attention keys) count.
			return network{
				params: append(subset(l.Tensors(), 7), x, ctx),
				forward: func(engine.Backend) *engine.Tensor {
					if err := u.Forward(out, x, []float32{999, 321}, ctx); err != nil {
						t.Fatal(err)
					}
					return out
				},
			}
		})
	})
}

func TestVAEGradient(t *testing.T) {
	m := openTiny(t)
	trainBackends(t, func(t *testing.T, b engine.TrainBackend) {
		directional(t, b, func(tp *autograd.Tape) network {
			l := nn.NewLoader(tp, m.Component("vae"), true)
			v, err := vae.Load(l, m.Config.VAE)
			if err != nil {
				t.Fatal(err)
			}
			rnd := rand.New(rand.NewPCG(5, 6))
			img := tp.New(engine.F32, 1, 3, 16, 16)  // [B, 3, H, W]
			mean := tp.New(engine.F32, 1, 4, 2, 2)   // [B, 4, h, w]
			logvar := tp.New(engine.F32, 1, 4, 2, 2) // [B, 4, h, w]
			z := tp.New(engine.F32, 1, 4, 2, 2)      // [B, 4, h, w]
			rec := tp.New(engine.F32, 1, 3, 16, 16)  // [B, 3, H, W]
			pix := make([]float32, img.Numel())
			for i := range pix {
				pix[i] = float32(rnd.Float64()*2 - 1)
			}
			tp.Write(img, pix)
			// The posterior convolution runs as two halves (mean, logvar):
			// those are the parameters, not the checkpoint's joined tensor.
			var ws []*engine.Tensor
			for _, w := range l.Tensors() {
				if w != v.Moments.Weight && w != v.Moments.Bias {
					ws = append(ws, w)
				}
			}
			return network{
				params: append(subset(ws, 5), v.QuantMean.Weight, v.QuantLogvar.Bias, img),
				forward: func(engine.Backend) *engine.Tensor {
					if err := v.Encode(mean, logvar, img); err != nil {
						t.Fatal(err)
					}
					// z = mean + exp(logvar/2) ⊙ 0.5: the reparameterised
					// sample with a fixed draw, so both outputs are used.
					tp.Scale(z, logvar, 0.5, 0)
					tp.Unary(z, z, engine.Exp)
					tp.Scale(z, z, 0.5, 0)
					tp.Binary(z, z, mean, engine.Add)
					if err := v.Decode(rec, z); err != nil {
						t.Fatal(err)
					}
					return rec
				},
			}
		})
	})
}

func TestCLIPGradient(t *testing.T) {
	m := openTiny(t)
	trainBackends(t, func(t *testing.T, b engine.TrainBackend) {
		directional(t, b, func(tp *autograd.Tape) network {
			l := nn.NewLoader(tp, m.Component("text_encoder"), true)
			e, err := clip.LoadTrainable(l.Sub("text_model"), m.Config.Text)
			if err != nil {
				t.Fatal(err)
			}
			var ids [2][clip.Context]int
			for i := range ids {
				for j := range ids[i] {
					ids[i][j] = (i*7919 + j*104729) % m.Config.Text.VocabSize
				}
			}
			return network{
				params: subset(l.Tensors(), 3),
				forward: func(engine.Backend) *engine.Tensor {
					z, err := e.Encode(ids[:], 1)
					if err != nil {
						t.Fatal(err)
					}
					e.Release(z)
					return z
				},
			}
		})
	})
}
