package gl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"glimmer/engine"
)

// BenchmarkGEMM times fp32 C = A x B at size GLIMMER_GEMM_SIZE (default
// 512; the target is measured at 4096) and reports TFLOP/s. It
// first checks a sample of the result against a float64 dot product, so a
// fast wrong kernel cannot pass as a number.
func BenchmarkGEMM(bm *testing.B) {
	n := 512
	if s := os.Getenv("GLIMMER_GEMM_SIZE"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	b := openGL(bm)
	for _, tr := range []struct {
		name   string
		ta, tb bool
	}{{"NN", false, false}, {"NT", false, true}, {"TN", true, false}} {
		bm.Run(tr.name, func(bm *testing.B) { benchGEMM(bm, b, n, tr.ta, tr.tb) })
	}
}

// benchGEMM: with ta, A is stored [K, M]; with tb, B is stored [N, K].
func benchGEMM(bm *testing.B, b *Backend, n int, ta, tb bool) {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	av := make([]float32, n*n)
	bv := make([]float32, n*n)
	for i := range av {
		av[i] = float32(r.NormFloat64())
		bv[i] = float32(r.NormFloat64())
	}
	A := b.New(engine.F32, n, n) // [M, K]
	B := b.New(engine.F32, n, n) // [K, N]
	C := b.New(engine.F32, n, n) // [M, N]
	b.Write(A, av)
	b.Write(B, bv)
	p := engine.MatMulParams{TransA: ta, TransB: tb}
	b.MatMul(C, A, B, nil, p)
	out, err := b.Read(C)
	if err != nil {
		bm.Fatal(err)
	}
	// float32 sums of n products of N(0,1) values: error ~ sqrt(n)*eps*|terms|.
	tol := 1e-5 * math.Sqrt(float64(n)) * 10
	for s := 0; s < 64; s++ {
		i, j := r.IntN(n), r.IntN(n)
		var ref float64
		for k := 0; k < n; k++ {
			ai, bi := i*n+k, k*n+j
			if ta {
				ai = k*n + i
			}
			if tb {
				bi = j*n + k
			}
			ref += float64(av[ai]) * float64(bv[bi])
		}
		if d := math.Abs(ref - float64(out[i*n+j])); d > tol {
			bm.Fatalf("C[%d,%d] = %g, float64 reference %g (|diff| %g > %g)", i, j, out[i*n+j], ref, d, tol)
		}
	}
	bm.ResetTimer()
	start := time.Now()
	for range bm.N {
		b.MatMul(C, A, B, nil, p)
	}
	if err := b.Sync(); err != nil {
		bm.Fatal(err)
	}
	sec := time.Since(start).Seconds()
	bm.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(bm.N)/sec/1e12, "TFLOP/s")
	b.Free(A)
	b.Free(B)
	b.Free(C)
}

func openGL(tb testing.TB) *Backend {
	tb.Helper()
	b, err := New()
	if err != nil {
		tb.Fatalf("OpenGL backend: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// gemmCase is one GEMM-shaped op: a linear layer x·Wᵀ (+ bias) or a
// convolution (+ bias), with its operands on the backend and a float64
// reference for any output element.
type gemmCase struct {
	name   string
	flops  float64
	run    func()
	dst    *engine.Tensor
	ref    func(i int) (val, mag float64) // the exact value and Σ|terms|
	k      int                            // terms per output
	free   func()
	perRun int // calls per U-Net step (benchmark weighting)
	// addResidual uploads a residual of dst's shape and makes run pass
	// it (Conv2DParams.Residual, MatMulParams.Residual) and ref add it.
	addResidual func(tb testing.TB, r *rand.Rand)
	// addGEGLU (linear cases) makes run apply GEGLU to the product's
	// column pairs (MatMulParams.GEGLU) and ref follow: withGEGLU.
	addGEGLU func()
}

// uploaded writes N(0,1) values (rounded to dtype) and returns the values
// the backend holds, so references use exactly what the GPU multiplies.
func uploaded(tb testing.TB, b *Backend, r *rand.Rand, dtype engine.DType, shape ...int) (*engine.Tensor, []float32) {
	tb.Helper()
	t := b.New(dtype, shape...) // [shape...]
	v := make([]float32, t.Numel())
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	b.Write(t, v)
	got, err := b.Read(t)
	if err != nil {
		tb.Fatal(err)
	}
	return t, got
}

// linearCase: x [batch, m, k] · op(w) + bias; w is [n, k] (transB) or
// [k, n], or per batch entry [batch, k, n] when batched; transA stores x
// as [batch, k, m].
func linearCase(tb testing.TB, b *Backend, r *rand.Rand, batch, m, n, k int, transA, transB, batched bool, wt engine.DType, bias bool, alpha float32) *gemmCase {
	var x, w, bs *engine.Tensor
	var xv, wv, bv []float32
	if transA {
		x, xv = uploaded(tb, b, r, engine.F32, batch, k, m) // [batch, K, M]
	} else {
		x, xv = uploaded(tb, b, r, engine.F32, batch, m, k) // [batch, M, K]
	}
	wb := 1
	switch {
	case batched && transB:
		wb = batch
		w, wv = uploaded(tb, b, r, wt, batch, n, k) // [batch, N, K]
	case batched:
		wb = batch
		w, wv = uploaded(tb, b, r, wt, batch, k, n) // [batch, K, N]
	case transB:
		w, wv = uploaded(tb, b, r, wt, n, k) // [N, K]
	default:
		w, wv = uploaded(tb, b, r, wt, k, n) // [K, N]
	}
	if bias {
		bs, bv = uploaded(tb, b, r, wt, n) // [N]
	}
	dst := b.New(engine.F32, batch, m, n) // [batch, M, N]
	p := engine.MatMulParams{TransA: transA, TransB: transB, Alpha: alpha}
	al := float64(alpha)
	if alpha == 0 {
		al = 1
	}
	c := &gemmCase{flops: 2 * float64(batch*m*n*k), dst: dst, k: k,
		run: func() { b.MatMul(dst, x, w, bs, p) }}
	c.ref = func(i int) (float64, float64) {
		bi, mi, ni := i/(m*n), i/n%m, i%n
		var s, mag float64
		for kk := 0; kk < k; kk++ {
			xa := xv[(bi*m+mi)*k+kk]
			if transA {
				xa = xv[(bi*k+kk)*m+mi]
			}
			wo := 0
			if wb > 1 {
				wo = bi * k * n
			}
			wx := wv[wo+kk*n+ni]
			if transB {
				wx = wv[wo+ni*k+kk]
			}
			t := float64(xa) * float64(wx)
			s += t
			mag += math.Abs(t)
		}
		s, mag = al*s, math.Abs(al)*mag
		if bias {
			s += float64(bv[ni])
			mag += math.Abs(float64(bv[ni]))
		}
		return s, mag
	}
	c.free = func() {
		for _, t := range []*engine.Tensor{x, w, bs, dst} {
			if t != nil {
				b.Free(t)
			}
		}
	}
	c.addResidual = func(tb testing.TB, r *rand.Rand) {
		res, rv := uploaded(tb, b, r, engine.F32, batch, m, n) // [batch, M, N]
		q := p
		q.Residual = res
		c.run = func() { b.MatMul(dst, x, w, bs, q) }
		c.withResidual(b, res, rv)
	}
	c.addGEGLU = func() {
		q := p
		q.GEGLU = true
		c.withGEGLU(b, batch, m, n, func(out *engine.Tensor) { b.MatMul(out, x, w, bs, q) })
	}
	return c
}

// withGEGLU makes c, a linear case with an even number of columns n and
// no residual, apply GEGLU to its (value, gate) column pairs in the
// product (MatMulParams.GEGLU): its destination becomes [batch, m, n/2].
// The reference takes the pair's two float64 products. Tolerance: each
// product's bound (check's) carried through value·gelu(gate) by its
// partial derivatives, |gelu(g)| for the value and |v·gelu'(g)| for the
// gate, plus 1e-5 of the result for gelu itself (common.glsl's erfc
// polynomial errs by under 1.2e-7 relative, its exp by a few ulp of an
// argument up to ~50).
func (c *gemmCase) withGEGLU(b *Backend, batch, m, n int, run func(dst *engine.Tensor)) {
	ref, free := c.ref, c.free
	dst := b.New(engine.F32, batch, m, n/2) // [batch, M, N/2]
	c.dst = dst
	c.run = func() { run(dst) }
	c.ref = func(i int) (float64, float64) {
		row, j := i/(n/2), i%(n/2)
		v, mv := ref(row*n + 2*j)
		g, mg := ref(row*n + 2*j + 1)
		phi := 0.5 * math.Erfc(-g/math.Sqrt2)
		gelu, dgelu := g*phi, phi+g*math.Exp(-g*g/2)/math.Sqrt(2*math.Pi)
		out := v * gelu
		unit := 2 * float64(c.k+2) * math.Ldexp(1, -24) // check's tolerance per unit of magnitude
		return out, math.Abs(gelu)*mv + math.Abs(v*dgelu)*mg + 1e-5*math.Abs(out)/unit
	}
	c.free = func() { free(); b.Free(dst) }
}

// withResidual makes c's reference add rv (the values of res) and its
// free release res too.
func (c *gemmCase) withResidual(b *Backend, res *engine.Tensor, rv []float32) {
	ref, free := c.ref, c.free
	c.ref = func(i int) (float64, float64) {
		s, mag := ref(i)
		return s + float64(rv[i]), mag + math.Abs(float64(rv[i]))
	}
	c.free = func() { free(); b.Free(res) }
}

// convCase: x [n, c, h, w] convolved with w [oc, c, kh, kw] (+ bias [oc]).
func convCase(tb testing.TB, b *Backend, r *rand.Rand, nb, c, h, wd, oc, kh, kw, stride, pad int, wt engine.DType, bias bool) *gemmCase {
	x, xv := uploaded(tb, b, r, engine.F32, nb, c, h, wd) // [N, C, H, W]
	w, wv := uploaded(tb, b, r, wt, oc, c, kh, kw)        // [OC, C, KH, KW]
	var bs *engine.Tensor
	var bv []float32
	if bias {
		bs, bv = uploaded(tb, b, r, wt, oc) // [OC]
	}
	oh, ow := engine.ConvOut(h, kh, stride, pad), engine.ConvOut(wd, kw, stride, pad)
	dst := b.New(engine.F32, nb, oc, oh, ow) // [N, OC, OH, OW]
	p := engine.Conv2DParams{StrideH: stride, StrideW: stride, PadH: pad, PadW: pad}
	cs := &gemmCase{flops: 2 * float64(nb*oc*oh*ow*c*kh*kw), dst: dst, k: c * kh * kw,
		run: func() { b.Conv2D(dst, x, w, bs, p) }}
	cs.ref = func(i int) (float64, float64) {
		ni, o, oy, ox := i/(oc*oh*ow), i/(oh*ow)%oc, i/ow%oh, i%ow
		var s, mag float64
		for ci := 0; ci < c; ci++ {
			for ky := 0; ky < kh; ky++ {
				for kx := 0; kx < kw; kx++ {
					iy, ix := oy*stride-pad+ky, ox*stride-pad+kx
					if iy < 0 || iy >= h || ix < 0 || ix >= wd {
						continue
					}
					t := float64(xv[((ni*c+ci)*h+iy)*wd+ix]) * float64(wv[((o*c+ci)*kh+ky)*kw+kx])
					s += t
					mag += math.Abs(t)
				}
			}
		}
		if bias {
			s += float64(bv[o])
			mag += math.Abs(float64(bv[o]))
		}
		return s, mag
	}
	cs.free = func() {
		for _, t := range []*engine.Tensor{x, w, bs, dst} {
			if t != nil {
				b.Free(t)
			}
		}
	}
	cs.addResidual = func(tb testing.TB, r *rand.Rand) {
		res, rv := uploaded(tb, b, r, engine.F32, nb, oc, oh, ow) // [N, OC, OH, OW]
		q := p
		q.Residual = res
		cs.run = func() { b.Conv2D(dst, x, w, bs, q) }
		cs.withResidual(b, res, rv)
	}
	return cs
}

// check runs c once into a NaN-poisoned destination and compares `samples`
// outputs (all when <= 0) with the float64 reference. Tolerance: float32
// accumulation of K terms in any order (tiles, split-K partials) errs by at
// most about (K+2)·2⁻²⁴·Σ|terms| (recursive summation bound), doubled for
// the alpha scaling and bias add.
func (c *gemmCase) check(tb testing.TB, b *Backend, r *rand.Rand, samples int) {
	tb.Helper()
	nan := make([]float32, c.dst.Numel())
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	b.Write(c.dst, nan)
	c.run()
	out, err := b.Read(c.dst)
	if err != nil {
		tb.Fatal(err)
	}
	n := len(out)
	if samples <= 0 || samples > n {
		samples = n
	}
	for s := 0; s < samples; s++ {
		i := s
		if samples < n {
			i = r.IntN(n)
		}
		want, mag := c.ref(i)
		tol := 2*float64(c.k+2)*math.Ldexp(1, -24)*mag + 1e-30
		if d := math.Abs(float64(out[i]) - want); !(d <= tol) {
			tb.Fatalf("%s: out[%d] = %g, float64 reference %g (|diff| %g > %g)", c.name, i, out[i], want, d, tol)
		}
	}
}

// testPlans are the GEMM variants every shape is checked on: each tile,
// both slice depths (128x128 with BK 16 needs 33 KiB of shared memory,
// over llvmpipe's 32), K split in 2 and 3 (uneven chunks), and the
// backend's own choice (nil).
var testPlans = []*gemmPlan{nil,
	{BM: 64, BN: 64, BK: 16, Split: 1}, {BM: 128, BN: 128, BK: 8, Split: 1},
	{BM: 128, BN: 64, BK: 16, Split: 1}, {BM: 64, BN: 128, BK: 8, Split: 1}, {BM: 128, BN: 64, BK: 8, Split: 3},
	{BM: 64, BN: 64, BK: 16, Split: 2}, {BM: 64, BN: 64, BK: 16, Split: 3}, {BM: 128, BN: 128, BK: 8, Split: 2},
	// 8x8 results a thread in smaller work groups (the planner's 128x64
	// of 128 threads among them; Winograd's test covers 128x32 of 64).
	{BM: 64, BN: 64, BK: 8, Split: 1, Threads: 64}, {BM: 128, BN: 64, BK: 8, Split: 2, Threads: 128},
	{BM: 64, BN: 128, BK: 8, Split: 3, Threads: 128}, {BM: 32, BN: 64, BK: 8, Split: 2, Threads: 32},
}

// TestGEMMPlans holds every tile and split-K variant of MatMul and Conv2D
// to a float64 reference on every element, at odd sizes that leave
// partial tiles, partial K slices and odd F16 word alignment.
func TestGEMMPlans(t *testing.T) {
	b := openGL(t)
	b.winograd = false // the 3x3 cases test the implicit GEMM (winograd_test.go the other path)
	r := rand.New(rand.NewPCG(3, 4))
	cases := []*gemmCase{
		linearCase(t, b, r, 2, 37, 70, 101, false, true, false, engine.F16, true, 0),   // linear, F16, odd K
		linearCase(t, b, r, 2, 66, 131, 96, false, true, false, engine.F32, true, 0),   // linear, F32
		linearCase(t, b, r, 3, 45, 67, 50, false, false, true, engine.F32, false, 0.5), // batched B, alpha
		linearCase(t, b, r, 2, 70, 36, 83, true, false, false, engine.F16, true, 0),    // Aᵀ·B
		linearCase(t, b, r, 2, 20, 33, 64, true, true, true, engine.F32, false, 0.25),  // Aᵀ·Bᵀ batched
		convCase(t, b, r, 2, 5, 9, 11, 70, 3, 3, 1, 1, engine.F16, true),               // 3x3, F16
		convCase(t, b, r, 1, 7, 10, 9, 33, 3, 3, 2, 1, engine.F32, true),               // stride 2
		convCase(t, b, r, 2, 66, 5, 7, 130, 1, 1, 1, 0, engine.F16, true),              // 1x1
		convCase(t, b, r, 2, 3, 6, 6, 9, 1, 1, 1, 0, engine.F32, false),                // 1x1, tiny
		// K and N multiples of 4: the vec4 loaders (K4, N4), partial tiles.
		linearCase(t, b, r, 2, 45, 68, 52, false, false, false, engine.F16, true, 0), // A·B, F16
		linearCase(t, b, r, 3, 30, 36, 44, false, false, true, engine.F32, false, 0), // batched A·B, F32
		convCase(t, b, r, 2, 68, 6, 10, 36, 1, 1, 1, 0, engine.F16, true),            // 1x1, 60 pixels
		convCase(t, b, r, 1, 12, 7, 5, 20, 1, 1, 1, 0, engine.F32, false),            // 1x1, F32 weights
		// Images folded into one GEMM (FOLDN: maps under 128 pixels).
		convCase(t, b, r, 3, 6, 8, 8, 20, 3, 3, 1, 1, engine.F16, true), // 3x3, 64 pixels
		convCase(t, b, r, 2, 5, 9, 8, 12, 3, 3, 2, 1, engine.F32, true), // stride 2, 5x4 out
		// Residuals added in the epilogue.
		linearCase(t, b, r, 2, 21, 44, 36, false, false, false, engine.F16, true, 0.5), // A·B + res
		convCase(t, b, r, 2, 20, 4, 6, 12, 1, 1, 1, 0, engine.F16, true),               // 1x1 + res
		// GEGLU in the epilogue (the feed-forward's first product).
		linearCase(t, b, r, 2, 37, 70, 52, false, false, false, engine.F16, true, 0), // A·B, F16, N = 2 mod 4
		linearCase(t, b, r, 2, 29, 136, 44, true, false, false, engine.F32, true, 0), // Aᵀ·B, F32
	}
	names := []string{"linearF16", "linearF32", "batchedB", "transA", "transAB", "conv3x3", "conv3x3s2", "conv1x1", "conv1x1tiny",
		"linearNN4", "batchedNN4", "conv1x1N4", "conv1x1K4", "conv3x3fold", "conv3x3s2fold", "linearRes", "conv1x1Res",
		"linearGEGLU", "transAGEGLU"}
	cases[len(cases)-4].addResidual(t, r)
	cases[len(cases)-3].addResidual(t, r)
	cases[len(cases)-2].addGEGLU()
	cases[len(cases)-1].addGEGLU()
	for _, p := range testPlans {
		b.gemmForce = p
		for i, c := range cases {
			c.name = fmt.Sprintf("%s %+v", names[i], p)
			c.check(t, b, r, 0)
		}
	}
	b.gemmForce = nil
	// MatMul's 128x128 tiles loading two K slices ahead (PF2), which the
	// backend keeps for products of 2048 rows and more: K in 1 to 13
	// slices a chunk, even and odd counts.
	rows := b.pf2Rows
	b.pf2Rows = 1
	for _, p := range []*gemmPlan{{BM: 128, BN: 128, BK: 8, Split: 1}, {BM: 128, BN: 128, BK: 8, Split: 2}, {BM: 128, BN: 128, BK: 8, Split: 7}} {
		b.gemmForce = p
		for i, c := range cases {
			if strings.HasPrefix(names[i], "conv") {
				continue
			}
			c.name = fmt.Sprintf("%s PF2 %+v", names[i], p)
			c.check(t, b, r, 0)
		}
	}
	b.gemmForce, b.pf2Rows = nil, rows
	// The convolution's gather with its kernel size and output width as
	// uniforms, as constants, and the kernel size alone a constant.
	for _, cc := range []int{0, 2, 1} {
		b.convConst = cc
		for i, c := range cases {
			if strings.HasPrefix(names[i], "conv") {
				c.name = fmt.Sprintf("%s convConst %d", names[i], cc)
				c.check(t, b, r, 0)
			}
		}
	}
	// Images never folded, and folded wherever the map is whole vec4s.
	for _, fm := range []int{0, 2} {
		b.convFoldMode = fm
		for i, c := range cases {
			if strings.HasPrefix(names[i], "conv") {
				c.name = fmt.Sprintf("%s convFold %d", names[i], fm)
				c.check(t, b, r, 0)
			}
		}
	}
	b.convFoldMode = 1
	for _, c := range cases {
		c.free()
	}
}

// TestGEMMPlanChoice: the plans gemmPlan's doc promises for SD 1.5's
// shapes, with New's defaults.
func TestGEMMPlanChoice(t *testing.T) {
	b := &Backend{}
	b.planDefaults()
	for _, c := range []struct {
		name           string
		m, n, k, batch int
		want           gemmPlan
	}{
		{"3x3 conv, 320 channels at 64x64", 320, 4096, 2880, 2, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 4, KChunk: 720}},
		{"3x3 conv, 1280 channels at 8x8", 1280, 64, 11520, 2, gemmPlan{BM: 64, BN: 64, BK: 16, Split: 8, KChunk: 1440}},
		{"77-token projection", 154, 640, 768, 1, gemmPlan{BM: 64, BN: 64, BK: 16, Split: 8, KChunk: 96}},
		{"linear 4096x320x320", 8192, 320, 320, 1, gemmPlan{BM: 128, BN: 64, BK: 8, Split: 1, KChunk: 320, Threads: 128}},
		{"linear 4096x320x1280", 8192, 320, 1280, 1, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 4, KChunk: 320}},
		{"1x1 conv, 640 channels at 32x32", 640, 1024, 640, 2, gemmPlan{BM: 128, BN: 64, BK: 8, Split: 2, KChunk: 320, Threads: 128}},
		// 180 groups: one wave unsplit (704 by waveSplit's model) beats
		// two of half the K (832).
		{"Winograd's product, 640 channels at 32x32", 640, 128, 640, 36, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 1, KChunk: 640}},
		// 160 groups: 3 chunks make 480, two waves of 432 (1056); 4 made
		// 640, three waves of 320 (1216). Measured 0.3113 against 0.3434 ms.
		{"Winograd's product, 1280 channels at 16x16", 1280, 128, 1280, 16, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 3, KChunk: 432}},
		// 40 tiles: 6 chunks fill one wave (240 groups). 0.0783 against
		// 0.0945 ms in 4.
		{"linear 256x1280x1280", 512, 1280, 1280, 1, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 6, KChunk: 216}},
		{"3x3 conv, 1280 channels at 8x8, two images folded", 1280, 128, 11520, 1, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 24, KChunk: 480}},
		{"1x1 conv, 1280 channels at 8x8, two images folded", 1280, 128, 1280, 1, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 20, KChunk: 64}},
		// 240 tiles: over halfMax, and 91% of a wave, so unsplit.
		{"q, k and v at 32x32", 2048, 1920, 640, 1, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 1, KChunk: 640}},
		// 120 tiles split in 2 make 240 groups, 91% of a wave: no further.
		{"q, k and v at 16x16", 512, 3840, 1280, 1, gemmPlan{BM: 128, BN: 128, BK: 8, Split: 2, KChunk: 640}},
	} {
		if got := b.gemmPlan(c.m, c.n, c.k, c.batch); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	b.splitFew = 0 // chunks of at least splitMinK: the 77-token projection splits in 2
	if got := b.gemmPlan(154, 640, 768, 1); got.Split != 2 {
		t.Errorf("77-token projection without splitFew: %+v, want K split in 2", got)
	}
	b.planDefaults()
	b.splitWave = 0 // the doubling rule: 4 chunks for 40 and 160 tiles
	for _, c := range [][4]int{{1280, 128, 1280, 16}, {512, 1280, 1280, 1}} {
		if got := b.gemmPlan(c[0], c[1], c[2], c[3]); got.Split != 4 {
			t.Errorf("%v without the wave model: %+v, want K split in 4", c, got)
		}
	}
}

// sdPlans are the variants BenchmarkSDGEMM times on each SD 1.5 shape,
// after the backend's own choice (nil, "auto").
var sdPlans = []*gemmPlan{nil,
	{BM: 128, BN: 128, BK: 8, Split: 1}, {BM: 64, BN: 64, BK: 16, Split: 1},
	{BM: 128, BN: 64, BK: 16, Split: 1}, {BM: 64, BN: 128, BK: 16, Split: 1}, {BM: 128, BN: 64, BK: 8, Split: 1},
	{BM: 64, BN: 64, BK: 16, Split: 2}, {BM: 64, BN: 64, BK: 16, Split: 4}, {BM: 64, BN: 64, BK: 16, Split: 8},
	{BM: 128, BN: 64, BK: 16, Split: 2}, {BM: 128, BN: 64, BK: 16, Split: 4},
	{BM: 128, BN: 128, BK: 8, Split: 2}, {BM: 128, BN: 128, BK: 8, Split: 4},
}

func (p *gemmPlan) label() string {
	if p == nil {
		return "auto"
	}
	if p.Threads != 0 {
		return fmt.Sprintf("%dx%d/%d/s%d/t%d", p.BM, p.BN, p.BK, p.Split, p.Threads)
	}
	return fmt.Sprintf("%dx%d/%d/s%d", p.BM, p.BN, p.BK, p.Split)
}

// BenchmarkSDGEMM times SD 1.5's convolutions and linear layers (512x512,
// batch 2 for CFG, F16 weights, the linear layers' [In, Out] as generation
// holds them) under every plan in sdPlans, and prints per shape the
// milliseconds per call, and per plan the milliseconds per U-Net step
// that the shapes' calls add up to (calls per step counted from the
// architecture; similar shapes folded together). Each variant is first
// checked on 24 sampled outputs against float64, then warmed up and timed
// over >= 60 ms of back-to-back calls. GLIMMER_SDGEMM=name,name narrows
// the shapes; GLIMMER_SDGEMM_PLANS=auto,128x128/8/s8,128x64/8/s2/t128,...
// replaces the plans (tTHREADS: work groups of 8x8 results a thread).
func BenchmarkSDGEMM(bm *testing.B) {
	b := openGL(bm)
	plans := sdPlans
	if f := os.Getenv("GLIMMER_SDGEMM_PLANS"); f != "" {
		plans = nil
		for _, l := range strings.Split(f, ",") {
			if l == "auto" {
				plans = append(plans, nil)
				continue
			}
			p := &gemmPlan{}
			if _, err := fmt.Sscanf(l, "%dx%d/%d/s%d/t%d", &p.BM, &p.BN, &p.BK, &p.Split, &p.Threads); err != nil && p.Split == 0 {
				bm.Fatalf("GLIMMER_SDGEMM_PLANS: %q is not BMxBN/BK/sSPLIT[/tTHREADS]: %v", l, err)
			}
			if p.Threads != 0 && p.Threads != p.BM*p.BN/64 {
				bm.Fatalf("GLIMMER_SDGEMM_PLANS: %q: a %dx%d tile of 8x8 results a thread takes %d threads", l, p.BM, p.BN, p.BM*p.BN/64)
			}
			plans = append(plans, p)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	type shape struct {
		name  string
		calls int
		mk    func() *gemmCase
	}
	conv := func(c, hw, oc, k, stride int) func() *gemmCase {
		return func() *gemmCase {
			return convCase(bm, b, r, 2, c, hw, hw, oc, k, k, stride, k/2, engine.F16, true)
		}
	}
	// Linear layers with their weights [In, Out], as generation holds
	// them (nn.Loader.TransposeLinears); linC as checkpoints and training
	// hold them, [Out, In], timed for comparison (0 calls a step).
	lin := func(m, n, k int) func() *gemmCase {
		return func() *gemmCase {
			return linearCase(bm, b, r, 2, m, n, k, false, false, false, engine.F16, true, 0)
		}
	}
	linC := func(m, n, k int) func() *gemmCase {
		return func() *gemmCase {
			return linearCase(bm, b, r, 2, m, n, k, false, true, false, engine.F16, true, 0)
		}
	}
	shapes := []shape{
		{"c3 320>320 @64", 7, conv(320, 64, 320, 3, 1)},
		{"c3 640>320 @64", 3, conv(640, 64, 320, 3, 1)},
		{"c3 640>640 @64", 1, conv(640, 64, 640, 3, 1)},
		{"c3 320>320 @64/2", 1, conv(320, 64, 320, 3, 2)},
		{"c3 320>4 @64", 1, conv(320, 64, 4, 3, 1)},
		{"c3 640>640 @32", 7, conv(640, 32, 640, 3, 1)},
		{"c3 1280>640 @32", 3, conv(1280, 32, 640, 3, 1)},
		{"c3 1280>1280 @32", 1, conv(1280, 32, 1280, 3, 1)},
		{"c3 1280>1280 @16", 8, conv(1280, 16, 1280, 3, 1)},
		{"c3 2560>1280 @16", 3, conv(2560, 16, 1280, 3, 1)},
		{"c3 1280>1280 @8", 12, conv(1280, 8, 1280, 3, 1)},
		{"c3 2560>1280 @8", 3, conv(2560, 8, 1280, 3, 1)},
		{"c1 320>320 @64", 13, conv(320, 64, 320, 1, 1)},
		{"c1 640>640 @32", 13, conv(640, 32, 640, 1, 1)},
		{"c1 1280>1280 @16", 14, conv(1280, 16, 1280, 1, 1)},
		{"c1 1280>1280 @8", 5, conv(1280, 8, 1280, 1, 1)},
		// Per transformer: q, k and v as one product (3C), three C x C
		// products (self-attention's output, cross-attention's query and
		// output), the feed-forward's GEGLU product (8C) and its second
		// (4C -> C); five transformers at 64x64, 32x32 and 16x16, one at
		// 8x8. The cross-attention's keys and values of the 77 text
		// tokens are projected once an image (0 calls a step).
		{"L 4096x960x320", 5, lin(4096, 960, 320)},
		{"L 4096x320x320", 15, lin(4096, 320, 320)},
		{"L 4096x2560x320", 5, lin(4096, 2560, 320)},
		{"L 4096x320x1280", 5, lin(4096, 320, 1280)},
		{"L 1024x1920x640", 5, lin(1024, 1920, 640)},
		{"L 1024x640x640", 15, lin(1024, 640, 640)},
		{"L 1024x5120x640", 5, lin(1024, 5120, 640)},
		{"L 1024x640x2560", 5, lin(1024, 640, 2560)},
		{"L 256x3840x1280", 5, lin(256, 3840, 1280)},
		{"L 256x1280x1280", 15, lin(256, 1280, 1280)},
		{"L 256x10240x1280", 5, lin(256, 10240, 1280)},
		{"L 256x1280x5120", 5, lin(256, 1280, 5120)},
		{"L 64x3840x1280", 1, lin(64, 3840, 1280)},
		{"L 64x1280x1280", 3, lin(64, 1280, 1280)},
		{"L 64x10240x1280", 1, lin(64, 10240, 1280)},
		{"L 64x1280x5120", 1, lin(64, 1280, 5120)},
		{"L 77x640x768", 0, lin(77, 640, 768)},
		{"Lc 4096x320x320", 0, linC(4096, 320, 320)},
		{"Lc 1024x640x640", 0, linC(1024, 640, 640)},
		{"Lc 256x1280x1280", 0, linC(256, 1280, 1280)},
		{"Lc 4096x2560x320", 0, linC(4096, 2560, 320)},
	}
	if f := os.Getenv("GLIMMER_SDGEMM"); f != "" {
		keep := shapes[:0]
		for _, s := range shapes {
			for _, n := range strings.Split(f, ",") {
				if strings.Contains(s.name, n) {
					keep = append(keep, s)
					break
				}
			}
		}
		shapes = keep
	}
	total := make([]float64, len(plans))
	var best float64
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-18s %5s", "shape", "calls")
	for _, p := range plans {
		fmt.Fprintf(&sb, " %12s", p.label())
	}
	sb.WriteString("\n")
	for _, s := range shapes {
		c := s.mk()
		c.name = s.name
		fmt.Fprintf(&sb, "%-18s %5d", s.name, s.calls)
		min := math.Inf(1)
		var gf float64
		for i, p := range plans {
			b.gemmForce = p
			c.check(bm, b, r, 24)
			ms := timeOp(bm, b, c.run)
			total[i] += ms * float64(s.calls)
			if ms < min {
				min, gf = ms, c.flops/ms/1e9
			}
			fmt.Fprintf(&sb, " %12.4f", ms)
		}
		best += min * float64(s.calls)
		fmt.Fprintf(&sb, "  best %.1f TFLOP/s\n", gf)
		b.gemmForce = nil
		c.free()
	}
	fmt.Fprintf(&sb, "%-24s", "ms/step")
	for _, t := range total {
		fmt.Fprintf(&sb, " %12.2f", t)
	}
	fmt.Fprintf(&sb, "\nms/step, the best plan per shape: %.2f\n", best)
	fmt.Print(sb.String())
}

// timeOp warms op up for 20 ms, then returns its mean milliseconds over
// at least 60 ms (and 3 calls) of back-to-back calls.
func timeOp(tb testing.TB, b *Backend, op func()) float64 {
	run := func(n int) float64 {
		start := time.Now()
		for range n {
			op()
		}
		if err := b.Sync(); err != nil {
			tb.Fatal(err)
		}
		return time.Since(start).Seconds() * 1000
	}
	n := 1
	for t := run(n); t < 20; t = run(n) {
		n *= 2
	}
	n = max(3, int(60/(run(n)/float64(n))))
	return run(n) / float64(n)
}

// BenchmarkQKV asks whether the self-attention's q, k and v projections
// would gain from running as one product of three times the width, at
// each of SD 1.5's three transformer widths (batch 2 for CFG, F16 weights
// [In, Out], no bias): the three products queued back to back as the
// U-Net queues them (no barrier between them, so the driver may overlap
// them), the same three with a barrier after each (what a serial profile
// sees), and one product of width 3C. Each is checked on sampled outputs
// against float64 first; times are milliseconds for the three.
func BenchmarkQKV(bm *testing.B) {
	b := openGL(bm)
	r := rand.New(rand.NewPCG(11, 12))
	fmt.Printf("%-14s %12s %12s %12s\n", "tokens x C", "3, overlap", "3, barriers", "one, 3C")
	for _, s := range []struct{ tokens, c int }{{4096, 320}, {1024, 640}, {256, 1280}} {
		var three [3]*gemmCase
		for i := range three {
			three[i] = linearCase(bm, b, r, 2, s.tokens, s.c, s.c, false, false, false, engine.F16, false, 0)
			three[i].check(bm, b, r, 24)
		}
		fused := linearCase(bm, b, r, 2, s.tokens, 3*s.c, s.c, false, false, false, engine.F16, false, 0)
		fused.check(bm, b, r, 24)
		runThree := func() {
			for _, c := range three {
				c.run()
			}
		}
		overlap := timeOp(bm, b, runThree)
		b.call(func() { b.barrierAll = true })
		serial := timeOp(bm, b, runThree)
		b.call(func() { b.barrierAll = false })
		one := timeOp(bm, b, fused.run)
		fmt.Printf("%-14s %12.4f %12.4f %12.4f\n", fmt.Sprintf("%dx%d", s.tokens, s.c), overlap, serial, one)
		for _, c := range three {
			c.free()
		}
		fused.free()
	}
}
