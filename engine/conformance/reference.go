package conformance

import "math"

// The reference ops: plain float64 loops that follow each op's definition
// as literally as possible. They share nothing with any backend, and their
// rounding error (about 1e-16 relative) is negligible next to float32's.

// refMatMul returns alpha·op(a)·op(b) + bias for each batch, [batch, m, n].
// a is [batch, m, k] ([batch, k, m] when transA); b is [k, n] ([n, k]
// when transB) per batch, one matrix for all batches when shared.
func refMatMul(a, b, bias []float64, batch, m, n, k int, transA, transB, shared bool, alpha float64) []float64 {
	out := make([]float64, batch*m*n)
	for bi := range batch {
		aBase := bi * m * k
		bBase := bi * k * n
		if shared {
			bBase = 0
		}
		for i := range m {
			for j := range n {
				var s float64
				for p := range k {
					av := a[aBase+i*k+p]
					if transA {
						av = a[aBase+p*m+i]
					}
					bv := b[bBase+p*n+j]
					if transB {
						bv = b[bBase+j*k+p]
					}
					s += av * bv
				}
				s *= alpha
				if bias != nil {
					s += bias[j]
				}
				out[(bi*m+i)*n+j] = s
			}
		}
	}
	return out
}

// convShape is a Conv2D problem: input [n, c, h, w], kernel [oc, c, kh, kw].
type convShape struct {
	n, c, h, w, oc, kh, kw, sh, sw, ph, pw int
}

func (s convShape) outH() int { return (s.h+2*s.ph-s.kh)/s.sh + 1 }
func (s convShape) outW() int { return (s.w+2*s.pw-s.kw)/s.sw + 1 }

// refConv2D is torch's conv2d (cross-correlation, zero padding):
// out[n, o, y, x] = bias[o] + Σ_{c, i, j} w[o, c, i, j] ·
// in[n, c, y·sh - ph + i, x·sw - pw + j].
func refConv2D(x, w, bias []float64, s convShape) []float64 {
	oh, ow := s.outH(), s.outW()
	out := make([]float64, s.n*s.oc*oh*ow)
	if bias != nil {
		for i := range out {
			out[i] = bias[i/(oh*ow)%s.oc]
		}
	}
	s.terms(func(o, xi, wi int) { out[o] += w[wi] * x[xi] })
	return out
}

// terms calls f for every product w[wi]·x[xi] that the convolution adds
// to output element o, in the order the forward sums them (per output:
// input channel, kernel row, kernel column; padding skipped). The forward
// and both adjoints are this one walk.
func (s convShape) terms(f func(o, xi, wi int)) {
	oh, ow := s.outH(), s.outW()
	for n := range s.n {
		for oc := range s.oc {
			for y := range oh {
				for xo := range ow {
					o := ((n*s.oc+oc)*oh+y)*ow + xo
					for c := range s.c {
						for i := range s.kh {
							iy := y*s.sh - s.ph + i
							if iy < 0 || iy >= s.h {
								continue
							}
							for j := range s.kw {
								ix := xo*s.sw - s.pw + j
								if ix < 0 || ix >= s.w {
									continue
								}
								f(o, ((n*s.c+c)*s.h+iy)*s.w+ix, ((oc*s.c+c)*s.kh+i)*s.kw+j)
							}
						}
					}
				}
			}
		}
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func refSiLU(x float64) float64      { return x * sigmoid(x) }
func refGELU(x float64) float64      { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
func refQuickGELU(x float64) float64 { return x * sigmoid(1.702*x) }
func refReLU(x float64) float64      { return max(x, 0) }

// refGroupNorm normalises x [n, c, spatial] over groups of c/groups
// channels: (x - mean)/sqrt(var + eps)·gamma[c] + beta[c], variance biased;
// then SiLU when silu.
func refGroupNorm(x, gamma, beta []float64, n, c, spatial, groups int, eps float64, silu bool) []float64 {
	out := make([]float64, len(x))
	per := c / groups * spatial // elements in one group
	for g := range n * groups {
		vals := x[g*per : (g+1)*per]
		mean, variance := meanVar(vals)
		for i, v := range vals {
			ch := (g%groups)*(c/groups) + i/spatial
			y := (v-mean)/math.Sqrt(variance+eps)*gamma[ch] + beta[ch]
			if silu {
				y = refSiLU(y)
			}
			out[g*per+i] = y
		}
	}
	return out
}

func meanVar(v []float64) (mean, variance float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(v))
}

// refLayerNorm normalises each row of cols values.
func refLayerNorm(x, gamma, beta []float64, cols int, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x); r += cols {
		mean, variance := meanVar(x[r : r+cols])
		for i := range cols {
			out[r+i] = (x[r+i]-mean)/math.Sqrt(variance+eps)*gamma[i] + beta[i]
		}
	}
	return out
}

// refSoftmax is exp(x - max)/Σ exp(x - max) along rows of cols values.
func refSoftmax(x []float64, cols int) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x); r += cols {
		row := x[r : r+cols]
		hi := math.Inf(-1)
		for _, v := range row {
			hi = math.Max(hi, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(v - hi)
		}
		for i, v := range row {
			out[r+i] = math.Exp(v-hi) / sum
		}
	}
	return out
}

// refAttention computes softmax(q kᵀ·scale) v per batch and head with the
// whole score matrix; head h of a token is features h*dim .. h*dim+dim-1.
func refAttention(q, k, v []float64, b, nq, nk, heads, dim int, scale float64, causal bool) []float64 {
	width := heads * dim
	out := make([]float64, b*nq*width)
	scores := make([]float64, nk)
	for bi := range b {
		for h := range heads {
			for i := range nq {
				keys := nk
				if causal {
					keys = i + 1
				}
				qi := q[(bi*nq+i)*width+h*dim:][:dim]
				for j := range keys {
					kj := k[(bi*nk+j)*width+h*dim:][:dim]
					var s float64
					for d := range dim {
						s += qi[d] * kj[d]
					}
					scores[j] = s * scale
				}
				p := refSoftmax(scores[:keys], keys)
				for d := range dim {
					var s float64
					for j := range keys {
						s += p[j] * v[(bi*nk+j)*width+h*dim+d]
					}
					out[(bi*nq+i)*width+h*dim+d] = s
				}
			}
		}
	}
	return out
}

// refGEGLU splits rows of 2f values into value and gate halves:
// value·gelu(gate).
func refGEGLU(x []float64, f int) []float64 {
	rows := len(x) / (2 * f)
	out := make([]float64, rows*f)
	for r := range rows {
		for i := range f {
			out[r*f+i] = x[r*2*f+i] * refGELU(x[r*2*f+f+i])
		}
	}
	return out
}

// refBroadcast applies op to a and b broadcast numpy-style to out's shape:
// shapes aligned on the right, extents of 1 repeated.
func refBroadcast(a []float64, aShape []int, b []float64, bShape []int, outShape []int, op func(x, y float64) float64) []float64 {
	n := 1
	for _, d := range outShape {
		n *= d
	}
	out := make([]float64, n)
	idx := make([]int, len(outShape))
	for i := range n {
		// Unravel i into idx, last axis fastest.
		r := i
		for ax := len(outShape) - 1; ax >= 0; ax-- {
			idx[ax] = r % outShape[ax]
			r /= outShape[ax]
		}
		out[i] = op(a[flatIndex(idx, aShape)], b[flatIndex(idx, bShape)])
	}
	return out
}

// flatIndex locates the element of a tensor of shape s that the output
// index idx reads under broadcasting.
func flatIndex(idx, s []int) int {
	off := len(idx) - len(s)
	flat := 0
	for ax, ext := range s {
		i := idx[off+ax]
		if ext == 1 {
			i = 0
		}
		flat = flat*ext + i
	}
	return flat
}

// refUpsample2x repeats each pixel of x [planes, h, w] into a 2x2 block.
func refUpsample2x(x []float64, planes, h, w int) []float64 {
	out := make([]float64, planes*4*h*w)
	for p := range planes {
		for y := range 2 * h {
			for xo := range 2 * w {
				out[(p*2*h+y)*2*w+xo] = x[(p*h+y/2)*w+xo/2]
			}
		}
	}
	return out
}

// refConcat joins a [n, ca, rest] and b [n, cb, rest] along axis 1.
func refConcat(a, b []float64, n, ca, cb, rest int) []float64 {
	out := make([]float64, 0, len(a)+len(b))
	for i := range n {
		out = append(out, a[i*ca*rest:(i+1)*ca*rest]...)
		out = append(out, b[i*cb*rest:(i+1)*cb*rest]...)
	}
	return out
}

// refTranspose swaps the last two axes of x [batch, r, c].
func refTranspose(x []float64, batch, r, c int) []float64 {
	out := make([]float64, len(x))
	for bi := range batch {
		for i := range r {
			for j := range c {
				out[(bi*c+j)*r+i] = x[(bi*r+i)*c+j]
			}
		}
	}
	return out
}

// refTimestep is diffusers' get_timestep_embedding with float32 tensors:
// the exponent, the frequency and the argument t·freq are each rounded to
// float32 as torch computes them; sin and cos of that argument are exact.
func refTimestep(ts []float64, dim int, flip bool, shift, maxPeriod float64) []float64 {
	half := dim / 2
	out := make([]float64, len(ts)*dim)
	for b, t := range ts {
		for i := range half {
			exponent := float32(float32(-math.Log(maxPeriod)) * float32(i))
			exponent = float32(exponent / float32(float64(half)-shift))
			freq := float32(math.Exp(float64(exponent)))
			arg := float64(float32(t) * freq)
			sin, cos := math.Sin(arg), math.Cos(arg)
			if flip {
				sin, cos = cos, sin
			}
			out[b*dim+i] = sin
			out[b*dim+half+i] = cos
		}
		// An odd dim leaves out[b*dim+dim-1] at zero.
	}
	return out
}
