package gl

import (
	"math"

	gl "github.com/go-gl/gl/v4.3-core/gl"

	"glimmer/engine"
)

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

func isF16(t *engine.Tensor) int { return b2i(t != nil && t.DType() == engine.F16) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// elementwise ops run 256 elements per work group.
func elemGroups(n int) int { return ceilDiv(n, 256) }

// gemmShape picks gemm_core.glsl's tile for a problem: 128x128 with K
// slices of 8 (the fastest per FLOP), or 64x64 with slices of 16 when
// 128-wide tiles would make too few work groups to fill the GPU (deep,
// small feature maps: 8x8 latents at 1280 channels make 20).
func (b *Backend) gemmShape(m, n, batch int) (tile, bk, groups int) {
	g := ceilDiv(m, 128) * ceilDiv(n, 128) * batch
	if g >= b.fullGrid {
		return 128, b.gemmBK, g
	}
	return 64, 16, ceilDiv(m, 64) * ceilDiv(n, 64) * batch
}

func (b *Backend) MatMul(dst, a, w, bias *engine.Tensor, p engine.MatMulParams) {
	d := engine.CheckMatMul(dst, a, w, bias, p)
	alpha := p.Alpha
	if alpha == 0 {
		alpha = 1
	}
	tile, bk, groups := b.gemmShape(d.M, d.N, d.Batch)
	def := defines{"TRANS_A": b2i(p.TransA), "TRANS_B": b2i(p.TransB), "B_F16": isF16(w),
		"HAS_BIAS": b2i(bias != nil), "BIAS_F16": isF16(bias), "TILE": tile, "BK": bk}
	bufs := []*buffer{buf(dst), buf(a), buf(w)}
	if bias != nil {
		bufs = append(bufs, buf(bias))
	}
	strideB := 0
	if d.BBatched {
		strideB = d.K * d.N
	}
	b.dispatch("matmul", def, groups, bufs, func(u uniforms) {
		u.u("u_M", uint32(d.M))
		u.u("u_N", uint32(d.N))
		u.u("u_K", uint32(d.K))
		u.u("u_strideB", uint32(strideB))
		u.f("u_alpha", alpha)
	})
}

func (b *Backend) Conv2D(dst, x, w, bias *engine.Tensor, p engine.Conv2DParams) {
	d := engine.CheckConv2D(dst, x, w, bias, p)
	m, n, k := d.OC, d.OH*d.OW, d.C*d.KH*d.KW
	tile, bk, groups := b.gemmShape(m, n, d.N)
	pointwise := d.KH == 1 && d.KW == 1 && d.P.StrideH == 1 && d.P.StrideW == 1 && d.P.PadH == 0 && d.P.PadW == 0
	def := defines{"W_F16": isF16(w), "HAS_BIAS": b2i(bias != nil), "BIAS_F16": isF16(bias),
		"TILE": tile, "BK": bk, "CONV1X1": b2i(pointwise)}
	bufs := []*buffer{buf(dst), buf(x), buf(w)}
	if bias != nil {
		bufs = append(bufs, buf(bias))
	}
	b.dispatch("conv2d", def, groups, bufs, func(u uniforms) {
		u.u("u_M", uint32(m))
		u.u("u_N", uint32(n))
		u.u("u_K", uint32(k))
		u.i("u_C", d.C)
		u.i("u_H", d.H)
		u.i("u_W", d.W)
		u.i("u_KH", d.KH)
		u.i("u_KW", d.KW)
		u.i("u_OW", d.OW)
		u.i("u_SH", d.P.StrideH)
		u.i("u_SW", d.P.StrideW)
		u.i("u_PH", d.P.PadH)
		u.i("u_PW", d.P.PadW)
	})
}

func (b *Backend) GroupNorm(dst, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	d := engine.CheckGroupNorm(dst, x, gamma, beta, p)
	if gamma.DType() != beta.DType() {
		panic("gl: GroupNorm gamma and beta must share a dtype")
	}
	def := defines{"AFFINE_F16": isF16(gamma), "SILU": b2i(p.SiLU)}
	b.dispatch("groupnorm", def, d.Rows, []*buffer{buf(dst), buf(x), buf(gamma), buf(beta)}, func(u uniforms) {
		u.u("u_G", uint32(p.Groups))
		u.u("u_C", uint32(d.C))
		u.u("u_S", uint32(d.Spatial))
		u.f("u_eps", p.Eps)
	})
}

func (b *Backend) LayerNorm(dst, x, gamma, beta *engine.Tensor, eps float32) {
	d := engine.CheckLayerNorm(dst, x, gamma, beta)
	if gamma.DType() != beta.DType() {
		panic("gl: LayerNorm gamma and beta must share a dtype")
	}
	b.dispatch("layernorm", defines{"AFFINE_F16": isF16(gamma)}, d.Rows,
		[]*buffer{buf(dst), buf(x), buf(gamma), buf(beta)}, func(u uniforms) {
			u.u("u_cols", uint32(d.Cols))
			u.f("u_eps", eps)
		})
}

func (b *Backend) Softmax(dst, x *engine.Tensor) {
	d := engine.CheckSoftmax(dst, x)
	b.dispatch("softmax", nil, d.Rows, []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_cols", uint32(d.Cols))
	})
}

// attentionTile picks how many keys share memory holds at a time: K and V
// tiles of KT x HEAD_DIM floats must fit the driver's limit with room to
// spare.
func (b *Backend) attentionTile(headDim int) int {
	kt := 32
	for kt > 1 && 2*kt*headDim*4 > b.limits.MaxSharedBytes/2 {
		kt /= 2
	}
	return kt
}

func (b *Backend) Attention(dst, q, k, v *engine.Tensor, p engine.AttentionParams) {
	d := engine.CheckAttention(dst, q, k, v, p)
	def := defines{"HEAD_DIM": d.HeadDim, "KT": b.attentionTile(d.HeadDim), "CAUSAL": b2i(d.Causal)}
	groups := ceilDiv(d.Nq, 64) * d.Heads * d.B
	b.dispatch("attention", def, groups, []*buffer{buf(dst), buf(q), buf(k), buf(v)}, func(u uniforms) {
		u.u("u_Nq", uint32(d.Nq))
		u.u("u_Nk", uint32(d.Nk))
		u.u("u_H", uint32(d.Heads))
		u.f("u_scale", d.Scale)
	})
}

func (b *Backend) Unary(dst, x *engine.Tensor, op engine.UnaryOp) {
	n := engine.CheckUnary(dst, x)
	b.dispatch("unary", defines{"OP": int(op)}, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
	})
}

func (b *Backend) GEGLU(dst, x *engine.Tensor) {
	rows, f := engine.CheckGEGLU(dst, x)
	n := rows * f
	b.dispatch("geglu", nil, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_F", uint32(f))
	})
}

func (b *Backend) Binary(dst, x, y *engine.Tensor, op engine.BinaryOp) {
	d := engine.CheckBinary(dst, x, y)
	b.dispatch("binary", defines{"OP": int(op), "B_F16": isF16(y)}, elemGroups(d.N),
		[]*buffer{buf(dst), buf(x), buf(y)}, func(u uniforms) {
			u.u("u_n", uint32(d.N))
			u.iv("u_shape", d.Shape[:])
			u.iv("u_sa", d.StrideA[:])
			u.iv("u_sb", d.StrideB[:])
		})
}

func (b *Backend) Scale(dst, x *engine.Tensor, s, c float32) {
	n := engine.CheckScale(dst, x)
	b.dispatch("scale", nil, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.f("u_s", s)
		u.f("u_c", c)
	})
}

func (b *Backend) Upsample2x(dst, x *engine.Tensor) {
	engine.CheckUpsample2x(dst, x)
	n := dst.Numel()
	b.dispatch("upsample2x", nil, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_H", uint32(x.Dim(2)))
		u.u("u_W", uint32(x.Dim(3)))
	})
}

func (b *Backend) Concat(dst, x, y *engine.Tensor) {
	_, ia, ib := engine.CheckConcat(dst, x, y)
	n := dst.Numel()
	b.dispatch("concat", nil, elemGroups(n), []*buffer{buf(dst), buf(x), buf(y)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_Ia", uint32(ia))
		u.u("u_Ib", uint32(ib))
	})
}

func (b *Backend) Transpose(dst, x *engine.Tensor) {
	batch, r, c := engine.CheckTranspose(dst, x)
	groups := ceilDiv(r, 32) * ceilDiv(c, 32) * batch
	b.dispatch("transpose", nil, groups, []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_R", uint32(r))
		u.u("u_C", uint32(c))
	})
}

// TimestepFreqs are diffusers' frequencies exp(-ln(maxPeriod) * i /
// (half - shift)), each step rounded to float32 as torch computes them.
func TimestepFreqs(p engine.TimestepParams) []float32 {
	half := p.Dim / 2
	out := make([]float32, half)
	lnP := float32(math.Log(float64(p.MaxPeriod)))
	den := float32(half) - p.DownscaleFreqShift
	for i := range out {
		e := (-lnP * float32(i)) / den
		out[i] = float32(math.Exp(float64(e)))
	}
	return out
}

func (b *Backend) TimestepEmbedding(dst, t *engine.Tensor, p engine.TimestepParams) {
	engine.CheckTimestep(dst, t, &p)
	half := p.Dim / 2
	n := dst.Numel()
	fb := &buffer{bytes: storageBytes(engine.F32, half)}
	b.enqueue(func() {
		if id, ok := b.freqs[p]; ok {
			fb.id = id
			return
		}
		f := TimestepFreqs(p)
		gl.GenBuffers(1, &fb.id)
		gl.BindBuffer(gl.SHADER_STORAGE_BUFFER, fb.id)
		gl.BufferData(gl.SHADER_STORAGE_BUFFER, fb.bytes, gl.Ptr(f), gl.STATIC_DRAW)
		b.freqs[p] = fb.id
	})
	b.dispatch("timestep", defines{"FLIP": b2i(p.FlipSinToCos)}, elemGroups(n),
		[]*buffer{buf(dst), buf(t), fb}, func(u uniforms) {
			u.u("u_n", uint32(n))
			u.u("u_dim", uint32(p.Dim))
			u.u("u_half", uint32(half))
		})
}
