package gl

import "glimmer/engine"

// winoUMax and winoVMax cap Winograd's scratch arrays in bytes: the
// transformed filters U, and the transformed input V and the products M
// (each); larger convolutions run in chunks of output channels and of
// tiles. U's 128 MiB hold the 16x16 latents' 1280x1280 filters, F(2x2,
// 3x3), and the 32x32 latents' 1280->640, F(4x4, 3x3), in one chunk each
// (the most SD 1.5 allocates is that one's 112.5 MiB). On an H100 (p22),
// 64 -> 100 MiB took the image 1133 -> 1119 ms, --offload 1171 ->
// 1139-1155 ms, and 100 -> 113-128 MiB took --offload to 1127-1133 ms, but
// 2.6 MB under 2 GiB; since the U-Net's activations are planned into an
// arena (nn.Pool.Plan, 97 MB less, p23) it fits with room. The VAE
// decoder at 512x512 fills V and M in chunks of 5,960 tiles. Caps of 128
// MB for all three save more chunks (the U-Net's 3x3 convolutions 22.2 ->
// 20.2 ms a step, the decode 47 -> 42 ms, H100), but the memory counts
// against --offload's 2 GiB (docs/perf-notes.md). The backend's winoUCap
// and winoVCap start at these.
const (
	winoUMax = 128 << 20
	winoVMax = 48 << 20
)

// useWinograd reports whether Conv2D runs d by convWinograd: 3x3, stride
// 1, padding 1, unless b.winograd is off (GLIMMER_GL_WINOGRAD=0), when the
// scratch cap holds at least one output channel's transformed filters,
// and unless Conv2D folds the images of a map under b.winoMinPixels
// (GLIMMER_GL_WINO_MINPX, default 128) into one GEMM: SD 1.5's 8x8
// latents with CFG, 1280 channels, take 0.166 ms a call that way against
// 0.270 by Winograd F(2x2, 3x3) (H100, p13). Every other 3x3 convolution
// of SD 1.5 (U-Net and VAE) is faster by Winograd than as an implicit
// GEMM (16x16 latents folded: 0.576 against 0.446 ms); docs/perf-notes.md.
func (b *Backend) useWinograd(d engine.Conv2DDims) bool {
	if !b.winograd || d.KH != 3 || d.KW != 3 || d.P.StrideH != 1 || d.P.StrideW != 1 || d.P.PadH != 1 || d.P.PadW != 1 {
		return false
	}
	if b.convFold(d) && d.OH*d.OW < b.winoMinPixels {
		return false
	}
	_, _, ok := b.winoChunks(d, 2)
	return ok
}

// winoTile picks the output tile's side for d: 4, F(4x4, 3x3) (36
// products per 16 outputs where F(2x2, 3x3) takes 16 per 4), when
// b.winoF4 allows (GLIMMER_GL_WINO_F4: 0 never; 1, the default, for
// convolutions marked Fast from winoF4MinTiles tiles; 2 whenever it fits)
// and its chunks fit; else 2. It is less exact: forced on every
// convolution, the U-Net fixtures' outputs move from at most 8.7e-6 to
// 1.7e-5 off diffusers' (tolerance 1e-4), the VAE decoder's from 6.9e-6
// to 2.6e-5 (bound 1.7e-4), so only inference asks for it
// (Conv2DParams.Fast: unet.FastConvs, vae.FastDecode); training keeps
// F(2x2, 3x3). On the H100 it pays from 128 tiles of 4x4 (the VAE
// decoder from 64x64; SD 1.5's 64x64 and 32x32 latents at batch 2): VAE
// decode 80 -> 70-74 ms in one call (docs/perf-notes.md, p10).
func (b *Backend) winoTile(d engine.Conv2DDims) int {
	if b.winoF4 == 0 || b.winoF4 == 1 && !d.P.Fast {
		return 2
	}
	if _, _, ok := b.winoChunks(d, 4); !ok {
		return 2
	}
	if b.winoF4 == 2 || winoTiles(d, 4) >= winoF4MinTiles {
		return 4
	}
	return 2
}

// winoF4MinTiles: F(4x4, 3x3) (mode 1) where it makes at least this many
// tiles. SD 1.5's 16x16 latents (32 tiles) ran slower than F(2x2, 3x3):
// 0.46 -> 0.62 ms for 1280 channels.
const winoF4MinTiles = 128

// winoTiles is the number of m x m output tiles over all images.
func winoTiles(d engine.Conv2DDims, m int) int {
	return d.N * ceilDiv(d.OH, m) * ceilDiv(d.OW, m)
}

// winoChunks picks, for output tiles of side m, the output channels (occ)
// and tiles (tc, a multiple of 4 unless it is all of them) each pass
// handles, in chunks as even as the caps allow, so that U [ξ, occ, CP]
// stays within b.winoUCap bytes and V [ξ, CP, tc] and M [ξ, occ, tc]
// within b.winoVCap, ξ = (m+2)² positions.
func (b *Backend) winoChunks(d engine.Conv2DDims, m int) (occ, tc int, ok bool) {
	ulim, vlim := b.winoUCap, b.winoVCap
	xi := (m + 2) * (m + 2)
	cp := ceilDiv(d.C, 4) * 4
	occ = even(d.OC, ulim/(xi*cp*4), 1)
	if occ == 0 {
		return 0, 0, false
	}
	tc = even(winoTiles(d, m), min(vlim/(xi*cp*4), vlim/(xi*occ*4)), 4)
	return occ, tc, tc > 0
}

// even splits n into as few chunks of at most most as it can, of equal
// size rounded up to a multiple of unit, and returns that size (n when
// one chunk takes all; 0 when most is below unit).
func even(n, most, unit int) int {
	if n <= most {
		return n
	}
	if most < unit {
		return 0
	}
	c := ceilDiv(ceilDiv(n, ceilDiv(n, most)), unit) * unit
	if c > most {
		c = most / unit * unit
	}
	return c
}

// convWinograd runs a 3x3, stride 1, padding 1 convolution as Winograd
// F(2x2, 3x3) or F(4x4, 3x3) (winograd_gemm.comp; winoTile picks), chunk
// by chunk of output channels and then of tiles: winograd_filter.comp
// forms U [ξ, occ, CP] of the channels' filters, winograd_input.comp
// V [ξ, CP, TP] of the tiles (once for all channel chunks when one chunk
// holds every tile), winograd_gemm.comp multiplies them into
// M [ξ, occ, TP] in the split-K scratch (as partial sums when the plan
// splits K), and winograd_output.comp adds the partials, transforms them
// back and adds bias and residual.
func (b *Backend) convWinograd(dst, x, w, bias, res *engine.Tensor, d engine.Conv2DDims) {
	m := b.winoTile(d)
	xi := (m + 2) * (m + 2)
	occMax, tcMax, _ := b.winoChunks(d, m)
	th, tw := ceilDiv(d.OH, m), ceilDiv(d.OW, m)
	tiles := winoTiles(d, m)
	cp := ceilDiv(d.C, 4) * 4
	lim := b.winoVCap
	u := b.growScratch(&b.winoU, xi*occMax*cp, "Winograd filter scratch")
	v := b.growScratch(&b.winoV, xi*cp*ceilDiv(tcMax, 4)*4, "Winograd input scratch")
	for oc0 := 0; oc0 < d.OC; oc0 += occMax {
		occ := min(occMax, d.OC-oc0)
		b.dispatch("winograd_filter", defines{"W_F16": isF16(w), "WINO_M": m}, elemGroups(occ*cp), []*buffer{u, buf(w)}, func(un uniforms) {
			un.u("u_C", uint32(d.C))
			un.u("u_CP", uint32(cp))
			un.u("u_oc0", uint32(oc0))
			un.u("u_OCC", uint32(occ))
			un.u("u_n", uint32(occ*cp))
		})
		for t0 := 0; t0 < tiles; t0 += tcMax {
			tc := min(tcMax, tiles-t0)
			tp := ceilDiv(tc, 4) * 4
			if oc0 == 0 || tc < tiles {
				b.dispatch("winograd_input", defines{"WINO_M": m}, elemGroups(cp*tp), []*buffer{v, buf(x)}, func(un uniforms) {
					un.u("u_C", uint32(d.C))
					un.u("u_CP", uint32(cp))
					un.i("u_H", d.H)
					un.i("u_W", d.W)
					un.u("u_TW", uint32(tw))
					un.u("u_TT", uint32(th*tw))
					un.u("u_t0", uint32(t0))
					un.u("u_TC", uint32(tc))
					un.u("u_TP", uint32(tp))
					un.u("u_n", uint32(cp*tp))
				})
			}
			mTotal := xi * occ * tp
			plan := b.gemmPlanWithin(occ, tp, cp, xi, min(lim, b.splitCap))
			part := b.splitScratch(plan.Split * mTotal)
			gdef := plan.defines(defines{})
			b.dispatch("winograd_gemm", gdef, plan.groups(occ, tp, xi), []*buffer{part, u, v}, func(un uniforms) {
				un.u("u_M", uint32(occ))
				un.u("u_N", uint32(tp))
				un.u("u_K", uint32(cp))
				un.u("u_partStride", uint32(mTotal))
				if plan.Split > 1 {
					un.u("u_kchunk", uint32(plan.KChunk))
				}
			})
			odef := defines{"SPLITK": plan.Split, "WINO_M": m, "OUTV": 1}
			if b.winoOutVec && d.OW%m == 0 {
				odef["OUTV"] = m // whole vec2 or vec4 rows
			}
			bufs := withEpilogue(odef, []*buffer{buf(dst), part}, bias, res)
			n := tc * occ
			b.dispatch("winograd_output", odef, elemGroups(n), bufs, func(un uniforms) {
				un.u("u_OC", uint32(d.OC))
				un.u("u_oc0", uint32(oc0))
				un.u("u_OCC", uint32(occ))
				un.u("u_TW", uint32(tw))
				un.u("u_TT", uint32(th*tw))
				un.u("u_H", uint32(d.OH))
				un.u("u_W", uint32(d.OW))
				un.u("u_t0", uint32(t0))
				un.u("u_TC", uint32(tc))
				un.u("u_TP", uint32(tp))
				un.u("u_n", uint32(n))
			})
		}
	}
}
