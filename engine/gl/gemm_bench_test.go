package gl

import (
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
