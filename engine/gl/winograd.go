package gl

import "glimmer/engine"

// winoScratchMax caps the Winograd products M [16, OC, T], which live in
// the split-K scratch: a convolution whose M would not fit runs as an
// implicit GEMM (the VAE's full-resolution layers would need half a GiB).
// SD 1.5's U-Net needs 42 MB, as much as its split-K partial sums.
const winoScratchMax = 64 << 20

// winoMinTiles: convolutions with fewer output tiles (images x tiles)
// keep the implicit GEMM, whose K of 9·C splits where the Winograd
// GEMMs' C would leave the GPU idle (16x16 latents and smaller).
const winoMinTiles = 512

// useWinograd reports whether Conv2D runs d by winograd: 3x3, stride 1,
// padding 1, when b.winogradMode allows (0 never, 1 at sizes it is meant
// for, 2 whenever the shape allows: tests).
func (b *Backend) useWinograd(d engine.Conv2DDims) bool {
	if b.winogradMode == 0 || d.KH != 3 || d.KW != 3 || d.P.StrideH != 1 || d.P.StrideW != 1 || d.P.PadH != 1 || d.P.PadW != 1 {
		return false
	}
	if b.winogradMode == 2 {
		return true
	}
	t := d.N * ceilDiv(d.OH, 2) * ceilDiv(d.OW, 2)
	return t >= winoMinTiles && 16*d.OC*t*4 <= winoScratchMax
}

// winograd runs a 3x3, stride 1, padding 1 convolution as Winograd
// F(2x2, 3x3): winograd_gemm.comp forms the 16 products M [16, OC, T]
// (T = N·⌈H/2⌉·⌈W/2⌉ tiles) in the split-K scratch, as SPLITK partial
// sums when the plan splits K, and winograd_output.comp adds the partials,
// transforms them back and adds bias and residual.
func (b *Backend) winograd(dst, x, w, bias, res *engine.Tensor, d engine.Conv2DDims) {
	th, tw := ceilDiv(d.OH, 2), ceilDiv(d.OW, 2)
	tiles := d.N * th * tw
	total := 16 * d.OC * tiles
	plan := b.gemmPlan(d.OC, tiles, d.C, 16)
	part := b.splitScratch(plan.Split * total)
	def := plan.defines(defines{"W_F16": isF16(w)})
	b.dispatch("winograd_gemm", def, plan.groups(d.OC, tiles, 16), []*buffer{part, buf(x), buf(w)}, func(u uniforms) {
		u.u("u_M", uint32(d.OC))
		u.u("u_N", uint32(tiles))
		u.u("u_K", uint32(d.C))
		u.i("u_H", d.H)
		u.i("u_W", d.W)
		u.i("u_TW", tw)
		u.i("u_TT", th*tw)
		if plan.Split > 1 {
			u.u("u_kchunk", uint32(plan.KChunk))
			u.u("u_partStride", uint32(total))
		}
	})
	odef := defines{"SPLITK": plan.Split}
	bufs := withEpilogue(odef, []*buffer{buf(dst), part}, bias, res)
	n := tiles * d.OC
	b.dispatch("winograd_output", odef, elemGroups(n), bufs, func(u uniforms) {
		u.u("u_OC", uint32(d.OC))
		u.u("u_T", uint32(tiles))
		u.u("u_TW", uint32(tw))
		u.u("u_TT", uint32(th*tw))
		u.u("u_H", uint32(d.OH))
		u.u("u_W", uint32(d.OW))
		u.u("u_n", uint32(n))
	})
}
