package gl_test

import (
	"testing"

	"glimmer/engine"
	"glimmer/engine/conformance"
	"glimmer/engine/gl"
)

// newBackend opens the GL backend or fails the test: a machine running
// these tests must have OpenGL 4.3 (CI has Mesa llvmpipe); skipping would
// hide a broken backend.
func newBackend(tb testing.TB) func() engine.Backend {
	return func() engine.Backend {
		b, err := gl.New()
		if err != nil {
			tb.Fatalf("OpenGL backend: %v", err)
		}
		return b
	}
}

// TestConformance holds every op's shader to the float64 reference.
func TestConformance(t *testing.T) { conformance.Run(t, newBackend(t)) }

// TestConformanceWideTiles runs the suite again with every GEMM on the
// 128x128 tiles that large problems get (the suite's small sizes pick 64x64
// tiles otherwise), so both shader variants are held to the reference,
// and 3x3 convolutions as implicit GEMMs rather than by Winograd (the
// default), so both paths are too. It also flushes after every power-of-
// two dispatch since each read-back (GLIMMER_GL_FLUSH=1, a tuning knob that
// must not change a result).
func TestConformanceWideTiles(t *testing.T) {
	t.Setenv("GLIMMER_GEMM_FULLGRID", "0")
	t.Setenv("GLIMMER_GL_WINOGRAD", "0")
	t.Setenv("GLIMMER_GL_FLUSH", "1")
	conformance.Run(t, newBackend(t))
}

// TestConformanceAttentionVariants holds the attention kernel's other
// layouts to the reference: the backend picks one per head dim and
// driver (shared memory, threads per group), so each must be right
// everywhere.
// On llvmpipe (32 KiB) the defaults already take chunked score products,
// V sharing K's memory and streamed queries at some head dims; forced
// here (GLIMMER_GL_ATTN): V in 4-key chunks at every head dim, and 8-key
// score blocks on 4-thread rows, and the next tile prefetched (PF) where
// a layout allows it, the probabilities through shared memory with the
// subgroup reductions (PSH), without the rows' subgroup operations
// (SHUF=0, the default where the driver lacks them); and each with them
// (SHUF, whose default grids differ and whose V chunks hold whole score
// blocks, so 4-key blocks for 4-key chunks) emulated through shared
// memory, and where the driver has subgroups (not llvmpipe) through its
// own.
func TestConformanceAttentionVariants(t *testing.T) {
	variants := []string{"SHUF=0,SEP=0,VK=4", "SHUF=0,RX=4,RY=8,TQ=2,TK=8", "SHUF=0,RX=4,RY=8,TQ=2,TK=8,PF=1", "SHUF=2", "SHUF=2,SEP=0,TK=4,VK=4",
		"SHUF=2,RX=4,RY=8,TQ=2,TK=8", "SHUF=2,RX=4,RY=8,TQ=2,TK=8,PF=1", "SHUF=2,RX=4,RY=8,TQ=2,TK=8,PF=1,PSH=1", "SHUF=2,PSH=1"}
	b := newBackend(t)().(*gl.Backend)
	sub := b.Limits().SubgroupSize
	b.Close()
	if sub > 0 {
		variants = append(variants, "SHUF=1", "SHUF=1,SEP=0,TK=4,VK=4", "SHUF=1,RX=4,RY=8,TQ=2,TK=8", "SHUF=1,PF=1", "SHUF=1,PF=1,PSH=1")
	}
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			t.Setenv("GLIMMER_GL_ATTN", v)
			conformance.RunAttention(t, newBackend(t))
		})
	}
}

// TestSampleStepDivision holds the sampler step's correctly rounded
// division to the host's when the driver's quotient is off: the shader is
// made to start 3 ulp above and below the driver's quotient (GLSL allows
// 2.5 ulp; llvmpipe divides exactly, NVIDIA's was up to 1 ulp off on top
// of the skew) and must still give the host's bits. A skew of 12, past
// the shader's 8 corrections, fails on llvmpipe: the test can fail.
func TestSampleStepDivision(t *testing.T) {
	for _, skew := range []string{"3", "-3"} {
		t.Run("skew"+skew, func(t *testing.T) {
			t.Setenv("GLIMMER_GL_DEFS", "DIV_SKEW="+skew)
			conformance.RunSampleStep(t, newBackend(t))
		})
	}
}

// BenchmarkOps times every op at an SD-like size (GLIMMER_BENCH_BIG=1 adds
// a 4096³ MatMul).
func BenchmarkOps(b *testing.B) { conformance.Bench(b, newBackend(b)) }

// TestFence places fences behind queued work and waits on them as the
// denoising loop does (the wait for one fence comes after more work was
// queued): each wait returns without error, frees its GL sync object, and
// the work before it has its result.
func TestFence(t *testing.T) {
	b := newBackend(t)().(*gl.Backend)
	defer b.Close()
	const n = 1 << 16
	x, y := b.New(engine.F32, n), b.New(engine.F32, n) // [n], [n]
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i)
	}
	b.Write(x, src)
	b.Scale(y, x, 3, 1)
	first := b.Fence()
	b.Scale(x, y, 2, 0)
	second := b.Fence()
	if got := b.LiveFences(); got != 2 {
		t.Fatalf("%d live fences after placing 2", got)
	}
	if err := first(); err != nil {
		t.Fatal(err)
	}
	if err := second(); err != nil {
		t.Fatal(err)
	}
	if got := b.LiveFences(); got != 0 {
		t.Errorf("%d live fences after waiting on both", got)
	}
	got, err := b.Read(x)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if want := 2 * (3*float32(i) + 1); v != want {
			t.Fatalf("x[%d] = %v, want %v", i, v, want)
		}
	}
}
