package autograd_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"glimmer/engine"
	"glimmer/engine/autograd"
	"glimmer/engine/cpu"
)

// randn makes a tape tensor of N(0, 1) values drawn from rnd.
func randn(tp *autograd.Tape, rnd *rand.Rand, shape ...int) *engine.Tensor {
	x := tp.New(engine.F32, shape...) // shape
	v := make([]float32, x.Numel())
	for i := range v {
		v[i] = float32(rnd.NormFloat64())
	}
	tp.Write(x, v)
	return x
}

var pad1 = engine.Conv2DParams{PadH: 1, PadW: 1}

// TestOps checks single ops and the versioning of in-place writes with
// the same directional-derivative check, each parameter set alone (an
// input gradient, a weight gradient) so a rule that is only wrong for one
// operand shows.
func TestOps(t *testing.T) {
	b := cpu.New()
	// which picks the parameters among x, the weight (or gamma) and the
	// bias (or beta).
	type which struct{ x, w, bias bool }
	pick := func(p which, x, w, bias *engine.Tensor) []*engine.Tensor {
		var ps []*engine.Tensor
		for i, on := range []bool{p.x, p.w, p.bias} {
			if on {
				ps = append(ps, []*engine.Tensor{x, w, bias}[i])
			}
		}
		return ps
	}
	conv := func(xs, ws []int, p which) func(tp *autograd.Tape) network {
		return func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x, w, bias := randn(tp, rnd, xs...), randn(tp, rnd, ws...), randn(tp, rnd, ws[0])
			y := tp.New(engine.F32, xs[0], ws[0], xs[2], xs[3]) // [N, OC, H, W]
			return network{params: pick(p, x, w, bias), forward: func(engine.Backend) *engine.Tensor {
				tp.Conv2D(y, x, w, bias, pad1)
				return y
			}}
		}
	}
	groupNorm := func(groups int, p which, inplace bool) func(tp *autograd.Tape) network {
		return func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			x, g, beta := randn(tp, rnd, 2, 32, 4, 4), randn(tp, rnd, 32), randn(tp, rnd, 32)
			h := tp.New(engine.F32, 2, 32, 4, 4) // [N, C, H, W]
			return network{params: pick(p, x, g, beta), forward: func(engine.Backend) *engine.Tensor {
				tp.GroupNorm(h, x, g, beta, engine.GroupNormParams{Groups: groups, Eps: 1e-6, SiLU: true})
				if inplace { // h is read, then overwritten twice
					tp.Binary(h, h, x, engine.Add)
					tp.GroupNorm(h, h, g, beta, engine.GroupNormParams{Groups: groups, Eps: 1e-6})
				}
				return h
			}}
		}
	}
	// residual: a convolution or a linear layer that adds its residual in
	// place (a copy of the parameter r is the destination).
	residual := func(linear bool) func(tp *autograd.Tape) network {
		return func(tp *autograd.Tape) network {
			rnd := rand.New(rand.NewPCG(1, 1))
			if linear {
				x, w, bias := randn(tp, rnd, 2, 6, 5), randn(tp, rnd, 7, 5), randn(tp, rnd, 7)
				r := randn(tp, rnd, 2, 6, 7)     // [B, N, Out]
				y := tp.New(engine.F32, 2, 6, 7) // [B, N, Out]
				return network{params: []*engine.Tensor{x, w, r}, forward: func(engine.Backend) *engine.Tensor {
					tp.Scale(y, r, 1, 0)
					tp.MatMul(y, x, w, bias, engine.MatMulParams{TransB: true, Residual: y})
					return y
				}}
			}
			x, w, bias := randn(tp, rnd, 2, 3, 5, 5), randn(tp, rnd, 4, 3, 3, 3), randn(tp, rnd, 4)
			r := randn(tp, rnd, 2, 4, 5, 5)     // [N, OC, H, W]
			y := tp.New(engine.F32, 2, 4, 5, 5) // [N, OC, H, W]
			return network{params: []*engine.Tensor{x, w, r}, forward: func(engine.Backend) *engine.Tensor {
				tp.Scale(y, r, 1, 0)
				tp.Conv2D(y, x, w, bias, engine.Conv2DParams{PadH: 1, PadW: 1, Residual: y})
				return y
			}}
		}
	}
	all := which{true, true, true}
	cases := map[string]func(tp *autograd.Tape) network{
		"conv-residual":   residual(false),
		"linear-residual": residual(true),
		"groupnorm":       groupNorm(8, all, false),
		"gn-beta-only":    groupNorm(32, which{bias: true}, false),
		"inplace":         groupNorm(8, all, true),
		"conv":            conv([]int{2, 3, 5, 5}, []int{4, 3, 3, 3}, all),
		"conv-w-only":     conv([]int{2, 3, 5, 5}, []int{4, 3, 3, 3}, which{w: true}),
		"conv-big-w":      conv([]int{1, 32, 16, 16}, []int{32, 32, 3, 3}, which{w: true}),
		"conv-big-w3":     conv([]int{1, 3, 16, 16}, []int{32, 3, 3, 3}, which{w: true}),
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
	for _, ops := range []int{1, 2, 3, 4} {
		t.Run("v", func(t *testing.T) {
			directional(t, b, func(tp *autograd.Tape) network {
				rnd := rand.New(rand.NewPCG(1, 1))
				img := randn(tp, rnd, 1, 3, 16, 16)
				w0, b0 := randn(tp, rnd, 32, 3, 3, 3), randn(tp, rnd, 32)
				g1, be1 := randn(tp, rnd, 32), randn(tp, rnd, 32)
				w1, b1 := randn(tp, rnd, 32, 32, 3, 3), randn(tp, rnd, 32)
				cur := tp.New(engine.F32, 1, 32, 16, 16) // [N, C, H, W]
				n1 := tp.New(engine.F32, 1, 32, 16, 16)  // [N, C, H, W]
				hs := tp.New(engine.F32, 1, 32, 16, 16)  // [N, C, H, W]
				return network{params: []*engine.Tensor{w0}, forward: func(engine.Backend) *engine.Tensor {
					tp.Conv2D(cur, img, w0, b0, pad1)
					if ops == 1 {
						return cur
					}
					tp.GroupNorm(n1, cur, g1, be1, engine.GroupNormParams{Groups: 32, Eps: 1e-6, SiLU: true})
					if ops == 2 {
						return n1
					}
					tp.Conv2D(hs, n1, w1, b1, pad1)
					if ops == 3 {
						return hs
					}
					tp.Binary(hs, hs, cur, engine.Add)
					return hs
				}}
			})
		})
	}
}

// TestSampleStepKeepsRecords runs a sampler step on latents a recorded op
// has read (y = w·x, whose gradient in w is the old x): the step must give
// Apply's bits and write the next input, and the backward pass must still
// see the x it recorded.
func TestSampleStepKeepsRecords(t *testing.T) {
	b := cpu.New()
	tp := autograd.New(b)
	defer tp.Close()
	rnd := rand.New(rand.NewPCG(3, 3))
	x := randn(tp, rnd, 1, 2, 3, 3) // [1, C, H, W]
	w := randn(tp, rnd, 1, 2, 3, 3) // [1, C, H, W]
	tp.Param(w)
	old, _ := tp.Read(x)
	y := tp.New(engine.F32, 1, 2, 3, 3) // [1, C, H, W]
	tp.Binary(y, w, x, engine.Mul)
	eps := randn(tp, rnd, 2, 2, 3, 3)      // [2, C, H, W]: uncond, cond
	next := tp.New(engine.F32, 2, 2, 3, 3) // [2, C, H, W]
	p := engine.StepParams{Rule: engine.StepEuler, Guidance: 7.5, Sigma: 3, Dt: -0.5, NextDiv: 1.5}
	tp.NoGrad(func() { tp.SampleStep(x, eps, nil, nil, next, p) })

	want := append([]float32(nil), old...)
	e, _ := tp.Read(eps)
	wantNext := make([]float32, 2*len(want))
	p.Apply(want, e, nil, nil, wantNext)
	got, _ := tp.Read(x)
	gotNext, _ := tp.Read(next)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("latent %d = %v, want %v", i, got[i], want[i])
		}
	}
	for i := range wantNext {
		if gotNext[i] != wantNext[i] {
			t.Fatalf("next input %d = %v, want %v", i, gotNext[i], wantNext[i])
		}
	}

	ones := b.New(engine.F32, 1, 2, 3, 3) // [1, C, H, W]
	b.Write(ones, slices.Repeat([]float32{1}, 18))
	tp.Backward(autograd.Seed{T: y, Grad: ones})
	g, _ := b.Read(tp.Grad(w))
	for i, v := range old {
		if g[i] != v {
			t.Fatalf("d(w·x)/dw at %d = %v, want %v, the x recorded before the step", i, g[i], v)
		}
	}
}
