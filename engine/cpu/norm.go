package cpu

import (
	"math"

	"glimmer/engine"
)

// meanVar returns the mean and biased variance of xs, summed in float64
// in two passes (mean first, then squared deviations) so that neither a
// large mean nor a long row loses precision.
func meanVar(xs []float32) (mean, variance float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	var s float64
	for _, v := range xs {
		s += float64(v)
	}
	mean = s / float64(len(xs))
	var ss float64
	for _, v := range xs {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, ss / float64(len(xs))
}

// GroupNorm: per image n and group g, y = (x - mean) / sqrt(var + eps) ·
// gamma[c] + beta[c] over the group's C/G channels and all spatial
// positions; then SiLU if asked.
func (be *Backend) GroupNorm(dst, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	d := engine.CheckGroupNorm(dst, x, gamma, beta, p)
	xs, ys := buf(x), buf(dst)      // [N, C, spatial]
	gs, bs := buf(gamma), buf(beta) // [C]
	be.each(d.Rows, 8*d.Cols, func(r int) {
		// Row r is image r/G, group r%G: a contiguous run of Cols values.
		grp := r % p.Groups
		in := xs[r*d.Cols : (r+1)*d.Cols]  // [C/G, spatial]
		out := ys[r*d.Cols : (r+1)*d.Cols] // [C/G, spatial]
		if p.Shift != nil {
			// x + shift, rounded as a broadcast Binary Add would be.
			sh := buf(p.Shift)[(p.ShiftRow+r/p.Groups)*d.C+grp*d.ChanPerGroup:] // [C/G]
			sum := make([]float32, d.Cols)                                      // [C/G, spatial]
			for i, v := range in {
				sum[i] = v + sh[i/d.Spatial]
			}
			in = sum
		}
		mean, variance := meanVar(in)
		rstd := 1 / math.Sqrt(variance+float64(p.Eps))
		m := float32(mean)
		for cg := range d.ChanPerGroup {
			c := grp*d.ChanPerGroup + cg
			scale, shift := float32(float64(gs[c])*rstd), bs[c]
			ci := in[cg*d.Spatial : (cg+1)*d.Spatial]
			co := out[cg*d.Spatial : (cg+1)*d.Spatial]
			for i, v := range ci {
				co[i] = (v-m)*scale + shift
			}
			if p.SiLU {
				silu(co, co)
			}
		}
	})
}

// LayerNorm: each row along the last axis becomes (x - mean) /
// sqrt(var + eps) · gamma + beta.
func (be *Backend) LayerNorm(dst, x, gamma, beta *engine.Tensor, eps float32) {
	d := engine.CheckLayerNorm(dst, x, gamma, beta)
	xs, ys := buf(x), buf(dst)      // [rows, cols]
	gs, bs := buf(gamma), buf(beta) // [cols]
	be.each(d.Rows, 8*d.Cols, func(r int) {
		in := xs[r*d.Cols : (r+1)*d.Cols]
		out := ys[r*d.Cols : (r+1)*d.Cols]
		mean, variance := meanVar(in)
		m, rstd := float32(mean), float32(1/math.Sqrt(variance+float64(eps)))
		for i, v := range in {
			out[i] = (v-m)*rstd*gs[i] + bs[i]
		}
	})
}

// Softmax along the last axis: exp(x - max) / Σ exp(x - max), the
// exponentials taken and summed in float64. dst may be x.
func (be *Backend) Softmax(dst, x *engine.Tensor) {
	d := engine.CheckSoftmax(dst, x)
	xs, ys := buf(x), buf(dst) // [rows, cols]
	be.each(d.Rows, 24*d.Cols, func(r int) {
		in := xs[r*d.Cols : (r+1)*d.Cols]
		out := ys[r*d.Cols : (r+1)*d.Cols]
		softmaxRow(out, in)
	})
}

// softmaxRow writes softmax(in) to out; out may be in.
func softmaxRow(out, in []float32) {
	if len(in) == 0 {
		return
	}
	out = out[:len(in)]
	hi := in[0]
	for _, v := range in {
		hi = max(hi, v)
	}
	var sum float64
	for i, v := range in {
		e := math.Exp(float64(v - hi))
		sum += e
		out[i] = float32(e)
	}
	inv := float32(1 / sum)
	for i := range out {
		out[i] *= inv
	}
}
