package gl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
)

// TestGroupNormChunks holds GroupNorm to a float64 reference on every
// element when rows are split into chunks (groupnorm_stats.comp, then
// groupnorm_apply.comp): the backend's own choice on rows long enough to
// split (VAE-decoder-like, 4 channels of 4100 values a group, so the
// last apply work group and chunk are partial), forced uneven chunk
// counts, and one work group a row, with and without SiLU, F32 and F16
// affine parameters, out of place and in place (dst is the input). The data has a mean of 3 so a variance taken about
// the wrong mean shows. Outputs start as NaN so unwritten elements fail.
// Bound: NMSE 1e-10, as the conformance suite's norms (fp32 statistics
// over ~16,000 values sit near 1e-13).
func TestGroupNormChunks(t *testing.T) {
	b := openGL(t)
	r := rand.New(rand.NewPCG(9, 10))
	const n, c, g, sp = 2, 8, 2, 4100
	const eps = 1e-5
	xv := make([]float32, n*c*sp)
	for i := range xv {
		xv[i] = float32(3 + 2*r.NormFloat64())
	}
	x := b.New(engine.F32, n, c, sp) // [N, C, S]
	b.Write(x, xv)
	length := c / g * sp
	for _, tc := range []struct {
		chunks  int // forced, or 0 for the backend's choice
		silu    bool
		dtype   engine.DType
		inPlace bool // dst is x (a copy of it)
	}{{0, true, engine.F16, false}, {0, false, engine.F32, false}, {3, true, engine.F32, false}, {7, false, engine.F16, false},
		{-1, true, engine.F32, false}, {0, true, engine.F16, true}, {-1, false, engine.F32, true}} {
		b.gnChunks = tc.chunks
		chunks, _ := b.groupNormChunks(n*g, length)
		t.Run(fmt.Sprintf("chunks%d_silu%v_%s_inplace%v", chunks, tc.silu, tc.dtype, tc.inPlace), func(t *testing.T) {
			if tc.chunks == 0 && chunks < 2 {
				t.Fatalf("rows of %d values were not split", length)
			}
			gamma, gv := uploaded(t, b, r, tc.dtype, c) // [C]
			beta, bv := uploaded(t, b, r, tc.dtype, c)  // [C]
			dst := b.New(engine.F32, n, c, sp)          // [N, C, S]
			nan := make([]float32, dst.Numel())
			for i := range nan {
				nan[i] = float32(math.NaN())
			}
			b.Write(dst, nan)
			src := x
			if tc.inPlace {
				b.Write(dst, xv)
				src = dst
			}
			b.GroupNorm(dst, src, gamma, beta, engine.GroupNormParams{Groups: g, Eps: eps, SiLU: tc.silu})
			got, err := b.Read(dst)
			if err != nil {
				t.Fatal(err)
			}
			var num, den float64
			for row := range n * g {
				base := row * length
				var mean, v float64
				for i := range length {
					mean += float64(xv[base+i])
				}
				mean /= float64(length)
				for i := range length {
					d := float64(xv[base+i]) - mean
					v += d * d
				}
				rstd := 1 / math.Sqrt(v/float64(length)+float64(float32(eps)))
				for i := range length {
					ch := row%g*(c/g) + i/sp
					want := (float64(xv[base+i])-mean)*rstd*float64(gv[ch]) + float64(bv[ch])
					if tc.silu {
						want /= 1 + math.Exp(-want)
					}
					d := float64(got[base+i]) - want
					num += d * d
					den += want * want
				}
			}
			if e := num / den; !(e <= 1e-10) {
				t.Fatalf("NMSE %.3g against float64 over %d rows of %d (bound 1e-10)", e, n*g, length)
			}
			b.Free(gamma)
			b.Free(beta)
			b.Free(dst)
		})
	}
	b.gnChunks = 0
	b.Free(x)
}
