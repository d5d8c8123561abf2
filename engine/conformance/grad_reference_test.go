package conformance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
)

// The backward references are checked against central finite differences
// of the forward references: for a fixed random upstream gradient dy and
// the loss L(x) = Σ dy ⊙ f(x), the reference gradient of x must match
//
//	(L(x + h·e_i) - L(x - h·e_i)) / 2h
//
// for every element i. In float64 with h = 1e-5 on unit-scale inputs, the
// truncation error is h²/6·|L”'| ≈ 1e-11 and the cancellation error
// about 1e-16·|L|/h ≈ 1e-10 for the suite's |L| ≲ 10, so fdTol = 1e-6
// (relative to max(1, |gradient|)) has four orders of margin, while any
// wrong term of a formula (a missing mean, a wrong scale, an off-by-one
// tap) is an O(1) error.
const (
	fdStep = 1e-5
	fdTol  = 1e-6
)

// fdCheck compares grad, the reference gradient of loss at x, with central
// differences. loss may read x, which is perturbed in place and restored.
func fdCheck(t *testing.T, what string, x []float64, loss func() float64, grad []float64) {
	t.Helper()
	if len(grad) != len(x) {
		t.Fatalf("%s: gradient has %d values, input %d", what, len(grad), len(x))
	}
	worst, worstI := 0.0, 0
	var fdWorst float64
	for i := range x {
		orig := x[i]
		x[i] = orig + fdStep
		lp := loss()
		x[i] = orig - fdStep
		lm := loss()
		x[i] = orig
		fd := (lp - lm) / (2 * fdStep)
		rel := math.Abs(fd-grad[i]) / max(1, math.Abs(grad[i]))
		if rel > worst {
			worst, worstI, fdWorst = rel, i, fd
		}
	}
	if worst > fdTol {
		t.Errorf("%s: element %d: reference gradient %.12g, finite difference %.12g (relative error %.3g > %g)",
			what, worstI, grad[worstI], fdWorst, worst, fdTol)
	}
}

// dot is Σ a ⊙ b, the loss against an upstream gradient.
func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func randVec(rng *rand.Rand, n int, sd, mean float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()*sd + mean
	}
	return v
}

func newRng(name string) *rand.Rand {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(h, 1))
}

func TestRefSumToFD(t *testing.T) {
	cases := []struct{ x, dst []int }{
		{[]int{2, 3, 4}, []int{4}},
		{[]int{2, 3, 2, 3}, []int{1, 3, 1, 1}},
		{[]int{3, 4}, []int{1}},
		{[]int{2, 3, 4}, []int{2, 1, 4}},
		{[]int{2, 3}, []int{2, 3}},
	}
	for _, tc := range cases {
		rng := newRng(fmt.Sprint(tc))
		// SumTo is the adjoint of broadcasting dst's shape to x's.
		src := randVec(rng, engine.Shape(tc.dst).Numel(), 1, 0)
		dy := randVec(rng, engine.Shape(tc.x).Numel(), 1, 0)
		first := func(x, _ float64) float64 { return x }
		loss := func() float64 {
			return dot(dy, refBroadcast(src, tc.dst, []float64{0}, []int{1}, tc.x, first))
		}
		fdCheck(t, fmt.Sprint("SumTo", tc), src, loss, refSumTo(dy, tc.x, tc.dst))
	}
}

func TestRefConv2DBackwardFD(t *testing.T) {
	shapes := []convShape{
		{n: 2, c: 2, h: 4, w: 5, oc: 3, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1},
		{n: 1, c: 3, h: 5, w: 4, oc: 2, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1},
		{n: 1, c: 2, h: 6, w: 5, oc: 2, kh: 3, kw: 3, sh: 2, sw: 2},
		{n: 2, c: 3, h: 3, w: 4, oc: 2, kh: 1, kw: 1, sh: 1, sw: 1},
		{n: 1, c: 2, h: 5, w: 6, oc: 3, kh: 2, kw: 3, sh: 1, sw: 2, ph: 1, pw: 0},
	}
	for _, s := range shapes {
		rng := newRng(fmt.Sprint(s))
		x := randVec(rng, s.n*s.c*s.h*s.w, 1, 0)
		w := randVec(rng, s.oc*s.c*s.kh*s.kw, 1, 0)
		dy := randVec(rng, s.n*s.oc*s.outH()*s.outW(), 1, 0)
		loss := func() float64 { return dot(dy, refConv2D(x, w, nil, s)) }
		fdCheck(t, fmt.Sprintf("Conv2DBackwardData %+v", s), x, loss, refConv2DBackwardData(dy, w, s))
		fdCheck(t, fmt.Sprintf("Conv2DBackwardWeight %+v", s), w, loss, refConv2DBackwardWeight(x, dy, s))
	}
}

func TestRefGroupNormBackwardFD(t *testing.T) {
	for _, silu := range []bool{false, true} {
		n, c, spatial, groups := 2, 6, 5, 3
		rng := newRng(fmt.Sprint("groupnorm", silu))
		x := randVec(rng, n*c*spatial, 1, 0.5)
		gamma := randVec(rng, c, 1, 0)
		beta := randVec(rng, c, 1, 0)
		dy := randVec(rng, n*c*spatial, 1, 0)
		const eps = 1e-5
		loss := func() float64 { return dot(dy, refGroupNorm(x, gamma, beta, n, c, spatial, groups, eps, silu)) }
		dx, dgamma, dbeta := refGroupNormBackward(dy, x, gamma, beta, n, c, spatial, groups, eps, silu)
		what := fmt.Sprintf("GroupNormBackward silu=%v", silu)
		fdCheck(t, what+" dx", x, loss, dx)
		fdCheck(t, what+" dgamma", gamma, loss, dgamma)
		fdCheck(t, what+" dbeta", beta, loss, dbeta)
	}
}

func TestRefLayerNormBackwardFD(t *testing.T) {
	rows, cols := 3, 7
	rng := newRng("layernorm")
	x := randVec(rng, rows*cols, 2, 0.5)
	gamma := randVec(rng, cols, 1, 0)
	beta := randVec(rng, cols, 1, 0)
	dy := randVec(rng, rows*cols, 1, 0)
	const eps = 1e-5
	loss := func() float64 { return dot(dy, refLayerNorm(x, gamma, beta, cols, eps)) }
	dx, dgamma, dbeta := refLayerNormBackward(dy, x, gamma, cols, eps)
	fdCheck(t, "LayerNormBackward dx", x, loss, dx)
	fdCheck(t, "LayerNormBackward dgamma", gamma, loss, dgamma)
	fdCheck(t, "LayerNormBackward dbeta", beta, loss, dbeta)
}

func TestRefSoftmaxBackwardFD(t *testing.T) {
	rng := newRng("softmax")
	cols := 6
	x := randVec(rng, 3*cols, 2, 0)
	dy := randVec(rng, len(x), 1, 0)
	loss := func() float64 { return dot(dy, refSoftmax(x, cols)) }
	// The op takes the forward output y, not x.
	fdCheck(t, "SoftmaxBackward", x, loss, refSoftmaxBackward(dy, refSoftmax(x, cols), cols))
}

func TestRefAttentionBackwardFD(t *testing.T) {
	cases := []attnCase{
		{b: 2, nq: 3, nk: 4, heads: 2, dim: 3},
		{b: 1, nq: 4, nk: 4, heads: 2, dim: 2, causal: true},
		{b: 1, nq: 5, nk: 2, heads: 1, dim: 4, scale: 0.7},
	}
	for _, ac := range cases {
		rng := newRng(ac.name())
		width := ac.heads * ac.dim
		q := randVec(rng, ac.b*ac.nq*width, 1, 0)
		k := randVec(rng, ac.b*ac.nk*width, 1, 0)
		v := randVec(rng, ac.b*ac.nk*width, 1, 0)
		dy := randVec(rng, ac.b*ac.nq*width, 1, 0)
		scale := float64(ac.scale)
		if scale == 0 {
			scale = 1 / math.Sqrt(float64(ac.dim))
		}
		loss := func() float64 {
			return dot(dy, refAttention(q, k, v, ac.b, ac.nq, ac.nk, ac.heads, ac.dim, scale, ac.causal))
		}
		dq, dk, dv := refAttentionBackward(dy, q, k, v, ac.b, ac.nq, ac.nk, ac.heads, ac.dim, scale, ac.causal)
		fdCheck(t, "AttentionBackward dq "+ac.name(), q, loss, dq)
		fdCheck(t, "AttentionBackward dk "+ac.name(), k, loss, dk)
		fdCheck(t, "AttentionBackward dv "+ac.name(), v, loss, dv)
	}
}

func TestRefUnaryBackwardFD(t *testing.T) {
	for _, u := range unaryRefs {
		rng := newRng(u.op.String())
		x := randVec(rng, 40, 2, 0)
		dy := randVec(rng, len(x), 1, 0)
		loss := func() float64 { return dot(dy, mapRef(x, u.ref)) }
		fdCheck(t, "UnaryBackward "+u.op.String(), x, loss, refUnaryBackward(dy, x, unaryDeriv(u.op)))
	}
}

func TestRefGEGLUBackwardFD(t *testing.T) {
	rng := newRng("geglu")
	f := 5
	x := randVec(rng, 3*2*f, 1.5, 0)
	dy := randVec(rng, 3*f, 1, 0)
	loss := func() float64 { return dot(dy, refGEGLU(x, f)) }
	fdCheck(t, "GEGLUBackward", x, loss, refGEGLUBackward(dy, x, f))
}

func TestRefUpsample2xBackwardFD(t *testing.T) {
	rng := newRng("upsample")
	planes, h, w := 2, 3, 4
	x := randVec(rng, planes*h*w, 1, 0)
	dy := randVec(rng, 4*len(x), 1, 0)
	loss := func() float64 { return dot(dy, refUpsample2x(x, planes, h, w)) }
	fdCheck(t, "Upsample2xBackward", x, loss, refUpsample2xBackward(dy, planes, h, w))
}

func TestRefSplitFD(t *testing.T) {
	rng := newRng("split")
	n, ca, cb, rest := 2, 3, 2, 5
	a := randVec(rng, n*ca*rest, 1, 0)
	b := randVec(rng, n*cb*rest, 1, 0)
	dy := randVec(rng, len(a)+len(b), 1, 0)
	loss := func() float64 { return dot(dy, refConcat(a, b, n, ca, cb, rest)) }
	da, db := refSplit(dy, n, ca, cb, rest)
	fdCheck(t, "Split a", a, loss, da)
	fdCheck(t, "Split b", b, loss, db)
}

// TestRefAdamW checks the optimiser reference against closed forms. With a
// constant gradient g the bias-corrected moments are exactly g and g² at
// every step (m_t = (1-β1^t)·g, v_t = (1-β2^t)·g²), so each step moves
// param by lr·(wd·param + g/(|g| + eps)).
func TestRefAdamW(t *testing.T) {
	p := engine.AdamWParams{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-3, WeightDecay: 0.1, GradScale: 0.5}
	grad := []float64{2, -0.004, 0}
	param := []float64{1, -3, 0.5}
	m, v := make([]float64, 3), make([]float64, 3)
	want := append([]float64(nil), param...)
	lr, wd, eps := float64(p.LR), float64(p.WeightDecay), float64(p.Eps)
	for step := 1; step <= 3; step++ {
		p.Step = step
		refAdamW(param, grad, m, v, p)
		for i := range want {
			g := grad[i] * 0.5
			want[i] -= lr * (wd*want[i] + g/(math.Abs(g)+eps))
		}
		near(t, fmt.Sprintf("param after step %d", step), param, want)
		mWant := make([]float64, 3)
		vWant := make([]float64, 3)
		for i := range grad {
			g := grad[i] * 0.5
			mWant[i] = (1 - math.Pow(float64(p.Beta1), float64(step))) * g
			vWant[i] = (1 - math.Pow(float64(p.Beta2), float64(step))) * g * g
		}
		near(t, fmt.Sprintf("m after step %d", step), m, mWant)
		near(t, fmt.Sprintf("v after step %d", step), v, vWant)
	}
	// GradScale 0 means 1.
	p = engine.AdamWParams{LR: 0.1, Beta1: 0.5, Beta2: 0.5, Eps: 0, Step: 1}
	param, m, v = []float64{0}, []float64{0}, []float64{0}
	refAdamW(param, []float64{-3}, m, v, p)
	near(t, "unscaled", param, []float64{float64(p.LR)}) // lr·g/|g| with g = -3
	// The same step with GradScale 1 explicitly.
	p.GradScale = 1
	scaled := []float64{0}
	refAdamW(scaled, []float64{-3}, []float64{0}, []float64{0}, p)
	near(t, "scale 1", scaled, param)
}
