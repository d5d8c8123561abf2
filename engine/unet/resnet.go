package unet

import (
	"glimmer/engine"
	"glimmer/engine/model"
	"glimmer/engine/nn"
)

// resnetBlock is diffusers' ResnetBlock2D as the SD U-Net configures it
// (time_embedding_norm "default", output_scale_factor 1, no dropout at
// inference):
//
//	h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb))[:, :, None, None]
//	h = conv2(SiLU(norm2(h)))
//	out = shortcut(x) + h
type resnetBlock struct {
	Norm1        *nn.GroupNorm // norm1: [In]
	Conv1        *nn.Conv2d    // conv1: [Out, In, 3, 3]
	TimeEmbProj  *nn.Linear    // time_emb_proj: [Out, TimeEmbedDim]
	Norm2        *nn.GroupNorm // norm2: [Out]
	Conv2        *nn.Conv2d    // conv2: [Out, Out, 3, 3]
	ConvShortcut *nn.Conv2d    // conv_shortcut: [Out, In, 1, 1], nil when In == Out

	// foldTemb: norm2 adds the time embedding itself (UNet.FoldTimeEmbedding).
	foldTemb bool
	// kept: time_emb_proj(SiLU(temb)) for every kept timestep
	// (UNet.KeepTimesteps), [steps·B, Out], or nil.
	kept *engine.Tensor
}

// stepEmbedding is what a Forward's ResNets take their time embedding
// from: the activated embedding SiLU(temb) [B, TimeEmbedDim] to project,
// or, with the timesteps kept (act nil), the row of the call's first
// batch entry in each ResNet's kept projections.
type stepEmbedding struct {
	act *engine.Tensor
	row int
}

func newResnet(l *nn.Loader, c *model.UNetConfig, in, out int) *resnetBlock {
	r := &resnetBlock{
		Norm1:       nn.NewGroupNorm(l, "norm1", c.NormGroups, in, c.NormEps),
		Conv1:       nn.NewConv2d(l, "conv1", in, out, 3, 1, 1),
		TimeEmbProj: nn.NewLinear(l, "time_emb_proj", c.TimeEmbedDim, out, true),
		Norm2:       nn.NewGroupNorm(l, "norm2", c.NormGroups, out, c.NormEps),
		Conv2:       nn.NewConv2d(l, "conv2", out, out, 3, 1, 1),
	}
	if in != out {
		r.ConvShortcut = nn.NewConv2d(l, "conv_shortcut", in, out, 1, 1, 0)
	}
	return r
}

// forward returns the block's output for x [B, In, H, W] and the time
// embedding te, in a tensor from p. x is left to the caller.
func (r *resnetBlock) forward(b engine.Backend, p *nn.Pool, x *engine.Tensor, te stepEmbedding) *engine.Tensor {
	bsz, in, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	out := r.Conv1.Out

	n1 := p.Get(bsz, in, h, w)      // [B, In, H, W]
	r.Norm1.Forward(b, n1, x, true) // [B, In, H, W]
	hs := p.Get(bsz, out, h, w)     // [B, Out, H, W]
	r.Conv1.Forward(b, hs, n1)      // [B, Out, H, W]
	p.Put(n1)

	n2 := p.Get(bsz, out, h, w) // [B, Out, H, W]
	if te.act == nil {
		r.Norm2.ForwardShift(b, n2, hs, r.kept, te.row, true) // [B, Out, H, W], norm2(hs + kept[row:row+B])
	} else {
		act := te.act
		if act.Dim(0) > bsz { // a shared input (UNet.Forward): one timestep, the first row
			act = act.View(bsz, act.Dim(1)) // [B, TimeEmbedDim]
		}
		t := p.Get(bsz, out)             // [B, Out]
		r.TimeEmbProj.Forward(b, t, act) // [B, Out]
		if r.foldTemb {
			r.Norm2.ForwardShift(b, n2, hs, t, 0, true) // [B, Out, H, W], norm2(hs + t)
		} else {
			b.Binary(hs, hs, t.Reshape(bsz, out, 1, 1), engine.Add) // [B, Out, H, W]
			r.Norm2.Forward(b, n2, hs, true)                        // [B, Out, H, W]
		}
		p.Put(t)
	}

	// conv2 adds the shortcut in its epilogue.
	if r.ConvShortcut != nil {
		s := p.Get(bsz, out, h, w)       // [B, Out, H, W]
		r.ConvShortcut.Forward(b, s, x)  // [B, Out, H, W]
		r.Conv2.ForwardAdd(b, hs, n2, s) // [B, Out, H, W]
		p.Put(s)
	} else {
		r.Conv2.ForwardAdd(b, hs, n2, x) // [B, Out, H, W]
	}
	p.Put(n2)
	return hs
}
