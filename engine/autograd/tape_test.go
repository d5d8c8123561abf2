package autograd_test

import (
	"math/rand/v2"
	"testing"

	"glimmer/engine"
	"glimmer/engine/autograd"
	"glimmer/engine/cpu"
)

// TestOps checks single ops and the versioning of in-place writes with
// the same directional-derivative check, each parameter set alone (an
// input gradient, a weight gradient) so a rule that is only wrong for one
// operand shows.
func TestOps(t *testing.T) {
	b := cpu.New()
	mk := func(tp *autograd.Tape, rnd *rand.Rand, shape ...int) *engine.Tensor {
		x := tp.New(engine.F32, shape...)
		v := make([]float32, x.Numel())
		for i := range v {
			v[i] = float32(rnd.NormFloat64())
		}
		tp.Write(x, v)
		return x
	}
	cases := map[string]func(tp *autograd.Tape) network{
		"groupnorm": func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x := mk(tp, rnd, 2, 32, 4, 4)
			g := mk(tp, rnd, 32)
			be := mk(tp, rnd, 32)
			y := tp.New(engine.F32, 2, 32, 4, 4)
			return network{params: []*engine.Tensor{x, g, be}, forward: func(engine.Backend) *engine.Tensor {
				tp.GroupNorm(y, x, g, be, engine.GroupNormParams{Groups: 8, Eps: 1e-6, SiLU: true})
				return y
			}}
		},
		"gn-beta-only": func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x := mk(tp, rnd, 2, 32, 4, 4)
			g := mk(tp, rnd, 32)
			be := mk(tp, rnd, 32)
			y := tp.New(engine.F32, 2, 32, 4, 4)
			return network{params: []*engine.Tensor{be}, forward: func(engine.Backend) *engine.Tensor {
				tp.GroupNorm(y, x, g, be, engine.GroupNormParams{Groups: 32, Eps: 1e-6, SiLU: true})
				return y
			}}
		},
		"conv-w-only": func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x := mk(tp, rnd, 2, 3, 5, 5)
			w := mk(tp, rnd, 4, 3, 3, 3)
			be := mk(tp, rnd, 4)
			y := tp.New(engine.F32, 2, 4, 5, 5)
			return network{params: []*engine.Tensor{w}, forward: func(engine.Backend) *engine.Tensor {
				tp.Conv2D(y, x, w, be, engine.Conv2DParams{PadH: 1, PadW: 1})
				return y
			}}
		},
		"conv-big-w": func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x := mk(tp, rnd, 1, 32, 16, 16)
			w := mk(tp, rnd, 32, 32, 3, 3)
			be := mk(tp, rnd, 32)
			y := tp.New(engine.F32, 1, 32, 16, 16)
			return network{params: []*engine.Tensor{w}, forward: func(engine.Backend) *engine.Tensor {
				tp.Conv2D(y, x, w, be, engine.Conv2DParams{PadH: 1, PadW: 1})
				return y
			}}
		},
		"conv-big-w3": func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x := mk(tp, rnd, 1, 3, 16, 16)
			w := mk(tp, rnd, 32, 3, 3, 3)
			be := mk(tp, rnd, 32)
			y := tp.New(engine.F32, 1, 32, 16, 16)
			return network{params: []*engine.Tensor{w}, forward: func(engine.Backend) *engine.Tensor {
				tp.Conv2D(y, x, w, be, engine.Conv2DParams{PadH: 1, PadW: 1})
				return y
			}}
		},
		"conv": func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x := mk(tp, rnd, 2, 3, 5, 5)
			w := mk(tp, rnd, 4, 3, 3, 3)
			be := mk(tp, rnd, 4)
			y := tp.New(engine.F32, 2, 4, 5, 5)
			return network{params: []*engine.Tensor{x, w, be}, forward: func(engine.Backend) *engine.Tensor {
				tp.Conv2D(y, x, w, be, engine.Conv2DParams{PadH: 1, PadW: 1})
				return y
			}}
		},
		"inplace": func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x := mk(tp, rnd, 2, 32, 4, 4)
			g := mk(tp, rnd, 32)
			be := mk(tp, rnd, 32)
			h := tp.New(engine.F32, 2, 32, 4, 4)
			return network{params: []*engine.Tensor{x, g, be}, forward: func(engine.Backend) *engine.Tensor {
				tp.GroupNorm(h, x, g, be, engine.GroupNormParams{Groups: 8, Eps: 1e-6, SiLU: true})
				tp.Binary(h, h, x, engine.Add)
				tp.GroupNorm(h, h, g, be, engine.GroupNormParams{Groups: 8, Eps: 1e-6, SiLU: false})
				return h
			}}
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) { directional(t, b, c) })
	}
}

// TestResnetChain grows a ResNet-like chain (convolution, GroupNorm+SiLU,
// convolution, an in-place residual add into a buffer read earlier) one
// op at a time, checking the first weight's gradient through each.
func TestResnetChain(t *testing.T) {
	b := cpu.New()
	mk := func(tp *autograd.Tape, rnd *rand.Rand, shape ...int) *engine.Tensor {
		x := tp.New(engine.F32, shape...)
		v := make([]float32, x.Numel())
		for i := range v {
			v[i] = float32(rnd.NormFloat64())
		}
		tp.Write(x, v)
		return x
	}
	for _, variant := range []int{0, 1, 2, 3} {
		t.Run("v", func(t *testing.T) {
			directional(t, b, func(tp *autograd.Tape) network {
				rnd := rand.New(rand.NewPCG(1, 1))
				img := mk(tp, rnd, 1, 3, 16, 16)
				w0 := mk(tp, rnd, 32, 3, 3, 3)
				b0 := mk(tp, rnd, 32)
				g1 := mk(tp, rnd, 32)
				be1 := mk(tp, rnd, 32)
				w1 := mk(tp, rnd, 32, 32, 3, 3)
				b1 := mk(tp, rnd, 32)
				cur := tp.New(engine.F32, 1, 32, 16, 16)
				n1 := tp.New(engine.F32, 1, 32, 16, 16)
				hs := tp.New(engine.F32, 1, 32, 16, 16)
				p := []*engine.Tensor{w0}
				return network{params: p, forward: func(engine.Backend) *engine.Tensor {
					tp.Conv2D(cur, img, w0, b0, engine.Conv2DParams{PadH: 1, PadW: 1})
					if variant == 0 {
						return cur
					}
					tp.GroupNorm(n1, cur, g1, be1, engine.GroupNormParams{Groups: 32, Eps: 1e-6, SiLU: true})
					if variant == 1 {
						return n1
					}
					tp.Conv2D(hs, n1, w1, b1, engine.Conv2DParams{PadH: 1, PadW: 1})
					if variant == 2 {
						return hs
					}
					tp.Binary(hs, hs, cur, engine.Add)
					return hs
				}}
			})
		})
	}
}
