package gl_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
	"glimmer/engine/conformance"
	"glimmer/engine/gl"
)

// TestGradConformance holds every backward shader to the float64
// reference. Like TestConformance, a machine without OpenGL 4.3 fails
// here rather than skipping.
func TestGradConformance(t *testing.T) {
	conformance.RunGrad(t, func() engine.TrainBackend {
		b, err := gl.New()
		if err != nil {
			t.Fatalf("OpenGL backend: %v", err)
		}
		return b
	})
}

// TestGradLargeReductions covers what the conformance suite's small sizes
// never reach on this backend: SumTo and GroupNormBackward split long
// sums into slices (more than 4096 contiguous terms, or 4096 spatial
// values per channel) and add the slices' partial sums in a second pass.
// References are float64; outputs start as NaN so unwritten elements fail.
func TestGradLargeReductions(t *testing.T) {
	b, err := gl.New()
	if err != nil {
		t.Fatalf("OpenGL backend: %v", err)
	}
	defer b.Close()
	r := rand.New(rand.NewPCG(1, 2))
	randn := func(n int, sd, mean float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64()*sd + mean)
		}
		return v
	}
	upload := func(v []float32, shape ...int) *engine.Tensor {
		x := b.New(engine.F32, shape...)
		b.Write(x, v)
		return x
	}
	poisoned := func(shape ...int) *engine.Tensor {
		v := make([]float32, engine.Shape(shape).Numel())
		for i := range v {
			v[i] = float32(math.NaN())
		}
		return upload(v, shape...)
	}
	// expect compares by NMSE = Σ(got-want)²/Σwant².
	expect := func(t *testing.T, what string, got *engine.Tensor, want []float64, bound float64) {
		t.Helper()
		g, err := b.Read(got)
		if err != nil {
			t.Fatal(err)
		}
		var num, den float64
		for i, w := range want {
			v := float64(g[i])
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s[%d] = %v", what, i, v)
			}
			num += (v - w) * (v - w)
			den += w * w
		}
		if nmse := num / den; nmse > bound {
			t.Errorf("%s: NMSE %.3g > %.3g", what, nmse, bound)
		}
	}

	// SumTo: float32 sums of up to 10^5 unit terms collect ~10^5 roundings
	// in the worst (sequential) order, NMSE ≲ 1e5·u²/3 ≈ 1e-10 on a
	// sum whose size is ~√n; partial sums keep it far lower. 1e-9 still
	// rejects a lost or doubled slice (NMSE ≥ 1/S²).
	for _, tc := range []struct{ x, dst []int }{
		{[]int{100003}, []int{1}},           // one output, sliced contiguous terms
		{[]int{3, 70001}, []int{3, 1}},      // a few outputs, sliced rows
		{[]int{2, 3, 9000}, []int{1, 3, 1}}, // sliced rows, batch summed too
		{[]int{5000, 17}, []int{17}},        // columns: thread per output, sliced rows
	} {
		t.Run(fmt.Sprint("SumTo", engine.Shape(tc.x), "_to_", engine.Shape(tc.dst)), func(t *testing.T) {
			xs, ds := engine.Shape(tc.x), engine.Shape(tc.dst)
			xv := randn(xs.Numel(), 1, 0.5)
			x, dst := upload(xv, tc.x...), poisoned(tc.dst...)
			b.SumTo(dst, x)
			want := make([]float64, ds.Numel())
			pad := len(xs) - len(ds)
			for i, v := range xv {
				rest, o, stride := i, 0, 1
				for a := len(xs) - 1; a >= pad; a-- {
					c := rest % xs[a]
					rest /= xs[a]
					if ds[a-pad] != 1 {
						o += c * stride
					}
					stride *= ds[a-pad]
				}
				want[o] += float64(v)
			}
			expect(t, "dst", dst, want, 1e-9)
			b.Free(x)
			b.Free(dst)
		})
	}

	// GroupNormBackward with 9000 spatial values per channel (3 pieces a
	// channel) and SiLU: statistics over 36,000-value groups and sums of
	// as many terms; 1e-9 as for SumTo.
	t.Run("GroupNormBackward_pieces", func(t *testing.T) {
		n, c, g, sp := 2, 8, 2, 9000
		const eps = 1e-5
		xv, dyv := randn(n*c*sp, 2, 1), randn(n*c*sp, 1, 0)
		gv, bv := randn(c, 1, 0), randn(c, 1, 0)
		x, dy := upload(xv, n, c, sp), upload(dyv, n, c, sp)
		gamma, beta := upload(gv, c), upload(bv, c)
		dx, dgamma, dbeta := poisoned(n, c, sp), poisoned(c), poisoned(c)
		b.GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta, engine.GroupNormParams{Groups: g, Eps: eps, SiLU: true})
		rdx, rdg, rdb := make([]float64, len(xv)), make([]float64, c), make([]float64, c)
		cpg, l := c/g, c/g*sp
		for ng := range n * g {
			base := ng * l
			var mean, v, sb, sa float64
			for i := range l {
				mean += float64(xv[base+i])
			}
			mean /= float64(l)
			for i := range l {
				d := float64(xv[base+i]) - mean
				v += d * d
			}
			rstd := 1 / math.Sqrt(v/float64(l)+eps)
			ga, xh := make([]float64, l), make([]float64, l)
			for i := range l {
				ch := ng%g*cpg + i/sp
				xh[i] = (float64(xv[base+i]) - mean) * rstd
				a := float64(gv[ch])*xh[i] + float64(bv[ch])
				s := 1 / (1 + math.Exp(-a))
				ga[i] = float64(dyv[base+i]) * s * (1 + a*(1-s))
				rdg[ch] += ga[i] * xh[i]
				rdb[ch] += ga[i]
				sb += float64(gv[ch]) * ga[i]
				sa += float64(gv[ch]) * ga[i] * xh[i]
			}
			for i := range l {
				ch := ng%g*cpg + i/sp
				rdx[base+i] = rstd * (float64(gv[ch])*ga[i] - sb/float64(l) - xh[i]*sa/float64(l))
			}
		}
		expect(t, "dx", dx, rdx, 1e-9)
		expect(t, "dgamma", dgamma, rdg, 1e-9)
		expect(t, "dbeta", dbeta, rdb, 1e-9)
	})
}

// BenchmarkGradOps times the backward ops and AdamW at Stable Diffusion
// 1.5 sizes for 512x512 images at batch 2 (the 64x64 latent level) and
// reports GB/s of F32 tensor traffic (inputs read once, outputs written
// once), the bound for these memory-bound ops. ns/op is for 10 ops.
func BenchmarkGradOps(bm *testing.B) {
	b, err := gl.New()
	if err != nil {
		bm.Fatalf("OpenGL backend: %v", err)
	}
	defer b.Close()
	bm.Logf("backend: %s", b.Name())
	r := rand.New(rand.NewPCG(1, 2))
	tensor := func(shape ...int) *engine.Tensor {
		x := b.New(engine.F32, shape...)
		v := make([]float32, x.Numel())
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		b.Write(x, v)
		return x
	}
	// Each iteration queues the op 10 times before one Sync, so the time
	// per op leaves out most of a Sync's round trip.
	const reps = 10
	bench := func(name string, op func(), ts ...*engine.Tensor) {
		var bytes int64
		for _, t := range ts {
			bytes += int64(t.Numel() * 4 * reps)
		}
		bm.Run(name, func(bm *testing.B) {
			op() // compile the shaders
			if err := b.Sync(); err != nil {
				bm.Fatal(err)
			}
			bm.SetBytes(bytes)
			for bm.Loop() {
				for range reps {
					op()
				}
				if err := b.Sync(); err != nil {
					bm.Fatal(err)
				}
			}
		})
	}
	act := tensor(2, 320, 64, 64)  // [N, C, H, W]
	dact := tensor(2, 320, 64, 64) // [N, C, H, W]
	out := tensor(2, 320, 64, 64)  // [N, C, H, W]
	vec := tensor(320)             // [C]
	vec2 := tensor(320)            // [C]
	tok := tensor(2, 4096, 320)    // [N, L, C]
	dtok := tensor(2, 4096, 320)   // [N, L, C]
	otok := tensor(2, 4096, 320)   // [N, L, C]
	big := tensor(10_000_000)      // [10M]
	one := tensor(1)               // [1]
	bench("SumTo_bias_NLC", func() { b.SumTo(vec, tok) }, tok, vec)
	bench("SumTo_bias_NCHW", func() { b.SumTo(vec.Reshape(1, 320, 1, 1), act) }, act, vec)
	bench("SumTo_scalar_10M", func() { b.SumTo(one, big) }, big, one)
	gamma, beta := tensor(320), tensor(320) // [C]
	gn := engine.GroupNormParams{Groups: 32, Eps: 1e-5, SiLU: true}
	bench("GroupNormBackward_silu", func() { b.GroupNormBackward(out, vec, vec2, dact, act, gamma, beta, gn) },
		dact, act, out, vec, vec2)
	bench("LayerNormBackward", func() { b.LayerNormBackward(otok, vec, vec2, dtok, tok, gamma, 1e-5) },
		dtok, tok, otok, vec, vec2)
	probs := tensor(16, 1024, 1024)  // [B*H, Nq, Nk]
	dprobs := tensor(16, 1024, 1024) // [B*H, Nq, Nk]
	oprobs := tensor(16, 1024, 1024) // [B*H, Nq, Nk]
	bench("SoftmaxBackward", func() { b.SoftmaxBackward(oprobs, dprobs, probs) }, dprobs, probs, oprobs)
	bench("UnaryBackward_silu", func() { b.UnaryBackward(out, dact, act, engine.SiLU) }, dact, act, out)
	gx := tensor(2, 4096, 2560)  // [N, L, 2F]
	gdx := tensor(2, 4096, 2560) // [N, L, 2F]
	gdy := tensor(2, 4096, 1280) // [N, L, F]
	bench("GEGLUBackward", func() { b.GEGLUBackward(gdx, gdy, gx) }, gx, gdy, gdx)
	up := tensor(2, 320, 128, 128) // [N, C, 2H, 2W]
	bench("Upsample2xBackward", func() { b.Upsample2xBackward(out, up) }, up, out)
	cat := tensor(2, 640, 64, 64) // [N, Ca+Cb, H, W]
	bench("Split", func() { b.Split(out, act, cat) }, cat, out, act)
	pp, pg, pm, pv := tensor(16_000_000), tensor(16_000_000), tensor(16_000_000), tensor(16_000_000) // [P]
	b.Write(pv, make([]float32, pv.Numel()))
	adam := engine.AdamWParams{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: 3}
	bench("AdamW_16M", func() { b.AdamW(pp, pg, pm, pv, adam) }, pp, pg, pm, pv, pp, pm, pv)
	if prof := b.Profile(); prof != "" { // GLIMMER_GL_PROFILE=1
		bm.Logf("per shader variant:\n%s", prof)
	}
}

// BenchmarkGrad times every backward op at the sizes the CPU backend's
// BenchmarkGrad uses, for the two to be compared.
func BenchmarkGrad(bm *testing.B) {
	conformance.BenchGrad(bm, func() engine.TrainBackend {
		b, err := gl.New()
		if err != nil {
			bm.Fatalf("OpenGL backend: %v", err)
		}
		return b
	})
}
