package cpu

import (
	"fmt"
	"math"

	"glimmer/engine"
)

// The activations are evaluated in float64 and rounded once, so they are as
// exact as float32 allows.

func silu(out, in []float32) {
	out = out[:len(in)]
	for i, v := range in {
		x := float64(v)
		out[i] = float32(x / (1 + math.Exp(-x)))
	}
}

// geluExact is x·Φ(x) with the exact erf, as torch's default GELU.
func geluExact(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

func gelu(out, in []float32) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = float32(geluExact(float64(v)))
	}
}

// quickGELU is x·sigmoid(1.702x), the 1.702 product rounded to float32 as
// torch computes it.
func quickGELU(out, in []float32) {
	out = out[:len(in)]
	for i, v := range in {
		z := float64(1.702 * v)
		out[i] = float32(float64(v) / (1 + math.Exp(-z)))
	}
}

func relu(out, in []float32) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = max(v, 0)
	}
}

func tanh(out, in []float32) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = float32(math.Tanh(float64(v)))
	}
}

func exp(out, in []float32) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = float32(math.Exp(float64(v)))
	}
}

// Unary applies an activation elementwise; dst may be x.
func (be *Backend) Unary(dst, x *engine.Tensor, op engine.UnaryOp) {
	n := engine.CheckUnary(dst, x)
	var f func(out, in []float32)
	switch op {
	case engine.SiLU:
		f = silu
	case engine.GELU:
		f = gelu
	case engine.QuickGELU:
		f = quickGELU
	case engine.ReLU:
		f = relu
	case engine.Tanh:
		f = tanh
	case engine.Exp:
		f = exp
	default:
		panic(fmt.Sprintf("cpu: Unary: unknown op %d", op))
	}
	xs, ys := buf(x), buf(dst) // [n]
	be.parallel(n, 20, func(lo, hi int) { f(ys[lo:hi], xs[lo:hi]) })
}

// GEGLU: x [rows, 2F] splits into value x[:, :F] and gate x[:, F:];
// dst [rows, F] = value · gelu(gate).
func (be *Backend) GEGLU(dst, x *engine.Tensor) {
	rows, f := engine.CheckGEGLU(dst, x)
	xs, ys := buf(x), buf(dst)
	be.each(rows, 20*f, func(r int) {
		value := xs[2*r*f : 2*r*f+f]
		gate := xs[2*r*f+f : 2*r*f+2*f]
		out := ys[r*f : r*f+f] // [F]
		for i, g := range gate {
			out[i] = float32(float64(value[i]) * geluExact(float64(g)))
		}
	})
}

// gegluPairs is GEGLU on x [rows, 2F] whose value and gate are
// interleaved (MatMulParams.GEGLU): dst [rows, F] = x[:, 2j]·gelu(x[:, 2j+1]).
func (be *Backend) gegluPairs(dst, x *engine.Tensor) {
	xs, ys := buf(x), buf(dst)
	be.parallel(len(ys), 20, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ys[i] = float32(float64(xs[2*i]) * geluExact(float64(xs[2*i+1])))
		}
	})
}

// Scale: dst = x·s + c; dst may be x.
func (be *Backend) Scale(dst, x *engine.Tensor, s, c float32) {
	n := engine.CheckScale(dst, x)
	xs, ys := buf(x), buf(dst)
	be.parallel(n, 2, func(lo, hi int) {
		in, out := xs[lo:hi], ys[lo:hi]
		for i, v := range in {
			out[i] = v*s + c
		}
	})
}

// Binary: dst = a op b with numpy broadcasting. The destination is walked
// as rows along its last axis; CheckBinary's strides (0 on broadcast axes)
// locate each row's operands. dst may be a or b when it has their shape.
func (be *Backend) Binary(dst, a, b *engine.Tensor, op engine.BinaryOp) {
	d := engine.CheckBinary(dst, a, b)
	if op > engine.Sub {
		panic(fmt.Sprintf("cpu: Binary: unknown op %d", op))
	}
	const last = engine.MaxRank - 1
	as, bs, ys := buf(a), buf(b), buf(dst)
	width := d.Shape[last]
	if width == 0 {
		return
	}
	sa, sb := d.StrideA[last], d.StrideB[last]
	be.parallel(d.N/width, 2*width, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			// Offsets of row r's first element in a and b.
			oa, ob, rest := 0, 0, r
			for ax := last - 1; ax >= 0; ax-- {
				i := rest % d.Shape[ax]
				rest /= d.Shape[ax]
				oa += i * d.StrideA[ax]
				ob += i * d.StrideB[ax]
			}
			binaryRow(ys[r*width:(r+1)*width], as[oa:], bs[ob:], sa, sb, op)
		}
	})
}

// binaryRow computes out[j] = a[j*sa] op b[j*sb], with sa, sb 0 or 1.
func binaryRow(out, a, b []float32, sa, sb int, op engine.BinaryOp) {
	n := len(out)
	switch {
	case sa == 1 && sb == 1:
		a, b = a[:n], b[:n]
		switch op {
		case engine.Add:
			for j := range out {
				out[j] = a[j] + b[j]
			}
		case engine.Mul:
			for j := range out {
				out[j] = a[j] * b[j]
			}
		case engine.Sub:
			for j := range out {
				out[j] = a[j] - b[j]
			}
		}
	case sa == 1 && sb == 0:
		a, y := a[:n], b[0]
		switch op {
		case engine.Add:
			for j := range out {
				out[j] = a[j] + y
			}
		case engine.Mul:
			for j := range out {
				out[j] = a[j] * y
			}
		case engine.Sub:
			for j := range out {
				out[j] = a[j] - y
			}
		}
	default: // a broadcast along the row (b possibly too)
		for j := range out {
			x, y := a[j*sa], b[j*sb]
			switch op {
			case engine.Add:
				out[j] = x + y
			case engine.Mul:
				out[j] = x * y
			case engine.Sub:
				out[j] = x - y
			}
		}
	}
}
