package model

import (
	"fmt"

	"glimmer/engine"
)

// TensorSpec is a tensor a configuration requires.
type TensorSpec struct {
	Name  string // canonical: "unet/conv_in.weight"
	Shape engine.Shape
}

// Expected lists every learned tensor the configuration's networks have,
// with its canonical name and shape, component by component in a fixed
// order. A model is complete when it holds exactly these.
func (c *Config) Expected() []TensorSpec {
	var s specs
	s.unet(&c.UNet)
	s.vae(&c.VAE)
	s.text(&c.Text)
	return s
}

type specs []TensorSpec

func (s *specs) add(name string, shape ...int) {
	*s = append(*s, TensorSpec{Name: name, Shape: engine.Shape(shape)})
}

// affine adds weight and bias of a norm layer of n channels.
func (s *specs) affine(name string, n int) {
	s.add(name+".weight", n)
	s.add(name+".bias", n)
}

func (s *specs) linear(name string, out, in int, bias bool) {
	s.add(name+".weight", out, in)
	if bias {
		s.add(name+".bias", out)
	}
}

func (s *specs) conv(name string, out, in, k int) {
	s.add(name+".weight", out, in, k, k)
	s.add(name+".bias", out)
}

func (s *specs) unet(u *UNetConfig) {
	p := "unet/"
	n := len(u.BlockOutChannels)
	if n == 0 {
		return
	}
	c0 := u.BlockOutChannels[0]
	s.conv(p+"conv_in", c0, u.InChannels, 3)
	s.linear(p+"time_embedding.linear_1", u.TimeEmbedDim, c0, true)
	s.linear(p+"time_embedding.linear_2", u.TimeEmbedDim, u.TimeEmbedDim, true)
	resnet := func(name string, in, out int) {
		s.affine(name+".norm1", in)
		s.conv(name+".conv1", out, in, 3)
		s.linear(name+".time_emb_proj", out, u.TimeEmbedDim, true)
		s.affine(name+".norm2", out)
		s.conv(name+".conv2", out, out, 3)
		if in != out {
			s.conv(name+".conv_shortcut", out, in, 1)
		}
	}
	attn := func(name string, ch int) {
		s.affine(name+".norm", ch)
		proj := func(pn string) {
			if u.UseLinearProjection {
				s.linear(name+"."+pn, ch, ch, true)
			} else {
				s.conv(name+"."+pn, ch, ch, 1)
			}
		}
		proj("proj_in")
		for d := 0; d < u.TransformerDepth; d++ {
			b := fmt.Sprintf("%s.transformer_blocks.%d", name, d)
			for _, a := range []struct {
				name string
				kv   int
			}{{"attn1", ch}, {"attn2", u.CrossAttentionDim}} {
				s.linear(b+"."+a.name+".to_q", ch, ch, false)
				s.linear(b+"."+a.name+".to_k", ch, a.kv, false)
				s.linear(b+"."+a.name+".to_v", ch, a.kv, false)
				s.linear(b+"."+a.name+".to_out.0", ch, ch, true)
			}
			s.linear(b+".ff.net.0.proj", 8*ch, ch, true) // GEGLU: value and gate halves of 4C
			s.linear(b+".ff.net.2", ch, 4*ch, true)
			s.affine(b+".norm1", ch)
			s.affine(b+".norm2", ch)
			s.affine(b+".norm3", ch)
		}
		proj("proj_out")
	}
	prev := c0
	for lvl, out := range u.BlockOutChannels {
		for j := 0; j < u.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			resnet(fmt.Sprintf("%sdown_blocks.%d.resnets.%d", p, lvl, j), in, out)
			if u.DownAttention[lvl] {
				attn(fmt.Sprintf("%sdown_blocks.%d.attentions.%d", p, lvl, j), out)
			}
		}
		if lvl < n-1 {
			s.conv(fmt.Sprintf("%sdown_blocks.%d.downsamplers.0.conv", p, lvl), out, out, 3)
		}
		prev = out
	}
	cl := u.BlockOutChannels[n-1]
	resnet(p+"mid_block.resnets.0", cl, cl)
	if u.MidAttention {
		attn(p+"mid_block.attentions.0", cl)
	}
	resnet(p+"mid_block.resnets.1", cl, cl)
	prevOut := cl
	for i := 0; i < n; i++ {
		lvl := n - 1 - i
		out := u.BlockOutChannels[lvl]
		skipIn := u.BlockOutChannels[max(lvl-1, 0)] // the down block's input width
		for j := 0; j <= u.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prevOut
			}
			skip := out
			if j == u.LayersPerBlock {
				skip = skipIn
			}
			resnet(fmt.Sprintf("%sup_blocks.%d.resnets.%d", p, i, j), in+skip, out)
			if u.UpAttention[i] {
				attn(fmt.Sprintf("%sup_blocks.%d.attentions.%d", p, i, j), out)
			}
		}
		if i < n-1 {
			s.conv(fmt.Sprintf("%sup_blocks.%d.upsamplers.0.conv", p, i), out, out, 3)
		}
		prevOut = out
	}
	s.affine(p+"conv_norm_out", c0)
	s.conv(p+"conv_out", u.OutChannels, c0, 3)
}

func (s *specs) vae(v *VAEConfig) {
	p := "vae/"
	n := len(v.BlockOutChannels)
	if n == 0 {
		return
	}
	resnet := func(name string, in, out int) {
		s.affine(name+".norm1", in)
		s.conv(name+".conv1", out, in, 3)
		s.affine(name+".norm2", out)
		s.conv(name+".conv2", out, out, 3)
		if in != out {
			s.conv(name+".conv_shortcut", out, in, 1)
		}
	}
	mid := func(name string, ch int) {
		resnet(name+".resnets.0", ch, ch)
		if v.MidAttention {
			a := name + ".attentions.0"
			s.affine(a+".group_norm", ch)
			s.linear(a+".to_q", ch, ch, true)
			s.linear(a+".to_k", ch, ch, true)
			s.linear(a+".to_v", ch, ch, true)
			s.linear(a+".to_out.0", ch, ch, true)
		}
		resnet(name+".resnets.1", ch, ch)
	}
	c0, cl := v.BlockOutChannels[0], v.BlockOutChannels[n-1]
	s.conv(p+"encoder.conv_in", c0, v.InChannels, 3)
	prev := c0
	for lvl, out := range v.BlockOutChannels {
		for j := 0; j < v.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			resnet(fmt.Sprintf("%sencoder.down_blocks.%d.resnets.%d", p, lvl, j), in, out)
		}
		if lvl < n-1 {
			s.conv(fmt.Sprintf("%sencoder.down_blocks.%d.downsamplers.0.conv", p, lvl), out, out, 3)
		}
		prev = out
	}
	mid(p+"encoder.mid_block", cl)
	s.affine(p+"encoder.conv_norm_out", cl)
	s.conv(p+"encoder.conv_out", 2*v.LatentChannels, cl, 3)
	if v.UseQuantConv {
		s.conv(p+"quant_conv", 2*v.LatentChannels, 2*v.LatentChannels, 1)
	}
	if v.UsePostQuantConv {
		s.conv(p+"post_quant_conv", v.LatentChannels, v.LatentChannels, 1)
	}
	s.conv(p+"decoder.conv_in", cl, v.LatentChannels, 3)
	mid(p+"decoder.mid_block", cl)
	prev = cl
	for i := 0; i < n; i++ {
		out := v.BlockOutChannels[n-1-i]
		for j := 0; j <= v.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			resnet(fmt.Sprintf("%sdecoder.up_blocks.%d.resnets.%d", p, i, j), in, out)
		}
		if i < n-1 {
			s.conv(fmt.Sprintf("%sdecoder.up_blocks.%d.upsamplers.0.conv", p, i), out, out, 3)
		}
		prev = out
	}
	s.affine(p+"decoder.conv_norm_out", c0)
	s.conv(p+"decoder.conv_out", v.OutChannels, c0, 3)
}

func (s *specs) text(t *TextConfig) {
	if t.HiddenSize == 0 {
		return
	}
	p := "text_encoder/text_model."
	h := t.HiddenSize
	s.add(p+"embeddings.token_embedding.weight", t.VocabSize, h)
	s.add(p+"embeddings.position_embedding.weight", t.MaxPositions, h)
	for l := 0; l < t.Layers; l++ {
		b := fmt.Sprintf("%sencoder.layers.%d.", p, l)
		s.linear(b+"self_attn.k_proj", h, h, true)
		s.linear(b+"self_attn.v_proj", h, h, true)
		s.linear(b+"self_attn.q_proj", h, h, true)
		s.linear(b+"self_attn.out_proj", h, h, true)
		s.affine(b+"layer_norm1", h)
		s.linear(b+"mlp.fc1", t.IntermediateSize, h, true)
		s.linear(b+"mlp.fc2", h, t.IntermediateSize, true)
		s.affine(b+"layer_norm2", h)
	}
	s.affine(p+"final_layer_norm", h)
}
