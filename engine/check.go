package engine

import "fmt"

// The Check functions validate an op's operands and return the sizes a
// backend needs. Both backends call them first, so a shape mistake panics
// the same way everywhere, before any work is queued.

func fail(op, format string, args ...any) {
	panic(fmt.Sprintf("engine: %s: %s", op, fmt.Sprintf(format, args...)))
}

// Fail panics with a programmer-error message for op (a backend's own
// operand checks use it, so every backend words them alike).
func Fail(op, format string, args ...any) { fail(op, format, args...) }

// CheckF32 panics unless every non-nil t is F32 (gradients always are).
func CheckF32(op string, ts ...*Tensor) { wantF32(op, ts...) }

// CheckShape panics unless a non-nil t has the shape want.
func CheckShape(op, name string, t *Tensor, want Shape) {
	if t != nil && !t.Shape().Equal(want) {
		fail(op, "%s %v, want %v", name, t.Shape(), want)
	}
}

func wantF32(op string, ts ...*Tensor) {
	for _, t := range ts {
		if t != nil && t.DType() != F32 {
			fail(op, "%v must be F32", t)
		}
	}
}

// MatMulDims are the sizes of one MatMul.
type MatMulDims struct {
	Batch, M, N, K int
	BBatched       bool // b has its own matrix per batch (else shared)
}

// batched splits a rank-2 or rank-3 shape into (batch, rows, cols).
func batched(op string, t *Tensor) (int, int, int) {
	s := t.Shape()
	switch len(s) {
	case 2:
		return 1, s[0], s[1]
	case 3:
		return s[0], s[1], s[2]
	}
	fail(op, "%v must have rank 2 or 3", t)
	return 0, 0, 0
}

func CheckMatMul(dst, a, b, bias *Tensor, p MatMulParams) MatMulDims {
	const op = "MatMul"
	wantF32(op, dst, a)
	ba, ar, ac := batched(op, a)
	bb, br, bc := batched(op, b)
	bd, dr, dc := batched(op, dst)
	m, k := ar, ac
	if p.TransA {
		m, k = ac, ar
	}
	kb, n := br, bc
	if p.TransB {
		kb, n = bc, br
	}
	if k != kb {
		fail(op, "inner sizes differ: a %v, b %v (transA %v, transB %v)", a.Shape(), b.Shape(), p.TransA, p.TransB)
	}
	if bb != 1 && bb != ba {
		fail(op, "b batch %d must be 1 or a's batch %d", bb, ba)
	}
	cols := n // dst's
	if p.GEGLU {
		if n%2 != 0 || p.Residual != nil {
			fail(op, "GEGLU needs an even number of columns (%d) and no residual", n)
		}
		cols = n / 2
	}
	if bd != ba || dr != m || dc != cols {
		fail(op, "dst %v, want [%d, %d, %d]", dst.Shape(), ba, m, cols)
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != n) {
		fail(op, "bias %v, want [%d]", bias.Shape(), n)
	}
	checkResidual(op, dst, p.Residual)
	return MatMulDims{Batch: ba, M: m, N: n, K: k, BBatched: bb != 1}
}

// Conv2DDims are the sizes of one Conv2D, strides defaulted to 1.
type Conv2DDims struct {
	N, C, H, W, OC, KH, KW, OH, OW int
	P                              Conv2DParams
}

// Pointwise reports a 1x1 kernel at stride 1 without padding: the
// convolution is a product with the input itself.
func (d Conv2DDims) Pointwise() bool {
	return d.KH == 1 && d.KW == 1 && d.P.StrideH == 1 && d.P.StrideW == 1 && d.P.PadH == 0 && d.P.PadW == 0
}

// ConvOut is the output extent of a convolution along one axis.
func ConvOut(in, k, stride, pad int) int { return (in+2*pad-k)/stride + 1 }

func CheckConv2D(dst, x, w, bias *Tensor, p Conv2DParams) Conv2DDims {
	const op = "Conv2D"
	wantF32(op, dst, x)
	if p.StrideH == 0 {
		p.StrideH = 1
	}
	if p.StrideW == 0 {
		p.StrideW = 1
	}
	if x.Rank() != 4 || w.Rank() != 4 || dst.Rank() != 4 {
		fail(op, "x %v, w %v, dst %v must all be rank 4", x.Shape(), w.Shape(), dst.Shape())
	}
	d := Conv2DDims{N: x.Dim(0), C: x.Dim(1), H: x.Dim(2), W: x.Dim(3),
		OC: w.Dim(0), KH: w.Dim(2), KW: w.Dim(3), P: p}
	if w.Dim(1) != d.C {
		fail(op, "w %v expects %d input channels, x %v has %d", w.Shape(), w.Dim(1), x.Shape(), d.C)
	}
	d.OH = ConvOut(d.H, d.KH, p.StrideH, p.PadH)
	d.OW = ConvOut(d.W, d.KW, p.StrideW, p.PadW)
	if d.OH <= 0 || d.OW <= 0 {
		fail(op, "kernel %dx%d larger than padded input %v", d.KH, d.KW, x.Shape())
	}
	if !dst.Shape().Equal(Shape{d.N, d.OC, d.OH, d.OW}) {
		fail(op, "dst %v, want [%d, %d, %d, %d]", dst.Shape(), d.N, d.OC, d.OH, d.OW)
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != d.OC) {
		fail(op, "bias %v, want [%d]", bias.Shape(), d.OC)
	}
	checkResidual(op, dst, p.Residual)
	return d
}

// checkResidual: a GEMM's residual operand, when given, is F32 with the
// destination's shape.
func checkResidual(op string, dst, res *Tensor) {
	if res == nil {
		return
	}
	wantF32(op, res)
	if !res.Shape().Equal(dst.Shape()) {
		fail(op, "residual %v, want dst's shape %v", res.Shape(), dst.Shape())
	}
}

// NormDims: Rows independent rows of Cols elements (LayerNorm, Softmax),
// or for GroupNorm N*Groups groups of Cols = (C/Groups)*Spatial elements.
type NormDims struct {
	Rows, Cols   int
	C, Spatial   int // GroupNorm only
	ChanPerGroup int // GroupNorm only
}

func sameShape(op string, dst, x *Tensor) {
	if !dst.Shape().Equal(x.Shape()) {
		fail(op, "dst %v must have x's shape %v", dst.Shape(), x.Shape())
	}
}

func vecOf(op, name string, t *Tensor, n int) {
	if t == nil || t.Rank() != 1 || t.Dim(0) != n {
		fail(op, "%s must be [%d]", name, n)
	}
}

func CheckGroupNorm(dst, x, gamma, beta *Tensor, p GroupNormParams) NormDims {
	const op = "GroupNorm"
	wantF32(op, dst, x)
	sameShape(op, dst, x)
	if x.Rank() < 2 {
		fail(op, "x %v needs rank >= 2", x.Shape())
	}
	c := x.Dim(1)
	if p.Groups <= 0 || c%p.Groups != 0 {
		fail(op, "%d channels do not split into %d groups", c, p.Groups)
	}
	vecOf(op, "gamma", gamma, c)
	vecOf(op, "beta", beta, c)
	if s := p.Shift; s != nil && (s.DType() != F32 || s.Rank() != 2 || s.Dim(1) != c || p.ShiftRow < 0 || s.Dim(0) < p.ShiftRow+x.Dim(0)) {
		fail(op, "shift %v from row %d, want F32 [>= %d, %d]", s, p.ShiftRow, p.ShiftRow+x.Dim(0), c)
	}
	sp := x.Numel() / (x.Dim(0) * c)
	return NormDims{Rows: x.Dim(0) * p.Groups, Cols: c / p.Groups * sp, C: c, Spatial: sp, ChanPerGroup: c / p.Groups}
}

func CheckLayerNorm(dst, x, gamma, beta *Tensor) NormDims {
	const op = "LayerNorm"
	wantF32(op, dst, x)
	sameShape(op, dst, x)
	n := x.Shape().Last()
	vecOf(op, "gamma", gamma, n)
	vecOf(op, "beta", beta, n)
	return NormDims{Rows: x.Numel() / n, Cols: n}
}

func CheckSoftmax(dst, x *Tensor) NormDims {
	const op = "Softmax"
	wantF32(op, dst, x)
	sameShape(op, dst, x)
	n := x.Shape().Last()
	return NormDims{Rows: x.Numel() / max(n, 1), Cols: n}
}

// AttentionDims are the sizes of one Attention.
type AttentionDims struct {
	B, Nq, Nk, Heads, HeadDim int
	Scale                     float32
	Causal                    bool
}

func CheckAttention(dst, q, k, v *Tensor, p AttentionParams) AttentionDims {
	const op = "Attention"
	var nk, width int // keys; the H·D of each of q, k, v
	if p.Packed {
		wantF32(op, dst, q)
		if k != nil || v != nil || q.Rank() != 3 || dst.Rank() != 3 || p.Causal {
			fail(op, "packed: q [B, N, 3·H·D] alone, not causal")
		}
		if q.Dim(0) != dst.Dim(0) || q.Dim(1) != dst.Dim(1) || q.Dim(2) != 3*dst.Dim(2) {
			fail(op, "packed q %v for dst %v, want [%d, %d, %d]", q.Shape(), dst.Shape(), dst.Dim(0), dst.Dim(1), 3*dst.Dim(2))
		}
		nk, width = q.Dim(1), dst.Dim(2)
	} else {
		wantF32(op, dst, q, k, v)
		if q.Rank() != 3 || k.Rank() != 3 || v.Rank() != 3 {
			fail(op, "q %v, k %v, v %v must be rank 3", q.Shape(), k.Shape(), v.Shape())
		}
		sameShape(op, dst, q)
		if !k.Shape().Equal(v.Shape()) || k.Dim(0) != q.Dim(0) || k.Dim(2) != q.Dim(2) {
			fail(op, "q %v, k %v, v %v disagree", q.Shape(), k.Shape(), v.Shape())
		}
		nk, width = k.Dim(1), q.Dim(2)
	}
	if p.Heads <= 0 || width%p.Heads != 0 {
		fail(op, "width %d does not split into %d heads", width, p.Heads)
	}
	d := AttentionDims{B: q.Dim(0), Nq: q.Dim(1), Nk: nk, Heads: p.Heads,
		HeadDim: width / p.Heads, Scale: p.Scale, Causal: p.Causal}
	if d.Scale == 0 {
		d.Scale = 1 / sqrt32(float32(d.HeadDim))
	}
	if p.Causal && d.Nq != d.Nk {
		fail(op, "causal attention needs as many queries (%d) as keys (%d)", d.Nq, d.Nk)
	}
	return d
}

func CheckUnary(dst, x *Tensor) int {
	wantF32("Unary", dst, x)
	sameShape("Unary", dst, x)
	return x.Numel()
}

func CheckScale(dst, x *Tensor) int {
	wantF32("Scale", dst, x)
	sameShape("Scale", dst, x)
	return x.Numel()
}

// CheckGEGLU returns (rows, F).
func CheckGEGLU(dst, x *Tensor) (int, int) {
	const op = "GEGLU"
	wantF32(op, dst, x)
	n := x.Shape().Last()
	if n%2 != 0 {
		fail(op, "last axis %d of x %v is odd", n, x.Shape())
	}
	want := append(x.Shape()[:x.Rank()-1].Clone(), n/2)
	if !dst.Shape().Equal(want) {
		fail(op, "dst %v, want %v", dst.Shape(), want)
	}
	return x.Numel() / n, n / 2
}

// MaxRank is the largest rank Binary broadcasts over.
const MaxRank = 6

// BroadcastDims describes a Binary: the destination's extents and each
// operand's element strides (0 along broadcast axes), padded on the left to
// MaxRank.
type BroadcastDims struct {
	Shape            [MaxRank]int
	StrideA, StrideB [MaxRank]int
	N                int
}

func CheckBinary(dst, a, b *Tensor) BroadcastDims {
	const op = "Binary"
	wantF32(op, dst, a)
	r := dst.Rank()
	if r > MaxRank || a.Rank() > r || b.Rank() > r {
		fail(op, "ranks of a %v, b %v, dst %v must be <= %d and <= dst's", a.Shape(), b.Shape(), dst.Shape(), MaxRank)
	}
	var d BroadcastDims
	d.N = dst.Numel()
	strides := func(t *Tensor, out *[MaxRank]int) {
		s := 1
		for i := 1; i <= MaxRank; i++ {
			ext := 1
			if i <= t.Rank() {
				ext = t.Dim(t.Rank() - i)
			}
			de := 1
			if i <= r {
				de = dst.Dim(r - i)
			}
			switch {
			case ext == de:
				out[MaxRank-i] = s
			case ext == 1:
				out[MaxRank-i] = 0
			default:
				fail(op, "a %v and b %v do not broadcast to dst %v", a.Shape(), b.Shape(), dst.Shape())
			}
			s *= ext
		}
	}
	for i := 1; i <= MaxRank; i++ {
		d.Shape[MaxRank-i] = 1
		if i <= r {
			d.Shape[MaxRank-i] = dst.Dim(r - i)
		}
	}
	strides(a, &d.StrideA)
	strides(b, &d.StrideB)
	return d
}

func CheckUpsample2x(dst, x *Tensor) {
	const op = "Upsample2x"
	wantF32(op, dst, x)
	if x.Rank() != 4 || !dst.Shape().Equal(Shape{x.Dim(0), x.Dim(1), 2 * x.Dim(2), 2 * x.Dim(3)}) {
		fail(op, "x %v, dst %v: want x [N,C,H,W], dst [N,C,2H,2W]", x.Shape(), dst.Shape())
	}
}

// CheckConcat returns (outer=N, innerA=Ca*rest, innerB=Cb*rest).
func CheckConcat(dst, a, b *Tensor) (int, int, int) {
	const op = "Concat"
	wantF32(op, dst, a, b)
	if a.Rank() < 2 || a.Rank() != b.Rank() || a.Rank() != dst.Rank() {
		fail(op, "a %v, b %v, dst %v must share a rank >= 2", a.Shape(), b.Shape(), dst.Shape())
	}
	want := a.Shape().Clone()
	want[1] += b.Dim(1)
	for i := range a.Rank() {
		if i != 1 && a.Dim(i) != b.Dim(i) {
			fail(op, "a %v and b %v differ outside axis 1", a.Shape(), b.Shape())
		}
	}
	if !dst.Shape().Equal(want) {
		fail(op, "dst %v, want %v", dst.Shape(), want)
	}
	n := a.Dim(0)
	return n, a.Numel() / n, b.Numel() / n
}

// CheckTranspose returns (batch, rows, cols) of x.
func CheckTranspose(dst, x *Tensor) (int, int, int) {
	const op = "Transpose"
	wantF32(op, dst, x)
	b, r, c := batched(op, x)
	want := Shape{b, c, r}
	if x.Rank() == 2 {
		want = Shape{c, r}
	}
	if !dst.Shape().Equal(want) {
		fail(op, "dst %v, want %v", dst.Shape(), want)
	}
	return b, r, c
}

// CheckTimestep returns the batch size, with defaults filled in p.
func CheckTimestep(dst, t *Tensor, p *TimestepParams) int {
	const op = "TimestepEmbedding"
	wantF32(op, dst, t)
	if t.Rank() != 1 || p.Dim <= 0 || !dst.Shape().Equal(Shape{t.Dim(0), p.Dim}) {
		fail(op, "t %v, dst %v: want t [B], dst [B, %d]", t.Shape(), dst.Shape(), p.Dim)
	}
	if p.MaxPeriod == 0 {
		p.MaxPeriod = 10000
	}
	return t.Dim(0)
}
