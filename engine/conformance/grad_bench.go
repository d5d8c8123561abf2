package conformance

import (
	"testing"

	"glimmer/engine"
)

// BenchGrad times every backward op once at the size Bench times its
// forward op (the U-Net's 32x32 and 64x64 levels), so the two read side by
// side, and reports GFLOP/s for the GEMM-like ops and GB/s of F32 tensor
// traffic for all. Each iteration ends with Sync.
func BenchGrad(b *testing.B, newBackend func() engine.TrainBackend) {
	be := newBackend()
	defer be.Close()
	k := newBenchKit(b, be, 3, 4)
	defer k.free()
	empty, tensor, bench := k.empty, k.tensor, k.bench

	conv := func(name string, c, oc, h, stride int) {
		// A 3x3 convolution with padding 1: 2·OC·C·9·OH·OW flops, as the
		// forward.
		x, w := tensor(engine.F32, 1, c, h, h), tensor(engine.F32, oc, c, 3, 3)
		p := engine.Conv2DParams{StrideH: stride, StrideW: stride, PadH: 1, PadW: 1}
		oh := engine.ConvOut(h, 3, stride, 1)
		dy := tensor(engine.F32, 1, oc, oh, oh)
		dx, dw := empty(engine.F32, 1, c, h, h), empty(engine.F32, oc, c, 3, 3)
		flops := 2 * float64(oc*c*9*oh*oh)
		bench("Conv2DBackwardData/"+name, flops, func() { be.Conv2DBackwardData(dx, dy, w, p) }, dy, w, dx)
		bench("Conv2DBackwardWeight/"+name, flops, func() { be.Conv2DBackwardWeight(dw, x, dy, p) }, x, dy, dw)
	}
	conv("3x3_320ch_32x32", 320, 320, 32, 1)
	conv("3x3_320ch_64x64_stride2", 320, 320, 64, 2)
	{ // 1x1 shortcut convolution, 640 → 320 channels at 32x32.
		x, w := tensor(engine.F32, 1, 640, 32, 32), tensor(engine.F32, 320, 640, 1, 1)
		dy := tensor(engine.F32, 1, 320, 32, 32)
		dx, dw := empty(engine.F32, 1, 640, 32, 32), empty(engine.F32, 320, 640, 1, 1)
		flops := 2 * float64(320*640*32*32)
		bench("Conv2DBackwardData/1x1_640to320_32x32", flops, func() { be.Conv2DBackwardData(dx, dy, w, engine.Conv2DParams{}) }, dy, w, dx)
		bench("Conv2DBackwardWeight/1x1_640to320_32x32", flops, func() { be.Conv2DBackwardWeight(dw, x, dy, engine.Conv2DParams{}) }, x, dy, dw)
	}
	{ // Bias gradients: a convolution's and a linear layer's.
		x := tensor(engine.F32, 2, 320, 64, 64)
		dst := empty(engine.F32, 1, 320, 1, 1)
		bench("SumTo/2x320x64x64_to_320", 0, func() { be.SumTo(dst, x) }, x, dst)
		t := tensor(engine.F32, 2, 4096, 320)
		bias := empty(engine.F32, 320)
		bench("SumTo/2x4096x320_to_320", 0, func() { be.SumTo(bias, t) }, t, bias)
	}
	{
		x, g, beta := tensor(engine.F32, 1, 320, 64, 64), tensor(engine.F32, 320), tensor(engine.F32, 320)
		dy := tensor(engine.F32, 1, 320, 64, 64)
		dx, dg, db := empty(engine.F32, 1, 320, 64, 64), empty(engine.F32, 320), empty(engine.F32, 320)
		bench("GroupNormBackward/320ch_64x64_silu", 0, func() {
			be.GroupNormBackward(dx, dg, db, dy, x, g, beta, engine.GroupNormParams{Groups: 32, Eps: 1e-5, SiLU: true})
		}, x, dy, dx)
	}
	{
		x, g, dy := tensor(engine.F32, 1, 4096, 320), tensor(engine.F32, 320), tensor(engine.F32, 1, 4096, 320)
		dx, dg, db := empty(engine.F32, 1, 4096, 320), empty(engine.F32, 320), empty(engine.F32, 320)
		bench("LayerNormBackward/4096x320", 0, func() { be.LayerNormBackward(dx, dg, db, dy, x, g, 1e-5) }, x, dy, dx)
	}
	{
		y, dy := tensor(engine.F32, 8, 1024, 77), tensor(engine.F32, 8, 1024, 77)
		dx := empty(engine.F32, 8, 1024, 77)
		bench("SoftmaxBackward/8x1024x77", 0, func() { be.SoftmaxBackward(dx, dy, y) }, y, dy, dx)
	}
	attention := func(name string, nq, nk, width int) {
		q, k, v := tensor(engine.F32, 1, nq, width), tensor(engine.F32, 1, nk, width), tensor(engine.F32, 1, nk, width)
		dy := tensor(engine.F32, 1, nq, width)
		dq, dk, dv := empty(engine.F32, 1, nq, width), empty(engine.F32, 1, nk, width), empty(engine.F32, 1, nk, width)
		// Five Nq·Nk·D products (the recomputed scores, dP, dQ, dK, dV):
		// 10·Nq·Nk·width flops, 2.5 times the forward's.
		bench(name, 10*float64(nq*nk*width), func() {
			be.AttentionBackward(dq, dk, dv, dy, q, k, v, engine.AttentionParams{Heads: 8})
		}, q, k, v, dy, dq, dk, dv)
	}
	attention("AttentionBackward/self_1024x1024_8x40", 1024, 1024, 320)
	attention("AttentionBackward/cross_1024x77_8x40", 1024, 77, 320)
	{
		x, dy := tensor(engine.F32, 1, 4096, 1280), tensor(engine.F32, 1, 4096, 1280)
		dx := empty(engine.F32, 1, 4096, 1280)
		bench("UnaryBackward/gelu_4096x1280", 0, func() { be.UnaryBackward(dx, dy, x, engine.GELU) }, x, dy, dx)
		bench("UnaryBackward/silu_4096x1280", 0, func() { be.UnaryBackward(dx, dy, x, engine.SiLU) }, x, dy, dx)
	}
	{
		x, dy := tensor(engine.F32, 1, 4096, 2560), tensor(engine.F32, 1, 4096, 1280)
		dx := empty(engine.F32, 1, 4096, 2560)
		bench("GEGLUBackward/4096x2560", 0, func() { be.GEGLUBackward(dx, dy, x) }, x, dy, dx)
	}
	{
		dy := tensor(engine.F32, 1, 640, 64, 64)
		dx := empty(engine.F32, 1, 640, 32, 32)
		bench("Upsample2xBackward/640x32x32", 0, func() { be.Upsample2xBackward(dx, dy) }, dy, dx)
	}
	{
		x := tensor(engine.F32, 1, 640, 64, 64)
		a, s := empty(engine.F32, 1, 320, 64, 64), empty(engine.F32, 1, 320, 64, 64)
		bench("Split/640x64x64", 0, func() { be.Split(a, s, x) }, x, a, s)
	}
	{ // One step on a 3x3 320-channel convolution's weight.
		param, grad := tensor(engine.F32, 320, 320, 3, 3), tensor(engine.F32, 320, 320, 3, 3)
		m, v := empty(engine.F32, 320, 320, 3, 3), empty(engine.F32, 320, 320, 3, 3)
		be.Write(m, make([]float32, m.Numel()))
		be.Write(v, make([]float32, v.Numel()))
		step := 0
		bench("AdamW/320x320x3x3", 0, func() {
			step++
			be.AdamW(param, grad, m, v, engine.AdamWParams{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: step})
		}, param, grad, m, v, param, m, v)
	}
}
