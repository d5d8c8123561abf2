package conformance

import (
	"math"

	"glimmer/engine"
)

// The reference backward ops: plain float64 loops written from the chain
// rule, one per GradOps op. grad_reference_test.go checks every one of them
// against central finite differences of the forward references in
// reference.go, so the oracle itself is proven.

// refSumTo sums x [xShape] into dstShape (aligned on the right, extents of
// 1 summed over), numpy broadcasting's adjoint.
func refSumTo(x []float64, xShape, dstShape []int) []float64 {
	out := make([]float64, engine.Shape(dstShape).Numel())
	idx := make([]int, len(xShape))
	for i, v := range x {
		r := i
		for ax := len(xShape) - 1; ax >= 0; ax-- {
			idx[ax] = r % xShape[ax]
			r /= xShape[ax]
		}
		out[flatIndex(idx, dstShape)] += v
	}
	return out
}

// refConv2DBackwardData is the adjoint of refConv2D in x: every product
// w[o, c, i, j] · x[n, c, iy, ix] of the forward sum sends dy[n, o, y, x]·w
// back to dx[n, c, iy, ix].
func refConv2DBackwardData(dy, w []float64, s convShape) []float64 {
	dx := make([]float64, s.n*s.c*s.h*s.w)
	s.terms(func(o, xi, wi int) { dx[xi] += dy[o] * w[wi] })
	return dx
}

// refConv2DBackwardWeight is the adjoint of refConv2D in w:
// dw[o, c, i, j] = Σ_{n, y, x} dy[n, o, y, x] · x[n, c, y·sh-ph+i, x·sw-pw+j].
func refConv2DBackwardWeight(x, dy []float64, s convShape) []float64 {
	dw := make([]float64, s.oc*s.c*s.kh*s.kw)
	s.terms(func(o, xi, wi int) { dw[wi] += dy[o] * x[xi] })
	return dw
}

// refSiLUDeriv is d/dz z·σ(z) = σ(z)·(1 + z·(1 - σ(z))).
func refSiLUDeriv(z float64) float64 {
	s := sigmoid(z)
	return s * (1 + z*(1-s))
}

// refGELUDeriv is d/dx x·Φ(x) = Φ(x) + x·φ(x).
func refGELUDeriv(x float64) float64 {
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
}

// refQuickGELUDeriv is d/dx x·σ(ax) = σ(ax) + ax·σ(ax)·(1 - σ(ax)), a = 1.702.
func refQuickGELUDeriv(x float64) float64 {
	s := sigmoid(1.702 * x)
	return s + 1.702*x*s*(1-s)
}

// refReLUDeriv is 1 for x > 0, else 0 (torch's choice at the kink).
func refReLUDeriv(x float64) float64 {
	if x > 0 {
		return 1
	}
	return 0
}

func refTanhDeriv(x float64) float64 {
	t := math.Tanh(x)
	return 1 - t*t
}

// refUnaryBackward is dy ⊙ f'(x).
func refUnaryBackward(dy, x []float64, deriv func(float64) float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = dy[i] * deriv(v)
	}
	return out
}

// refGEGLUBackward: for rows of x [value | gate] (2f values) and dy (f
// values), d value = dy·gelu(gate), d gate = dy·value·gelu'(gate).
func refGEGLUBackward(dy, x []float64, f int) []float64 {
	rows := len(dy) / f
	dx := make([]float64, len(x))
	for r := range rows {
		for i := range f {
			g, val, gate := dy[r*f+i], x[r*2*f+i], x[r*2*f+f+i]
			dx[r*2*f+i] = g * refGELU(gate)
			dx[r*2*f+f+i] = g * val * refGELUDeriv(gate)
		}
	}
	return dx
}

// refUpsample2xBackward sums each 2x2 block of dy [planes, 2h, 2w].
func refUpsample2xBackward(dy []float64, planes, h, w int) []float64 {
	dx := make([]float64, planes*h*w)
	for p := range planes {
		for y := range 2 * h {
			for xo := range 2 * w {
				dx[(p*h+y/2)*w+xo/2] += dy[(p*2*h+y)*2*w+xo]
			}
		}
	}
	return dx
}

// refSplit cuts x [n, ca+cb, rest] into a [n, ca, rest] and b [n, cb, rest].
func refSplit(x []float64, n, ca, cb, rest int) (a, b []float64) {
	for i := range n {
		row := x[i*(ca+cb)*rest : (i+1)*(ca+cb)*rest]
		a = append(a, row[:ca*rest]...)
		b = append(b, row[ca*rest:]...)
	}
	return a, b
}

// refGroupNormBackward differentiates refGroupNorm. Per image and group of
// m values with x̂ = (x - mean)·rstd, z = x̂·gamma + beta, y = z or silu(z):
//
//	dz = dy (· silu'(z))
//	dgamma[c] = Σ dz·x̂,  dbeta[c] = Σ dz    (over images and positions)
//	dx = rstd·(gamma·dz - mean(gamma·dz) - x̂·mean(gamma·dz·x̂))
//
// the means taken over the group.
func refGroupNormBackward(dy, x, gamma, beta []float64, n, c, spatial, groups int, eps float64, silu bool) (dx, dgamma, dbeta []float64) {
	dx = make([]float64, len(x))
	dgamma, dbeta = make([]float64, c), make([]float64, c)
	cpg := c / groups
	per := cpg * spatial
	xhat := make([]float64, per)
	gdz := make([]float64, per) // gamma·dz
	for g := range n * groups {
		vals := x[g*per : (g+1)*per]
		mean, variance := meanVar(vals)
		rstd := 1 / math.Sqrt(variance+eps)
		var sumG, sumGX float64
		for i, v := range vals {
			ch := (g%groups)*cpg + i/spatial
			xhat[i] = (v - mean) * rstd
			dz := dy[g*per+i]
			if silu {
				dz *= refSiLUDeriv(xhat[i]*gamma[ch] + beta[ch])
			}
			dgamma[ch] += dz * xhat[i]
			dbeta[ch] += dz
			gdz[i] = gamma[ch] * dz
			sumG += gdz[i]
			sumGX += gdz[i] * xhat[i]
		}
		mg, mgx := sumG/float64(per), sumGX/float64(per)
		for i := range vals {
			dx[g*per+i] = rstd * (gdz[i] - mg - xhat[i]*mgx)
		}
	}
	return dx, dgamma, dbeta
}

// refLayerNormBackward differentiates refLayerNorm over rows of cols
// values, as refGroupNormBackward with one group per row and gamma per
// column.
func refLayerNormBackward(dy, x, gamma []float64, cols int, eps float64) (dx, dgamma, dbeta []float64) {
	dx = make([]float64, len(x))
	dgamma, dbeta = make([]float64, cols), make([]float64, cols)
	xhat := make([]float64, cols)
	for r := 0; r < len(x); r += cols {
		mean, variance := meanVar(x[r : r+cols])
		rstd := 1 / math.Sqrt(variance+eps)
		var sumG, sumGX float64
		for i := range cols {
			xhat[i] = (x[r+i] - mean) * rstd
			g := dy[r+i]
			dgamma[i] += g * xhat[i]
			dbeta[i] += g
			sumG += gamma[i] * g
			sumGX += gamma[i] * g * xhat[i]
		}
		mg, mgx := sumG/float64(cols), sumGX/float64(cols)
		for i := range cols {
			dx[r+i] = rstd * (gamma[i]*dy[r+i] - mg - xhat[i]*mgx)
		}
	}
	return dx, dgamma, dbeta
}

// refSoftmaxBackward is y ⊙ (dy - Σ_row dy ⊙ y), rows of cols values.
func refSoftmaxBackward(dy, y []float64, cols int) []float64 {
	dx := make([]float64, len(y))
	for r := 0; r < len(y); r += cols {
		var s float64
		for i := range cols {
			s += dy[r+i] * y[r+i]
		}
		for i := range cols {
			dx[r+i] = y[r+i] * (dy[r+i] - s)
		}
	}
	return dx
}

// refAttentionBackward differentiates refAttention. Per batch, head and
// query i, with p = softmax(scale·q_i·K ᵀ) over the visible keys:
//
//	dv_j += p_j·dy_i
//	dp_j  = dy_i·v_j,  Δ = Σ_j p_j·dp_j,  ds_j = p_j·(dp_j - Δ)
//	dq_i  = scale·Σ_j ds_j·k_j,  dk_j += scale·ds_j·q_i
func refAttentionBackward(dy, q, k, v []float64, b, nq, nk, heads, dim int, scale float64, causal bool) (dq, dk, dv []float64) {
	width := heads * dim
	dq, dk, dv = make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
	scores := make([]float64, nk)
	dp := make([]float64, nk)
	for bi := range b {
		for h := range heads {
			for i := range nq {
				keys := nk
				if causal {
					keys = i + 1
				}
				qo := (bi*nq+i)*width + h*dim
				for j := range keys {
					ko := (bi*nk+j)*width + h*dim
					var s float64
					for d := range dim {
						s += q[qo+d] * k[ko+d]
					}
					scores[j] = s * scale
				}
				p := refSoftmax(scores[:keys], keys)
				var delta float64
				for j := range keys {
					ko := (bi*nk+j)*width + h*dim
					var s float64
					for d := range dim {
						s += dy[qo+d] * v[ko+d]
						dv[ko+d] += p[j] * dy[qo+d]
					}
					dp[j] = s
					delta += p[j] * s
				}
				for j := range keys {
					ko := (bi*nk+j)*width + h*dim
					ds := p[j] * (dp[j] - delta) * scale
					for d := range dim {
						dq[qo+d] += ds * k[ko+d]
						dk[ko+d] += ds * q[qo+d]
					}
				}
			}
		}
	}
	return dq, dk, dv
}

// refAdamW is one step of torch.optim.AdamW on float64 state, updated in
// place:
//
//	g = grad·scale;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//	param = param - lr·wd·param - lr·(m/(1-β1^t)) / (sqrt(v/(1-β2^t)) + eps)
//
// torch multiplies param by (1 - lr·wd) first and then subtracts the Adam
// step; both terms use the old param, so this is the same update.
func refAdamW(param, grad, m, v []float64, p engine.AdamWParams) {
	scale := float64(p.GradScale)
	if scale == 0 {
		scale = 1
	}
	b1, b2 := float64(p.Beta1), float64(p.Beta2)
	lr, wd, eps := float64(p.LR), float64(p.WeightDecay), float64(p.Eps)
	bc1 := 1 - math.Pow(b1, float64(p.Step))
	bc2 := 1 - math.Pow(b2, float64(p.Step))
	for i := range param {
		g := grad[i] * scale
		m[i] = b1*m[i] + (1-b1)*g
		v[i] = b2*v[i] + (1-b2)*g*g
		param[i] -= lr*wd*param[i] + lr*(m[i]/bc1)/(math.Sqrt(v[i]/bc2)+eps)
	}
}

// unaryDeriv returns f' for an activation.
func unaryDeriv(op engine.UnaryOp) func(float64) float64 {
	switch op {
	case engine.SiLU:
		return refSiLUDeriv
	case engine.GELU:
		return refGELUDeriv
	case engine.QuickGELU:
		return refQuickGELUDeriv
	case engine.ReLU:
		return refReLUDeriv
	case engine.Tanh:
		return refTanhDeriv
	case engine.Exp:
		return math.Exp
	}
	panic("conformance: no derivative for " + op.String())
}
