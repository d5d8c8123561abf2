package conformance

import (
	"os"
	"testing"

	"glimmer/engine"
)

// Bench times every op once at a size Stable Diffusion 1.5 runs it at
// (mostly the 32x32 latent level of a 256x256 image, so that the CPU
// backend finishes in seconds) and reports GFLOP/s for the arithmetic ops
// and GB/s of F32 tensor traffic (inputs read once, output written once)
// for all. Each iteration ends with Sync, so asynchronous backends are
// timed to completion. GLIMMER_BENCH_BIG=1 adds a 4096³ MatMul.
func Bench(b *testing.B, newBackend func() engine.Backend) {
	be := newBackend()
	defer be.Close()
	k := newBenchKit(b, be, 1, 2)
	defer k.free()
	empty, tensor, bench := k.empty, k.tensor, k.bench

	matmul := func(name string, batch, m, n, k int, wtype engine.DType) {
		// A linear layer: x [batch, m, k] · wᵀ, w [n, k] + bias [n].
		x, w, bias := tensor(engine.F32, batch, m, k), tensor(wtype, n, k), tensor(wtype, n)
		dst := empty(engine.F32, batch, m, n)
		bench(name, 2*float64(batch*m*n*k), func() {
			be.MatMul(dst, x, w, bias, engine.MatMulParams{TransB: true})
		}, x, w, bias, dst)
	}
	// The U-Net's attention projections at 32x32 (1024 tokens, 640 wide).
	matmul("MatMul/linear_1024x640x640", 1, 1024, 640, 640, engine.F32)
	matmul("MatMul/linear_1024x640x640_f16", 1, 1024, 640, 640, engine.F16)
	if os.Getenv("GLIMMER_BENCH_BIG") == "1" {
		matmul("MatMul/4096x4096x4096", 1, 4096, 4096, 4096, engine.F32)
	}

	{ // A ResBlock's 3x3 convolution, 320 channels at 32x32.
		x, w, bias := tensor(engine.F32, 1, 320, 32, 32), tensor(engine.F32, 320, 320, 3, 3), tensor(engine.F32, 320)
		dst := empty(engine.F32, 1, 320, 32, 32)
		bench("Conv2D/3x3_320ch_32x32", 2*320*320*9*32*32, func() {
			be.Conv2D(dst, x, w, bias, engine.Conv2DParams{PadH: 1, PadW: 1})
		}, x, w, bias, dst)
	}
	{ // GroupNorm + SiLU opening a ResBlock, 320 channels at 64x64.
		x, g, beta := tensor(engine.F32, 1, 320, 64, 64), tensor(engine.F32, 320), tensor(engine.F32, 320)
		dst := empty(engine.F32, 1, 320, 64, 64)
		bench("GroupNorm/320ch_64x64_silu", 0, func() {
			be.GroupNorm(dst, x, g, beta, engine.GroupNormParams{Groups: 32, Eps: 1e-5, SiLU: true})
		}, x, g, beta, dst)
	}
	{ // LayerNorm in a transformer block at 64x64.
		x, g, beta := tensor(engine.F32, 1, 4096, 320), tensor(engine.F32, 320), tensor(engine.F32, 320)
		dst := empty(engine.F32, 1, 4096, 320)
		bench("LayerNorm/4096x320", 0, func() { be.LayerNorm(dst, x, g, beta, 1e-5) }, x, g, beta, dst)
	}
	{ // Softmax over cross-attention scores, 8 heads x 1024 queries x 77.
		x := tensor(engine.F32, 8, 1024, 77)
		dst := empty(engine.F32, 8, 1024, 77)
		bench("Softmax/8x1024x77", 0, func() { be.Softmax(dst, x) }, x, dst)
	}
	attention := func(name string, nq, nk, width int) {
		q, k, v := tensor(engine.F32, 1, nq, width), tensor(engine.F32, 1, nk, width), tensor(engine.F32, 1, nk, width)
		dst := empty(engine.F32, 1, nq, width)
		bench(name, 4*float64(nq*nk*width), func() {
			be.Attention(dst, q, k, v, engine.AttentionParams{Heads: 8})
		}, q, k, v, dst)
	}
	// Self- and cross-attention of the 32x32 level, 8 heads of 40.
	attention("Attention/self_1024x1024_8x40", 1024, 1024, 320)
	attention("Attention/cross_1024x77_8x40", 1024, 77, 320)
	{
		x := tensor(engine.F32, 1, 4096, 1280)
		dst := empty(engine.F32, 1, 4096, 1280)
		bench("Unary/gelu_4096x1280", 0, func() { be.Unary(dst, x, engine.GELU) }, x, dst)
		bench("Unary/silu_4096x1280", 0, func() { be.Unary(dst, x, engine.SiLU) }, x, dst)
	}
	{ // The feed-forward's GEGLU at 64x64: 2x1280 → 1280.
		x := tensor(engine.F32, 1, 4096, 2560)
		dst := empty(engine.F32, 1, 4096, 1280)
		bench("GEGLU/4096x2560", 0, func() { be.GEGLU(dst, x) }, x, dst)
	}
	{ // A ResBlock's time-embedding add: [1, 320, 64, 64] + [1, 320, 1, 1].
		a, t := tensor(engine.F32, 1, 320, 64, 64), tensor(engine.F32, 1, 320, 1, 1)
		dst := empty(engine.F32, 1, 320, 64, 64)
		bench("Binary/add_320x64x64_bcast", 0, func() { be.Binary(dst, a, t, engine.Add) }, a, t, dst)
	}
	{
		x := tensor(engine.F32, 1, 320, 64, 64)
		bench("Scale/320x64x64_in_place", 0, func() { be.Scale(x, x, 0.5, 1) }, x, x)
	}
	{
		x := tensor(engine.F32, 1, 640, 32, 32)
		dst := empty(engine.F32, 1, 640, 64, 64)
		bench("Upsample2x/640x32x32", 0, func() { be.Upsample2x(dst, x) }, x, dst)
	}
	{ // A skip connection in the decoder.
		a, s := tensor(engine.F32, 1, 320, 64, 64), tensor(engine.F32, 1, 320, 64, 64)
		dst := empty(engine.F32, 1, 640, 64, 64)
		bench("Concat/320+320x64x64", 0, func() { be.Concat(dst, a, s) }, a, s, dst)
	}
	{ // proj_in's NCHW → tokens.
		x := tensor(engine.F32, 1, 320, 4096)
		dst := empty(engine.F32, 1, 4096, 320)
		bench("Transpose/320x4096", 0, func() { be.Transpose(dst, x) }, x, dst)
	}
	{
		t := tensor(engine.F32, 2)
		dst := empty(engine.F32, 2, 320)
		bench("TimestepEmbedding/2x320", 0, func() {
			be.TimestepEmbedding(dst, t, engine.TimestepParams{Dim: 320, FlipSinToCos: true})
		}, t, dst)
	}
}
