package unet

import (
	"math"

	"glimmer/engine"
	"glimmer/engine/nn"
)

// downsample2D is diffusers' Downsample2D as SD uses it: a 3x3 convolution
// with stride 2 and padding 1, ⌈H/2⌉ x ⌈W/2⌉ out.
type downsample2D struct {
	Conv *nn.Conv2d // conv: [C, C, 3, 3]
}

func newDownsample(l *nn.Loader, ch int) *downsample2D {
	return &downsample2D{Conv: nn.NewConv2d(l, "conv", ch, ch, 3, 2, 1)}
}

// forward returns the downsampled x [B, C, H, W] in a tensor from p.
func (d *downsample2D) forward(b engine.Backend, p *nn.Pool, x *engine.Tensor) *engine.Tensor {
	out := p.Get(x.Dim(0), d.Conv.Out, d.Conv.OutSize(x.Dim(2)), d.Conv.OutSize(x.Dim(3))) // [B, C, ⌈H/2⌉, ⌈W/2⌉]
	d.Conv.Forward(b, out, x)                                                              // [B, C, ⌈H/2⌉, ⌈W/2⌉]
	return out
}

// upsample2D is diffusers' Upsample2D as SD uses it: nearest-neighbour
// resize (x2, or to the skip connection's size) then a 3x3 convolution.
type upsample2D struct {
	Conv *nn.Conv2d // conv: [C, C, 3, 3]
}

func newUpsample(l *nn.Loader, ch int) *upsample2D {
	return &upsample2D{Conv: nn.NewConv2d(l, "conv", ch, ch, 3, 1, 1)}
}

// forward returns conv(nearest(x)) for x [B, C, H, W] resized to oh x ow,
// in a tensor from p.
func (s *upsample2D) forward(u *UNet, b engine.Backend, p *nn.Pool, x *engine.Tensor, oh, ow int) *engine.Tensor {
	bsz, ch := x.Dim(0), x.Dim(1)
	up := p.Get(bsz, ch, oh, ow)  // [B, C, oh, ow]
	u.nearest(b, p, up, x)        // [B, C, oh, ow]
	out := p.Get(bsz, ch, oh, ow) // [B, C, oh, ow]
	s.Conv.Forward(b, out, up)    // [B, C, oh, ow]
	p.Put(up)
	return out
}

// nearest resizes x [N, C, H, W] into dst [N, C, OH, OW] as torch's
// F.interpolate(mode="nearest", size=(OH, OW)): output pixel j reads input
// floor(j·H/OH). The plain 2x case is the Upsample2x op; any other size
// (diffusers' forward_upsample_size, needed when the latent size is not a
// multiple of 2^(levels-1)) multiplies by 0/1 selection matrices on both
// sides, which copies values exactly:
//
//	rows:    x [N·C·H, W] · Sw [W, OW]            → [N·C, H, OW]
//	columns: transpose → [N·C, OW, H] · Sh [H, OH] → [N·C, OW, OH] → transpose
func (u *UNet) nearest(b engine.Backend, p *nn.Pool, dst, x *engine.Tensor) {
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	oh, ow := dst.Dim(2), dst.Dim(3)
	if oh == 2*h && ow == 2*w {
		b.Upsample2x(dst, x) // [N, C, 2H, 2W]
		return
	}
	rows := p.Get(n*c*h, ow)                                                            // [N·C·H, OW]
	b.MatMul(rows, x.Reshape(n*c*h, w), u.selection(w, ow), nil, engine.MatMulParams{}) // [N·C·H, OW]
	cols := p.Get(n*c, ow, h)                                                           // [N·C, OW, H]
	b.Transpose(cols, rows.Reshape(n*c, h, ow))                                         // [N·C, OW, H]
	res := p.Get(n*c, ow, oh)                                                           // [N·C, OW, OH]
	b.MatMul(res, cols, u.selection(h, oh), nil, engine.MatMulParams{})                 // [N·C, OW, OH]
	b.Transpose(dst.Reshape(n*c, oh, ow), res)                                          // [N·C, OH, OW]
	p.Put(rows, cols, res)
}

// selection returns the [in, out] matrix S with S[i][j] = 1 where output j
// reads input i under nearest resizing, made once per size pair on the
// U-Net's backend (a rehearsal, nn.Pool.Plan, makes it a pass early).
func (u *UNet) selection(in, out int) *engine.Tensor {
	key := [2]int{in, out}
	if s, ok := u.resize[key]; ok {
		return s
	}
	m := make([]float32, in*out)
	scale := float32(in) / float32(out) // as torch computes it
	for j := 0; j < out; j++ {
		i := min(int(math.Floor(float64(float32(j)*scale))), in-1)
		m[i*out+j] = 1
	}
	s := u.b.New(engine.F32, in, out) // [in, out]
	u.b.Write(s, m)                   // [in, out]
	u.resize[key] = s
	return s
}
