package vae

import (
	"fmt"

	"glimmer/engine"
	"glimmer/engine/nn"
)

// DecodeTiled decodes z [B, L, h, w] into dst [B, Out, f·h, f·w] as
// overlapping square tiles of tile x tile latent pixels (clipped to the
// latent), so the activations only ever cover one tile. Tiles start every
// tile-overlap latent pixels; the last tile of a row or column is moved
// back to end at the latent's edge (overlapping its neighbour by overlap
// or more), so every tile has the same size and the activation buffers
// are reused. Where tiles overlap, each pixel is the weighted mean of the
// tiles covering it, each tile's weight falling linearly from 1 to 0 over
// the f·overlap pixels at an edge it shares with a neighbour (never at
// the image border), so no tile edge shows as a seam.
//
// The decoder's GroupNorms take their statistics over what they see, so a
// tile does not decode exactly as the same region of the whole latent:
// the result is close to Decode's, not equal (vae_test.go measures how
// close). Tiles go through the host: each latent tile is written, decoded
// and read back, and dst is written once at the end; the copies are small
// next to a tile's decode. DecodeTiled waits for the device.
func (v *VAE) DecodeTiled(dst, z *engine.Tensor, tile, overlap int) error {
	if err := v.checkDecode(dst, z); err != nil {
		return err
	}
	if tile < 1 || overlap < 0 || overlap >= tile {
		return fmt.Errorf("vae: DecodeTiled: tile %d, overlap %d: want tile ≥ 1 and 0 ≤ overlap < tile", tile, overlap)
	}
	b, p := v.b, v.pool
	bsz, lc, h, w := z.Dim(0), z.Dim(1), z.Dim(2), z.Dim(3)
	oc, f := dst.Dim(1), v.Config.DownsampleFactor()
	th, tw := min(tile, h), min(tile, w)
	H, W, TH, TW := f*h, f*w, f*th, f*tw

	zh, err := b.Read(z) // [B, L, h, w] on the host
	if err != nil {
		return fmt.Errorf("vae: DecodeTiled: reading the latent: %w", err)
	}
	zt := p.Get(bsz, lc, th, tw) // [B, L, th, tw]
	it := p.Get(bsz, oc, TH, TW) // [B, Out, f·th, f·tw]
	defer p.Put(zt, it)
	ztile := make([]float32, zt.Numel()) // [B, L, th, tw]
	acc := make([]float32, dst.Numel())  // [B, Out, H, W]: Σ weight·tile
	wsum := make([]float32, H*W)         // [H, W]: Σ weight

	ys, xs := tileStarts(h, th, overlap), tileStarts(w, tw, overlap)
	for _, y0 := range ys {
		wy := ramp(y0, th, h, f, overlap) // [f·th]
		for _, x0 := range xs {
			wx := ramp(x0, tw, w, f, overlap) // [f·tw]
			for bc := range bsz * lc {
				for y := range th {
					src := zh[(bc*h+y0+y)*w+x0:]
					copy(ztile[(bc*th+y)*tw:(bc*th+y+1)*tw], src[:tw])
				}
			}
			b.Write(zt, ztile)
			v.decodePlanned(it, zt)
			img, err := b.Read(it) // [B, Out, f·th, f·tw]
			if err != nil {
				return fmt.Errorf("vae: DecodeTiled: tile at (%d, %d): %w", y0, x0, err)
			}
			Y0, X0 := f*y0, f*x0
			for y := range TH {
				for x := range TW {
					wt := wy[y] * wx[x]
					wsum[(Y0+y)*W+X0+x] += wt
					for bc := range bsz * oc {
						acc[(bc*H+Y0+y)*W+X0+x] += wt * img[(bc*TH+y)*TW+x]
					}
				}
			}
		}
	}
	for bc := range bsz * oc {
		plane := acc[bc*H*W : (bc+1)*H*W]
		for i := range plane {
			plane[i] /= wsum[i]
		}
	}
	b.Write(dst, acc)
	return b.Sync()
}

// tileStarts places tiles of extent t along an axis of n latent pixels,
// stepping t-overlap and moving the last one back to end at n: for n 16,
// t 8, overlap 4: 0, 4, 8. Consecutive tiles overlap by at least overlap.
func tileStarts(n, t, overlap int) []int {
	var out []int
	for s := 0; ; s += t - overlap {
		if s+t >= n {
			return append(out, n-t)
		}
		out = append(out, s)
	}
}

// ramp is a tile's blending weight along one axis, per output pixel: 1,
// falling linearly towards 0 over the f·overlap pixels next to an edge
// that has a neighbouring tile (start > 0, or start+t < n). Weights stay
// positive ((i+½)/R), so every pixel's weight sum is positive.
func ramp(start, t, n, f, overlap int) []float32 {
	P, R := f*t, float32(f*overlap)
	w := make([]float32, P)
	for i := range w {
		w[i] = 1
		if R == 0 {
			continue
		}
		if start > 0 {
			w[i] = min(w[i], (float32(i)+0.5)/R)
		}
		if start+t < n {
			w[i] = min(w[i], (float32(P-i)-0.5)/R)
		}
	}
	return w
}

// DecodeMemory estimates the device memory, in bytes, of the activation
// buffers a decode of a latent of shape [B, L, h, w] takes from a fresh
// pool at its peak (z, dst and the weights not counted). It is exact for
// this implementation: the decoder is run on a backend that only
// allocates, so the pool sees the same requests as in a real decode.
// SD's decoder takes 0.5 GiB at 512x512 (a 64x64 latent), 2 GiB at
// 1024x1024: the estimate grows with h·w.
func (v *VAE) DecodeMemory(z engine.Shape) int64 {
	var so nn.ShapeOnly
	p := nn.NewPool(so)
	v.shapeOnlyDecode(z)(so, p)
	return p.Peak
}

// shapeOnlyDecode is a decode of a latent of shape z [B, L, h, w] as a
// pass for a shape-only backend and a pool (a rehearsal): its latent and
// image are ShapeOnly's.
func (v *VAE) shapeOnlyDecode(z engine.Shape) func(b engine.Backend, p *nn.Pool) {
	var so nn.ShapeOnly
	f := v.Config.DownsampleFactor()
	zt := so.New(engine.F32, z...)                                        // [B, L, h, w]
	dst := so.New(engine.F32, z[0], v.Config.OutChannels, f*z[2], f*z[3]) // [B, Out, H, W]
	return func(b engine.Backend, p *nn.Pool) { v.decode(run{b, p}, dst, zt) }
}

// tile is the square tile Decode decodes a latent of shape z in, or 0
// where it decodes it whole: MaxActivationBytes positive and exceeded by
// DecodeMemory(z).
func (v *VAE) tile(z engine.Shape) int {
	if budget := v.MaxActivationBytes; budget > 0 && v.DecodeMemory(z) > budget {
		return v.fitTile(z[0], max(z[2], z[3]), budget)
	}
	return 0
}

// fitTile is the largest square tile (a multiple of 8 latent pixels below
// side, at least 8) whose decode estimate fits budget.
func (v *VAE) fitTile(bsz, side int, budget int64) int {
	t := (side - 1) / 8 * 8
	for ; t > 8; t -= 8 {
		if v.DecodeMemory(engine.Shape{bsz, v.Config.LatentChannels, t, t}) <= budget {
			return t
		}
	}
	return 8
}
