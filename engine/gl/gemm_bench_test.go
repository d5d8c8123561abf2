package gl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
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
	return c
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
}

// TestGEMMPlans holds every tile and split-K variant of MatMul and Conv2D
// to a float64 reference on every element, at odd sizes that leave
// partial tiles, partial K slices and odd F16 word alignment.
func TestGEMMPlans(t *testing.T) {
	b := openGL(t)
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
	}
	names := []string{"linearF16", "linearF32", "batchedB", "transA", "transAB", "conv3x3", "conv3x3s2", "conv1x1", "conv1x1tiny"}
	for _, p := range testPlans {
		b.gemmForce = p
		for i, c := range cases {
			c.name = fmt.Sprintf("%s %+v", names[i], p)
			c.check(t, b, r, 0)
		}
	}
	b.gemmForce = nil
	for _, c := range cases {
		c.free()
	}
}
