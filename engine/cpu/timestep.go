package cpu

import (
	"math"

	"glimmer/engine"
)

// TimestepEmbedding follows diffusers' get_timestep_embedding step by step,
// rounding to float32 where torch's float32 tensors do:
//
//	exponent[i] = -ln(maxPeriod) · i / (half - shift)   i < half = Dim/2
//	freq[i]     = exp(exponent[i])
//	arg[b, i]   = t[b] · freq[i]
//	emb[b]      = [sin(arg), cos(arg)]  ([cos, sin] with FlipSinToCos)
//
// and a trailing zero when Dim is odd. sin and cos of the float32 argument
// are taken in float64 and rounded.
func (be *Backend) TimestepEmbedding(dst, t *engine.Tensor, p engine.TimestepParams) {
	nb := engine.CheckTimestep(dst, t, &p)
	half := p.Dim / 2
	freq := make([]float32, half) // [half]
	negLog := float32(-math.Log(float64(p.MaxPeriod)))
	denom := float32(float64(half) - float64(p.DownscaleFreqShift))
	for i := range freq {
		exponent := negLog * float32(i) / denom
		freq[i] = float32(math.Exp(float64(exponent)))
	}
	ts, ys := buf(t), buf(dst)
	for b := range nb {
		out := ys[b*p.Dim : (b+1)*p.Dim] // [Dim]
		first, second := out[:half], out[half:2*half]
		if p.FlipSinToCos {
			first, second = second, first
		}
		for i, f := range freq {
			arg := float64(ts[b] * f)
			first[i] = float32(math.Sin(arg))
			second[i] = float32(math.Cos(arg))
		}
		if p.Dim%2 == 1 {
			out[p.Dim-1] = 0
		}
	}
}
