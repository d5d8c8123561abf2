package gl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"glimmer/engine"
)

// attnBenchShape is one attention call of SD 1.5 at 512x512 (batch 2 for
// classifier-free guidance, 8 heads in the U-Net) and how many times a
// 20-step image makes it.
type attnBenchShape struct {
	name          string
	b, h, nq, nk  int
	dim           int
	causal        bool
	callsPerImage int
}

var sd15Attention = []attnBenchShape{
	{"self_4096_8x40", 2, 8, 4096, 4096, 40, false, 80},        // 64x64 latents: 5 blocks a step, 4 on CFG's two rows
	{"self_4096_8x40_shared", 1, 8, 4096, 4096, 40, false, 20}, // and the first on the shared input's one (unet.Forward)
	{"cross_4096x77_8x40", 2, 8, 4096, 77, 40, false, 100},
	{"self_1024_8x80", 2, 8, 1024, 1024, 80, false, 100},
	{"cross_1024x77_8x80", 2, 8, 1024, 77, 80, false, 100},
	{"self_256_8x160", 2, 8, 256, 256, 160, false, 100},
	{"cross_256x77_8x160", 2, 8, 256, 77, 160, false, 100},
	{"self_64_8x160", 2, 8, 64, 64, 160, false, 20}, // the mid block, once a step
	{"cross_64x77_8x160", 2, 8, 64, 77, 160, false, 20},
	{"clip_77_12x64_causal", 2, 12, 77, 77, 64, true, 12}, // 12 layers, once per image
	{"vae_4096_1x512", 1, 1, 4096, 4096, 512, false, 1},   // the VAE decoder's mid block
}

// flops counts 2 multiply-adds per (query, key, dim) for QKᵀ and PV,
// only over the keys a causal query sees.
func (s attnBenchShape) flops() float64 {
	pairs := float64(s.nq) * float64(s.nk)
	if s.causal {
		pairs = float64(s.nq) * float64(s.nq+1) / 2
	}
	return 4 * float64(s.b*s.h*s.dim) * pairs
}

// attnVariant names the kernel variant the backend picks for s.
func attnVariant(b *Backend, s attnBenchShape) string {
	return fmt.Sprintf("%+v", b.attnConfig(s.dim, s.nq, s.b*s.h))
}

// BenchmarkAttention times Attention at SD 1.5's shapes and reports
// TFLOP/s, ms per call and ms per 20-step image. Each shape is first
// checked on sampled output rows against a float64 reference, so a fast
// wrong kernel cannot pass as a number, then run for a quarter second so
// the GPU reaches its working clocks before the timed calls (short bursts
// between host-side checks read up to 3x slow on the H200).
func BenchmarkAttention(bm *testing.B) {
	b := openGL(bm)
	for _, s := range sd15Attention {
		var a *attnBench
		bm.Run(s.name, func(bm *testing.B) {
			if a == nil {
				a = newAttnBench(bm, b, s)
			}
			bm.ResetTimer()
			start := time.Now()
			for range bm.N {
				a.call()
			}
			if err := b.Sync(); err != nil {
				bm.Fatal(err)
			}
			sec := time.Since(start).Seconds() / float64(bm.N)
			bm.ReportMetric(s.flops()/sec/1e12, "TFLOP/s")
			bm.ReportMetric(sec*1e3, "ms/call")
			bm.ReportMetric(sec*1e3*float64(s.callsPerImage), "ms/image")
			if testing.Verbose() {
				fmt.Printf("attention %-22s %9.3f ms/call %8.2f TFLOP/s %8.1f ms/image  n=%d %s\n", s.name, sec*1e3,
					s.flops()/sec/1e12, sec*1e3*float64(s.callsPerImage), bm.N, attnVariant(b, s))
			}
		})
		if a != nil {
			a.free()
		}
	}
}

// attnBench holds one shape's tensors.
type attnBench struct {
	b          *Backend
	q, k, v, o *engine.Tensor
	p          engine.AttentionParams
}

func (a *attnBench) call() { a.b.Attention(a.o, a.q, a.k, a.v, a.p) }

func (a *attnBench) free() {
	for _, t := range []*engine.Tensor{a.q, a.k, a.v, a.o} {
		a.b.Free(t)
	}
}

// newAttnBench uploads N(0,1) inputs, checks 48 sampled output rows and
// warms the GPU up.
func newAttnBench(bm *testing.B, b *Backend, s attnBenchShape) *attnBench {
	r := rand.New(rand.NewPCG(11, uint64(s.nq*s.dim)))
	width := s.h * s.dim
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	qv, kv, vv := vals(s.b*s.nq*width), vals(s.b*s.nk*width), vals(s.b*s.nk*width)
	a := &attnBench{b: b, p: engine.AttentionParams{Heads: s.h, Causal: s.causal},
		q: b.New(engine.F32, s.b, s.nq, width), k: b.New(engine.F32, s.b, s.nk, width),
		v: b.New(engine.F32, s.b, s.nk, width), o: b.New(engine.F32, s.b, s.nq, width)}
	b.Write(a.q, qv)
	b.Write(a.k, kv)
	b.Write(a.v, vv)
	a.call()
	out, err := b.Read(a.o)
	if err != nil {
		bm.Fatal(err)
	}
	scale := 1 / math.Sqrt(float64(s.dim))
	for n := 0; n < 48; n++ {
		bi, hi, qi := r.IntN(s.b), r.IntN(s.h), r.IntN(s.nq)
		if n == 0 {
			qi = s.nq - 1 // the last query block's edge
		}
		nk := s.nk
		if s.causal {
			nk = qi + 1
		}
		row := func(x []float32, n, i int) []float32 {
			off := (bi*n+i)*width + hi*s.dim
			return x[off : off+s.dim]
		}
		qr := row(qv, s.nq, qi)
		sc := make([]float64, nk)
		mx := math.Inf(-1)
		for j := range sc {
			kr := row(kv, s.nk, j)
			for d := range s.dim {
				sc[j] += float64(qr[d]) * float64(kr[d])
			}
			sc[j] *= scale
			mx = max(mx, sc[j])
		}
		var sum float64
		for j := range sc {
			sc[j] = math.Exp(sc[j] - mx)
			sum += sc[j]
		}
		got := row(out, s.nq, qi)
		var errSum, refSum float64
		for d := range s.dim {
			var ref float64
			for j := range sc {
				ref += sc[j] / sum * float64(row(vv, s.nk, j)[d])
			}
			e := float64(got[d]) - ref
			errSum += e * e
			refSum += ref * ref
		}
		if !(errSum <= 1e-8*refSum) {
			bm.Fatalf("b %d head %d query %d: NMSE %g against the float64 reference", bi, hi, qi, errSum/refSum)
		}
	}
	for start := time.Now(); time.Since(start) < 250*time.Millisecond; {
		for range 4 {
			a.call()
		}
		if err := b.Sync(); err != nil {
			bm.Fatal(err)
		}
	}
	return a
}
