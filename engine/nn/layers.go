package nn

import (
	"fmt"
	"strings"

	"glimmer/engine"
)

// Linear is y = x Wᵀ + b, W [Out, In] as stored in checkpoints.
type Linear struct {
	Weight     *engine.Tensor // [Out, In]; [In, Out] when Transposed
	Bias       *engine.Tensor // [Out] or nil
	In         int
	Out        int
	Transposed bool  // Weight holds Wᵀ (Loader.TransposeLinears)
	Paired     bool  // the outputs' halves interleaved (NewGEGLULinear)
	LoRA       *LoRA // a low-rank update being trained, or nil
}

// LoRA is a trainable low-rank update of a frozen Linear layer (Hu et al.
// 2021): y = x Wᵀ + b + Scale · (x Downᵀ) Upᵀ, Scale = alpha / rank.
// Saved LoRAs are merged into the weights when a model loads
// (engine/lora); this form exists for training.
type LoRA struct {
	Down  *engine.Tensor // [Rank, In]
	Up    *engine.Tensor // [Out, Rank], zero at the start
	Scale float32
}

// NewLinear binds name.weight (and name.bias when bias is set).
func NewLinear(l *Loader, name string, in, out int, bias bool) *Linear {
	m := &Linear{In: in, Out: out, Transposed: l.st.linT}
	m.Weight = l.tensor(name+".weight", []int{out, in}, layout{transpose: m.Transposed}) // [Out, In] or [In, Out]
	if bias {
		m.Bias = l.Tensor(name+".bias", out)
	}
	return m
}

// NewGEGLULinear binds a Linear whose outputs are GEGLU's [value | gate]
// halves (diffusers' GEGLU proj). Under TransposeLinears (inference) the
// halves are stored interleaved, value j as output 2j and gate j as 2j+1
// (Paired), in the weight [In, Out] and the bias alike, so ForwardGEGLU
// applies GEGLU in the product's epilogue. Otherwise it is NewLinear.
func NewGEGLULinear(l *Loader, name string, in, out int) *Linear {
	if !l.st.linT {
		return NewLinear(l, name, in, out, true)
	}
	m := &Linear{In: in, Out: out, Transposed: true, Paired: true}
	m.Weight = l.tensor(name+".weight", []int{out, in}, layout{transpose: true, pair: true}) // [In, Out], pairs
	m.Bias = l.tensor(name+".bias", []int{out}, layout{pair: true})                          // [Out], pairs
	return m
}

// Forward computes dst [..., Out] from x [..., In].
func (m *Linear) Forward(b engine.Backend, dst, x *engine.Tensor) {
	rows := x.Numel() / m.In
	b.MatMul(dst.Reshape(rows, m.Out), x.Reshape(rows, m.In), m.Weight, m.Bias,
		engine.MatMulParams{TransB: !m.Transposed}) // [rows, Out]
	if l := m.LoRA; l != nil {
		rank := l.Down.Dim(0)
		h := b.New(engine.F32, rows, rank)                                                 // [rows, Rank]
		b.MatMul(h, x.Reshape(rows, m.In), l.Down, nil, engine.MatMulParams{TransB: true}) // [rows, Rank]
		u := b.New(engine.F32, rows, m.Out)                                                // [rows, Out]
		b.MatMul(u, h, l.Up, nil, engine.MatMulParams{TransB: true, Alpha: l.Scale})       // [rows, Out]
		b.Binary(dst.Reshape(rows, m.Out), dst.Reshape(rows, m.Out), u, engine.Add)        // [rows, Out]
		b.Free(h)
		b.Free(u)
	}
}

// NewFusedLinear binds the named Linear layers of one input, each [out,
// in] without a bias, as one Linear whose outputs are theirs side by
// side: its weight [In, len(names)·out] holds row i of every layer's Wᵀ in
// turn (Transposed), so one product makes them all (self-attention's
// to_q, to_k and to_v). For inference: call it under TransposeLinears.
func NewFusedLinear(l *Loader, names []string, in, out int) *Linear {
	m := &Linear{In: in, Out: len(names) * out, Transposed: true}
	parts := make([][]byte, len(names))
	var dtype engine.DType
	for i, name := range names {
		dt, _, raw, ok := l.host(name+".weight", []int{out, in}, layout{transpose: true}) // [In, out]
		if !ok {
			return m
		}
		if i > 0 && dt != dtype {
			l.st.err = fmt.Errorf("tensor %s is %v, %s.weight %v: they cannot share one product", l.join(name+".weight"), dt, l.join(names[0]), dtype)
			return m
		}
		dtype, parts[i] = dt, raw
	}
	row := out * dtype.Size()
	cat := make([]byte, 0, in*len(parts)*row) // [In, n·out]
	for r := range in {
		for _, p := range parts {
			cat = append(cat, p[r*row:(r+1)*row]...)
		}
	}
	m.Weight = l.B.New(dtype, in, m.Out) // [In, n·out]
	l.B.WriteRaw(m.Weight, cat)
	l.record(l.join(strings.Join(names, "+")+".weight"), m.Weight)
	return m
}

// ForwardGEGLU computes dst [..., Out/2] = GEGLU(x Wᵀ + b) for x [...,
// In] in one product whose epilogue applies GEGLU. m must be Paired.
func (m *Linear) ForwardGEGLU(b engine.Backend, dst, x *engine.Tensor) {
	if !m.Paired {
		panic("nn: ForwardGEGLU of a Linear whose outputs are not paired")
	}
	rows := x.Numel() / m.In
	b.MatMul(dst.Reshape(rows, m.Out/2), x.Reshape(rows, m.In), m.Weight, m.Bias,
		engine.MatMulParams{GEGLU: true}) // [rows, Out/2]
}

// ForwardAdd computes dst = x Wᵀ + b + res, res [..., Out] (it may be dst
// itself: a residual connection updated in place), adding res in the
// product's epilogue. With a LoRA being trained, the update is added
// before res, as Forward then a Binary Add would.
func (m *Linear) ForwardAdd(b engine.Backend, dst, x, res *engine.Tensor) {
	rows := x.Numel() / m.In
	if m.LoRA != nil {
		t := b.New(engine.F32, rows, m.Out) // [rows, Out]
		m.Forward(b, t, x)
		b.Binary(dst.Reshape(rows, m.Out), res.Reshape(rows, m.Out), t, engine.Add) // [rows, Out]
		b.Free(t)
		return
	}
	b.MatMul(dst.Reshape(rows, m.Out), x.Reshape(rows, m.In), m.Weight, m.Bias,
		engine.MatMulParams{TransB: !m.Transposed, Residual: res.Reshape(rows, m.Out)}) // [rows, Out]
}

// Conv2d is a 2-D convolution with a square kernel, as torch's.
type Conv2d struct {
	Weight *engine.Tensor // [Out, In, K, K]
	Bias   *engine.Tensor // [Out] or nil
	In     int
	Out    int
	K      int
	P      engine.Conv2DParams
}

// NewConv2d binds name.weight and name.bias.
func NewConv2d(l *Loader, name string, in, out, k, stride, pad int) *Conv2d {
	return &Conv2d{
		Weight: l.Tensor(name+".weight", out, in, k, k),
		Bias:   l.Tensor(name+".bias", out),
		In:     in, Out: out, K: k,
		P: engine.Conv2DParams{StrideH: stride, StrideW: stride, PadH: pad, PadW: pad},
	}
}

// OutSize is the output extent for an input extent.
func (m *Conv2d) OutSize(in int) int {
	s := max(m.P.StrideH, 1)
	return engine.ConvOut(in, m.K, s, m.P.PadH)
}

// Forward computes dst [N, Out, OH, OW] from x [N, In, H, W].
func (m *Conv2d) Forward(b engine.Backend, dst, x *engine.Tensor) {
	b.Conv2D(dst, x, m.Weight, m.Bias, m.P)
}

// ForwardAdd computes dst = conv(x) + res, res [N, Out, OH, OW] (it may be
// dst itself), adding res in the convolution's epilogue.
func (m *Conv2d) ForwardAdd(b engine.Backend, dst, x, res *engine.Tensor) {
	p := m.P
	p.Residual = res
	b.Conv2D(dst, x, m.Weight, m.Bias, p)
}

// GroupNorm normalises groups of channels, optionally followed by SiLU.
type GroupNorm struct {
	Weight, Bias *engine.Tensor // [C]
	Groups       int
	Eps          float32
}

// NewGroupNorm binds name.weight and name.bias.
func NewGroupNorm(l *Loader, name string, groups, channels int, eps float64) *GroupNorm {
	return &GroupNorm{
		Weight: l.Tensor(name+".weight", channels),
		Bias:   l.Tensor(name+".bias", channels),
		Groups: groups, Eps: float32(eps),
	}
}

// Forward normalises x [N, C, ...] into dst; silu fuses the activation.
func (m *GroupNorm) Forward(b engine.Backend, dst, x *engine.Tensor, silu bool) {
	b.GroupNorm(dst, x, m.Weight, m.Bias, engine.GroupNormParams{Groups: m.Groups, Eps: m.Eps, SiLU: silu})
}

// ForwardShift normalises x + shift, shift's rows row .. row+N-1 ([R, C])
// broadcast over x's trailing axes, into dst without storing the sum
// (GroupNormParams.Shift and ShiftRow; inference only).
func (m *GroupNorm) ForwardShift(b engine.Backend, dst, x, shift *engine.Tensor, row int, silu bool) {
	b.GroupNorm(dst, x, m.Weight, m.Bias, engine.GroupNormParams{Groups: m.Groups, Eps: m.Eps, SiLU: silu, Shift: shift, ShiftRow: row})
}

// LayerNorm normalises the last axis.
type LayerNorm struct {
	Weight, Bias *engine.Tensor // [C]
	Eps          float32
}

// NewLayerNorm binds name.weight and name.bias.
func NewLayerNorm(l *Loader, name string, channels int, eps float64) *LayerNorm {
	return &LayerNorm{
		Weight: l.Tensor(name+".weight", channels),
		Bias:   l.Tensor(name+".bias", channels),
		Eps:    float32(eps),
	}
}

// Forward normalises x [..., C] into dst.
func (m *LayerNorm) Forward(b engine.Backend, dst, x *engine.Tensor) {
	b.LayerNorm(dst, x, m.Weight, m.Bias, m.Eps)
}
