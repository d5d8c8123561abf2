package unet

import (
	"fmt"

	"glimmer/engine/nn"
)

// NamedLinear is a Linear layer with its canonical name (without
// ".weight"), e.g. "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q".
type NamedLinear struct {
	Name   string
	Linear *nn.Linear
}

// crossAttentions lists the attention over the text context (attn2) of
// every transformer block, in down, mid, up order.
func (u *UNet) crossAttentions() []*attention {
	var out []*attention
	add := func(ts ...*transformer2D) {
		for _, t := range ts {
			if t == nil {
				continue
			}
			for _, blk := range t.Blocks {
				out = append(out, blk.Attn2)
			}
		}
	}
	for _, d := range u.DownBlocks {
		add(d.Attentions...)
	}
	add(u.MidBlock.Attention)
	for _, up := range u.UpBlocks {
		add(up.Attentions...)
	}
	return out
}

// resnets lists every ResNet block, in down, mid, up order.
func (u *UNet) resnets() []*resnetBlock {
	var out []*resnetBlock
	for _, d := range u.DownBlocks {
		out = append(out, d.Resnets...)
	}
	out = append(out, u.MidBlock.Resnets[:]...)
	for _, up := range u.UpBlocks {
		out = append(out, up.Resnets...)
	}
	return out
}

// convs lists every convolution: the ResNets' in down, mid, up order,
// then the rest in the same order.
func (u *UNet) convs() []*nn.Conv2d {
	out := []*nn.Conv2d{u.ConvIn, u.ConvOut}
	for _, r := range u.resnets() {
		out = append(out, r.Conv1, r.Conv2)
		if r.ConvShortcut != nil {
			out = append(out, r.ConvShortcut)
		}
	}
	tr := func(ts ...*transformer2D) {
		for _, t := range ts {
			if t != nil && t.ProjInConv != nil {
				out = append(out, t.ProjInConv, t.ProjOutConv)
			}
		}
	}
	for _, d := range u.DownBlocks {
		tr(d.Attentions...)
		if d.Downsampler != nil {
			out = append(out, d.Downsampler.Conv)
		}
	}
	tr(u.MidBlock.Attention)
	for _, up := range u.UpBlocks {
		tr(up.Attentions...)
		if up.Upsampler != nil {
			out = append(out, up.Upsampler.Conv)
		}
	}
	return out
}

// AttentionProjections lists the to_q, to_k, to_v and to_out.0 layers of
// every attention in the U-Net, in down, mid, up order: the layers a LoRA
// adapts. For a U-Net loaded for training: one loaded under
// TransposeLinears has its self-attentions' to_q, to_k and to_v fused
// (attention.QKV) and lists them as nil.
func (u *UNet) AttentionProjections() []NamedLinear {
	var out []NamedLinear
	add := func(prefix string, t *transformer2D) {
		for d, blk := range t.Blocks {
			for i, a := range []*attention{blk.Attn1, blk.Attn2} {
				p := fmt.Sprintf("%s.transformer_blocks.%d.attn%d.", prefix, d, i+1)
				out = append(out,
					NamedLinear{p + "to_q", a.ToQ}, NamedLinear{p + "to_k", a.ToK},
					NamedLinear{p + "to_v", a.ToV}, NamedLinear{p + "to_out.0", a.ToOut})
			}
		}
	}
	for i, d := range u.DownBlocks {
		for j, t := range d.Attentions {
			add(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), t)
		}
	}
	if u.MidBlock.Attention != nil {
		add("mid_block.attentions.0", u.MidBlock.Attention)
	}
	for i, up := range u.UpBlocks {
		for j, t := range up.Attentions {
			add(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), t)
		}
	}
	return out
}
