package cpu

import (
	"math"

	"glimmer/engine"
)

// The normalisation gradients. With x̂ = (x - mean)·rstd over a group (or
// row) of m values and dz the gradient of the affine output z = x̂·γ + β
// (dy, times silu'(z) when SiLU is fused):
//
//	dγ = Σ dz·x̂,  dβ = Σ dz   (over every group position of a channel)
//	dx = rstd·(γ·dz - mean(γ·dz) - x̂·mean(γ·dz·x̂))
//
// Statistics and sums run in float64.

// GroupNormBackward: dx, dgamma, dbeta (any may be nil) of GroupNorm.
func (be *Backend) GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	const op = "GroupNormBackward"
	d := engine.CheckGroupNorm(dy, x, gamma, beta, p)
	engine.CheckF32(op, dx, dgamma, dbeta)
	engine.CheckShape(op, "dx", dx, x.Shape())
	engine.CheckShape(op, "dgamma", dgamma, engine.Shape{d.C})
	engine.CheckShape(op, "dbeta", dbeta, engine.Shape{d.C})
	if dx == nil && dgamma == nil && dbeta == nil {
		return
	}
	xs, gs := buf(x), buf(dy)         // [N, C, spatial]
	gam, bet := buf(gamma), buf(beta) // [C]
	var dxs []float32
	if dx != nil {
		dxs = buf(dx)
	}
	n := x.Dim(0)
	// Per image and channel: Σ dz·x̂ and Σ dz, summed over images below.
	sdzx := make([]float64, n*d.C) // [N, C]
	sdz := make([]float64, n*d.C)  // [N, C]
	be.parallel(d.Rows, 12*d.Cols, func(lo, hi int) {
		var dzBuf []float32
		if p.SiLU {
			dzBuf = make([]float32, d.Cols)
		}
		for r := lo; r < hi; r++ {
			img, grp := r/p.Groups, r%p.Groups
			in := xs[r*d.Cols : (r+1)*d.Cols]   // [C/G, spatial]
			grad := gs[r*d.Cols : (r+1)*d.Cols] // [C/G, spatial]
			mean, variance := meanVar(in)
			rstd := 1 / math.Sqrt(variance+float64(p.Eps))
			dz := grad
			var sumG, sumGX float64 // Σ γ·dz, Σ γ·dz·x̂ over the group
			for cg := range d.ChanPerGroup {
				c := grp*d.ChanPerGroup + cg
				ci := in[cg*d.Spatial : (cg+1)*d.Spatial]
				gi := grad[cg*d.Spatial : (cg+1)*d.Spatial]
				var s, sx float64
				if p.SiLU {
					dzc := dzBuf[cg*d.Spatial : (cg+1)*d.Spatial]
					g64, b64 := float64(gam[c]), float64(bet[c])
					for i, v := range ci {
						xh := (float64(v) - mean) * rstd
						e := float64(gi[i]) * siluDeriv(xh*g64+b64)
						dzc[i] = float32(e)
						s += e
						sx += e * xh
					}
				} else {
					for i, v := range ci {
						xh := (float64(v) - mean) * rstd
						e := float64(gi[i])
						s += e
						sx += e * xh
					}
				}
				sdz[img*d.C+c], sdzx[img*d.C+c] = s, sx
				sumG += float64(gam[c]) * s
				sumGX += float64(gam[c]) * sx
			}
			if dxs == nil {
				continue
			}
			if p.SiLU {
				dz = dzBuf
			}
			out := dxs[r*d.Cols : (r+1)*d.Cols] // [C/G, spatial]
			m := float64(d.Cols)
			mg, mgx := sumG/m, sumGX/m
			for cg := range d.ChanPerGroup {
				c := grp*d.ChanPerGroup + cg
				ci := in[cg*d.Spatial : (cg+1)*d.Spatial]
				zi := dz[cg*d.Spatial : (cg+1)*d.Spatial]
				co := out[cg*d.Spatial : (cg+1)*d.Spatial]
				// dx = a·dz + b·(x - mean) + k with a = rstd·γ,
				// b = -rstd²·mgx and k = -rstd·mg, per channel; x - mean
				// in float32 as the forward takes it.
				a := float32(rstd * float64(gam[c]))
				b := float32(-rstd * rstd * mgx)
				k := float32(-rstd * mg)
				m32 := float32(mean)
				for i, v := range ci {
					co[i] = a*zi[i] + b*(v-m32) + k
				}
			}
		}
	})
	reduceImages(be, dgamma, sdzx, n, d.C)
	reduceImages(be, dbeta, sdz, n, d.C)
}

// reduceImages writes dst[c] = Σ_n parts[n, c], if dst is wanted.
func reduceImages(be *Backend, dst *engine.Tensor, parts []float64, n, c int) {
	if dst == nil {
		return
	}
	out := buf(dst) // [C]
	be.parallel(c, n, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var s float64
			for i := range n {
				s += parts[i*c+ch]
			}
			out[ch] = float32(s)
		}
	})
}

// LayerNormBackward: dx, dgamma, dbeta (any may be nil) of LayerNorm over
// the last axis. Rows are cut into blocks, each summing its own partial
// dgamma and dbeta, which are added at the end.
func (be *Backend) LayerNormBackward(dx, dgamma, dbeta, dy, x, gamma *engine.Tensor, eps float32) {
	const op = "LayerNormBackward"
	d := engine.CheckLayerNorm(dy, x, gamma, gamma)
	engine.CheckF32(op, dx, dgamma, dbeta)
	engine.CheckShape(op, "dx", dx, x.Shape())
	engine.CheckShape(op, "dgamma", dgamma, engine.Shape{d.Cols})
	engine.CheckShape(op, "dbeta", dbeta, engine.Shape{d.Cols})
	if dx == nil && dgamma == nil && dbeta == nil {
		return
	}
	xs, gs, gam := buf(x), buf(dy), buf(gamma) // [rows, cols], [rows, cols], [cols]
	var dxs []float32
	if dx != nil {
		dxs = buf(dx)
	}
	params := dgamma != nil || dbeta != nil
	blocks := min(d.Rows, 4*be.workers)
	var pg, pb []float64 // [blocks, cols] partial dgamma, dbeta
	if params {
		pg = make([]float64, blocks*d.Cols)
		pb = make([]float64, blocks*d.Cols)
	}
	be.each(blocks, 12*d.Cols*d.Rows/max(blocks, 1), func(blk int) {
		r0, r1 := blk*d.Rows/blocks, (blk+1)*d.Rows/blocks
		xhat := make([]float64, d.Cols)
		for r := r0; r < r1; r++ {
			in := xs[r*d.Cols : (r+1)*d.Cols]
			grad := gs[r*d.Cols : (r+1)*d.Cols]
			mean, variance := meanVar(in)
			rstd := 1 / math.Sqrt(variance+float64(eps))
			var sumG, sumGX float64
			for i, v := range in {
				xhat[i] = (float64(v) - mean) * rstd
				gg := float64(gam[i]) * float64(grad[i])
				sumG += gg
				sumGX += gg * xhat[i]
			}
			if params {
				bg, bb := pg[blk*d.Cols:(blk+1)*d.Cols], pb[blk*d.Cols:(blk+1)*d.Cols]
				for i, g := range grad {
					bg[i] += float64(g) * xhat[i]
					bb[i] += float64(g)
				}
			}
			if dxs == nil {
				continue
			}
			out := dxs[r*d.Cols : (r+1)*d.Cols] // [cols]
			mg, mgx := sumG/float64(d.Cols), sumGX/float64(d.Cols)
			for i, g := range grad {
				out[i] = float32(rstd * (float64(gam[i])*float64(g) - mg - xhat[i]*mgx))
			}
		}
	})
	reduceImages(be, dgamma, pg, blocks, d.Cols)
	reduceImages(be, dbeta, pb, blocks, d.Cols)
}
