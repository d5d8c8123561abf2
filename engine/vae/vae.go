// Package vae is Stable Diffusion's autoencoder: diffusers' AutoencoderKL
// as SD 1.x and 2.x configure it, with its weights bound by their
// canonical (diffusers) names.
//
//	encoder: conv_in → down blocks (ResNet × LayersPerBlock, stride-2 conv)
//	         → mid block (ResNet, attention, ResNet) → GroupNorm + SiLU
//	         → conv_out → quant_conv → (mean, logvar)
//	decoder: post_quant_conv → conv_in → mid block → up blocks
//	         (ResNet × (LayersPerBlock+1), nearest ×2 + conv) → GroupNorm
//	         + SiLU → conv_out
//
// Decode takes the latent as the VAE sees it, that is the diffusion
// latent divided by the scaling factor (0.18215 for SD), and gives the
// image in [-1, 1]. Large images can be decoded in overlapping tiles
// (tiled.go) to bound the activation memory.
//
// Activations are NCHW [B, C, H, W], [B, H·W, C] token sequences inside
// the attention (see package engine for the layout). Every line that
// produces a tensor carries its shape.
package vae

import (
	"errors"
	"fmt"

	"glimmer/engine"
	"glimmer/engine/model"
	"glimmer/engine/nn"
)

// VAE is a loaded autoencoder on one backend. It is not safe for
// concurrent use: Encode and Decode reuse its activation buffers.
type VAE struct {
	Config model.VAEConfig

	Encoder *Encoder // nil when loaded by LoadDecoder
	Decoder *Decoder
	// QuantMean and QuantLogvar are quant_conv [2L, 2L, 1, 1] split by
	// output channel into its mean and log-variance halves [L, 2L, 1, 1];
	// without quant_conv they are encoder.conv_out's halves [L, C, 3, 3].
	// Splitting the weights makes the posterior's two halves separate,
	// exact convolutions (the op set has no channel slice). nil, as
	// Moments, without the encoder.
	QuantMean, QuantLogvar *nn.Conv2d
	// Moments is the checkpoint's unsplit convolution (quant_conv, or
	// encoder.conv_out without it). Inference never runs it; a trainer
	// trains the halves and writes them back with JoinMoments.
	Moments       *nn.Conv2d
	PostQuantConv *nn.Conv2d // post_quant_conv: [L, L, 1, 1], nil when absent

	// MaxActivationBytes, when positive, is the activation memory Decode
	// may use: a latent whose DecodeMemory estimate exceeds it is decoded
	// in tiles (see Decode). Zero never tiles automatically.
	MaxActivationBytes int64

	b       engine.Backend
	pool    *nn.Pool         // activations, recycled between calls
	weights []*engine.Tensor // uploaded by Load (and the split halves), freed by Close
}

// Encoder is diffusers' Encoder with its weights.
type Encoder struct {
	ConvIn      *nn.Conv2d    // conv_in: [C0, In, 3, 3]
	DownBlocks  []*DownBlock  // down_blocks.<level>
	MidBlock    *MidBlock     // mid_block
	ConvNormOut *nn.GroupNorm // conv_norm_out: [Cl], followed by SiLU
	ConvOut     *nn.Conv2d    // conv_out: [2L, Cl, 3, 3]; nil when split into VAE.QuantMean/QuantLogvar
}

// Decoder is diffusers' Decoder with its weights.
type Decoder struct {
	ConvIn      *nn.Conv2d    // conv_in: [Cl, L, 3, 3]
	MidBlock    *MidBlock     // mid_block
	UpBlocks    []*UpBlock    // up_blocks.<i>, at level Levels-1-i
	ConvNormOut *nn.GroupNorm // conv_norm_out: [C0], followed by SiLU
	ConvOut     *nn.Conv2d    // conv_out: [Out, C0, 3, 3]
}

// DownBlock is DownEncoderBlock2D.
type DownBlock struct {
	Resnets []*Resnet
	// Downsampler is downsamplers.0.conv: [C, C, 3, 3], stride 2, applied
	// to the input padded by one zero row at the bottom and one zero
	// column at the right (diffusers' Downsample2D with padding 0, i.e.
	// F.pad(x, (0, 1, 0, 1))). nil at the last level.
	Downsampler *nn.Conv2d
}

// UpBlock is UpDecoderBlock2D.
type UpBlock struct {
	Resnets   []*Resnet
	Upsampler *nn.Conv2d // upsamplers.0.conv: [C, C, 3, 3] after nearest ×2; nil in the last block
}

// MidBlock is UNetMidBlock2D: ResNet, attention, ResNet.
type MidBlock struct {
	Resnets   [2]*Resnet
	Attention *Attention // attentions.0, nil without MidAttention
}

// Resnet is ResnetBlock2D without a time embedding:
//
//	h = conv1(SiLU(norm1(x)))
//	h = conv2(SiLU(norm2(h)))
//	out = shortcut(x) + h
type Resnet struct {
	Norm1        *nn.GroupNorm // norm1: [In]
	Conv1        *nn.Conv2d    // conv1: [Out, In, 3, 3]
	Norm2        *nn.GroupNorm // norm2: [Out]
	Conv2        *nn.Conv2d    // conv2: [Out, Out, 3, 3]
	ConvShortcut *nn.Conv2d    // conv_shortcut: [Out, In, 1, 1], nil when In == Out
}

// Attention is the mid block's single-head self-attention (diffusers'
// Attention with group_norm, residual_connection, heads 1):
//
//	t = GroupNorm(x) as tokens [B, HW, C]
//	out = x + to_out(softmax(to_q(t) to_k(t)ᵀ / √C) to_v(t))
type Attention struct {
	GroupNorm *nn.GroupNorm // group_norm: [C]
	ToQ       *nn.Linear    // to_q: [C, C] + bias
	ToK       *nn.Linear    // to_k: [C, C] + bias
	ToV       *nn.Linear    // to_v: [C, C] + bias
	ToOut     *nn.Linear    // to_out.0: [C, C] + bias
}

// Load builds the VAE from cfg, binding weights through l, whose names are
// the VAE's canonical ones ("encoder.conv_in.weight"): for a model.Model,
// nn.NewLoader(b, m.Component(model.VAE), f32). The weights Load uploads
// belong to the VAE and are freed by Close.
func Load(l *nn.Loader, cfg model.VAEConfig) (*VAE, error) { return load(l, cfg, true) }

// LoadDecoder is Load without the encoder and quant_conv, all that
// text-to-image needs (SD 1.5's encoder is 65 MiB of F16 weights): Encode
// fails on the VAE it returns.
func LoadDecoder(l *nn.Loader, cfg model.VAEConfig) (*VAE, error) { return load(l, cfg, false) }

func load(l *nn.Loader, cfg model.VAEConfig, encoder bool) (*VAE, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	first := len(l.Tensors())
	v := &VAE{Config: cfg, b: l.B, pool: nn.NewPool(l.B)}
	n := len(cfg.BlockOutChannels)
	c0, cl := cfg.BlockOutChannels[0], cfg.BlockOutChannels[n-1]
	lat := cfg.LatentChannels
	var moments *nn.Conv2d
	if encoder {
		moments = v.loadEncoder(l)
	}

	// Decoder.
	if cfg.UsePostQuantConv {
		v.PostQuantConv = nn.NewConv2d(l, "post_quant_conv", lat, lat, 1, 1, 0)
	}
	dl := l.Sub("decoder")
	d := &Decoder{ConvIn: nn.NewConv2d(dl, "conv_in", lat, cl, 3, 1, 1)}
	d.MidBlock = newMidBlock(dl.Sub("mid_block"), &cfg, cl)
	prev := cl
	for i := range n {
		out := cfg.BlockOutChannels[n-1-i]
		bl := dl.Subf("up_blocks.%d", i)
		u := &UpBlock{}
		for j := 0; j <= cfg.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			u.Resnets = append(u.Resnets, newResnet(bl.Subf("resnets.%d", j), &cfg, in, out))
		}
		if i < n-1 {
			u.Upsampler = nn.NewConv2d(bl.Sub("upsamplers.0"), "conv", out, out, 3, 1, 1)
		}
		d.UpBlocks = append(d.UpBlocks, u)
		prev = out
	}
	d.ConvNormOut = nn.NewGroupNorm(dl, "conv_norm_out", cfg.NormGroups, c0, cfg.NormEps)
	d.ConvOut = nn.NewConv2d(dl, "conv_out", c0, cfg.OutChannels, 3, 1, 1)
	v.Decoder = d

	v.weights = append(v.weights, l.Tensors()[first:]...)
	if err := l.Err(); err != nil {
		v.Close()
		return nil, fmt.Errorf("vae: %w", err)
	}
	if !encoder {
		return v, nil
	}
	var err error
	v.Moments = moments
	if v.QuantMean, v.QuantLogvar, err = v.splitConv(moments); err != nil {
		v.Close()
		return nil, fmt.Errorf("vae: splitting the posterior convolution into mean and logvar: %w", err)
	}
	if !cfg.UseQuantConv {
		v.Encoder.ConvOut = nil // its halves are QuantMean and QuantLogvar
	}
	return v, nil
}

// loadEncoder binds the encoder into v.Encoder and returns the posterior's
// unsplit convolution: quant_conv, or encoder.conv_out without it.
func (v *VAE) loadEncoder(l *nn.Loader) *nn.Conv2d {
	cfg := &v.Config
	n := len(cfg.BlockOutChannels)
	c0, cl := cfg.BlockOutChannels[0], cfg.BlockOutChannels[n-1]
	lat := cfg.LatentChannels
	el := l.Sub("encoder")
	e := &Encoder{ConvIn: nn.NewConv2d(el, "conv_in", cfg.InChannels, c0, 3, 1, 1)}
	prev := c0
	for lvl, out := range cfg.BlockOutChannels {
		bl := el.Subf("down_blocks.%d", lvl)
		d := &DownBlock{}
		for j := 0; j < cfg.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			d.Resnets = append(d.Resnets, newResnet(bl.Subf("resnets.%d", j), cfg, in, out))
		}
		if lvl < n-1 {
			d.Downsampler = nn.NewConv2d(bl.Sub("downsamplers.0"), "conv", out, out, 3, 2, 0)
		}
		e.DownBlocks = append(e.DownBlocks, d)
		prev = out
	}
	e.MidBlock = newMidBlock(el.Sub("mid_block"), cfg, cl)
	e.ConvNormOut = nn.NewGroupNorm(el, "conv_norm_out", cfg.NormGroups, cl, cfg.NormEps)
	e.ConvOut = nn.NewConv2d(el, "conv_out", cl, 2*lat, 3, 1, 1)
	v.Encoder = e
	if cfg.UseQuantConv {
		return nn.NewConv2d(l, "quant_conv", 2*lat, 2*lat, 1, 1, 0)
	}
	return e.ConvOut
}

var errNoEncoder = errors.New("the VAE was loaded without its encoder (LoadDecoder)")

func checkConfig(c model.VAEConfig) error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("no levels (BlockOutChannels is empty)")
	case c.LayersPerBlock < 1 || c.NormGroups < 1:
		return fmt.Errorf("LayersPerBlock %d and NormGroups %d must be positive", c.LayersPerBlock, c.NormGroups)
	case c.InChannels < 1 || c.OutChannels < 1 || c.LatentChannels < 1:
		return fmt.Errorf("InChannels %d, OutChannels %d, LatentChannels %d must be positive",
			c.InChannels, c.OutChannels, c.LatentChannels)
	}
	for lvl, ch := range c.BlockOutChannels {
		if ch < 1 || ch%c.NormGroups != 0 {
			return fmt.Errorf("level %d: %d channels do not split into %d groups", lvl, ch, c.NormGroups)
		}
	}
	return nil
}

// splitConv splits a convolution's output channels into two halves, each
// its own convolution: the weights are read back from the device and the
// halves uploaded in the same dtype (a copy, so exact).
func (v *VAE) splitConv(c *nn.Conv2d) (lo, hi *nn.Conv2d, err error) {
	half := c.Out / 2
	w, err := v.b.Read(c.Weight) // [2L, C, K, K]
	if err != nil {
		return nil, nil, err
	}
	bias, err := v.b.Read(c.Bias) // [2L]
	if err != nil {
		return nil, nil, err
	}
	per := len(w) / c.Out
	part := func(i int) *nn.Conv2d {
		wt := v.b.New(c.Weight.DType(), half, c.In, c.K, c.K) // [L, C, K, K]
		v.b.Write(wt, w[i*half*per:(i+1)*half*per])
		bt := v.b.New(c.Bias.DType(), half) // [L]
		v.b.Write(bt, bias[i*half:(i+1)*half])
		v.weights = append(v.weights, wt, bt)
		return &nn.Conv2d{Weight: wt, Bias: bt, In: c.In, Out: half, K: c.K, P: c.P}
	}
	return part(0), part(1), nil
}

// JoinMoments writes QuantMean and QuantLogvar back into Moments (the
// inverse of the split Load makes), so Moments holds what was trained.
func (v *VAE) JoinMoments() error {
	if v.Encoder == nil {
		return fmt.Errorf("vae: JoinMoments: %w", errNoEncoder)
	}
	for _, pair := range [][3]*engine.Tensor{
		{v.Moments.Weight, v.QuantMean.Weight, v.QuantLogvar.Weight},
		{v.Moments.Bias, v.QuantMean.Bias, v.QuantLogvar.Bias},
	} {
		lo, err := v.b.Read(pair[1])
		if err != nil {
			return err
		}
		hi, err := v.b.Read(pair[2])
		if err != nil {
			return err
		}
		v.b.Write(pair[0], append(lo, hi...)) // [2L, ...]: mean rows, then logvar rows
	}
	return nil
}

func newResnet(l *nn.Loader, c *model.VAEConfig, in, out int) *Resnet {
	r := &Resnet{
		Norm1: nn.NewGroupNorm(l, "norm1", c.NormGroups, in, c.NormEps),
		Conv1: nn.NewConv2d(l, "conv1", in, out, 3, 1, 1),
		Norm2: nn.NewGroupNorm(l, "norm2", c.NormGroups, out, c.NormEps),
		Conv2: nn.NewConv2d(l, "conv2", out, out, 3, 1, 1),
	}
	if in != out {
		r.ConvShortcut = nn.NewConv2d(l, "conv_shortcut", in, out, 1, 1, 0)
	}
	return r
}

func newMidBlock(l *nn.Loader, c *model.VAEConfig, ch int) *MidBlock {
	m := &MidBlock{}
	m.Resnets[0] = newResnet(l.Sub("resnets.0"), c, ch, ch)
	if c.MidAttention {
		a := l.Sub("attentions.0")
		m.Attention = &Attention{
			GroupNorm: nn.NewGroupNorm(a, "group_norm", c.NormGroups, ch, c.NormEps),
			ToQ:       nn.NewLinear(a, "to_q", ch, ch, true),
			ToK:       nn.NewLinear(a, "to_k", ch, ch, true),
			ToV:       nn.NewLinear(a, "to_v", ch, ch, true),
			ToOut:     nn.NewLinear(a, "to_out.0", ch, ch, true),
		}
	}
	m.Resnets[1] = newResnet(l.Sub("resnets.1"), c, ch, ch)
	return m
}

// run is where a pass executes: a backend and the pool its activations
// come from. DecodeMemory runs the same code on a shape-only backend.
type run struct {
	b engine.Backend
	p *nn.Pool
}

// forward returns the block's output for x [B, In, H, W] in a tensor from
// the pool, and gives x (from the pool) back: with a shortcut convolution,
// which reads x first, the first norm overwrites x in place and x's buffer
// is free again after conv1, so three tensors are live at once instead of
// four (SD's decoder at 512x512: 0.5 GiB instead of 0.625 in
// up_blocks.3.resnets.0). Without one, x is added at the end.
func (r *Resnet) forward(e run, x *engine.Tensor) *engine.Tensor {
	b, p := e.b, e.p
	bsz, in, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	out := r.Conv1.Out

	var s *engine.Tensor        // the shortcut: conv_shortcut(x), or x itself
	hs := p.Get(bsz, out, h, w) // [B, Out, H, W]
	if r.ConvShortcut != nil {
		s = p.Get(bsz, out, h, w) // [B, Out, H, W]
		r.ConvShortcut.Forward(b, s, x)
		r.Norm1.Forward(b, x, x, true) // [B, In, H, W], in place
		r.Conv1.Forward(b, hs, x)
		p.Put(x)
	} else {
		n1 := p.Get(bsz, in, h, w) // [B, In, H, W]
		r.Norm1.Forward(b, n1, x, true)
		r.Conv1.Forward(b, hs, n1)
		p.Put(n1)
		s = x
	}

	n2 := p.Get(bsz, out, h, w) // [B, Out, H, W]
	r.Norm2.Forward(b, n2, hs, true)
	r.Conv2.ForwardAdd(b, hs, n2, s) // [B, Out, H, W], + the shortcut
	p.Put(n2)
	p.Put(s)
	return hs
}

// forward returns x + attention(x) for x [B, C, H, W] in a tensor from the
// pool; x is left to the caller.
func (a *Attention) forward(e run, x *engine.Tensor) *engine.Tensor {
	b, p := e.b, e.p
	bsz, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	hw := h * w

	n := p.Get(bsz, c, h, w) // [B, C, H, W]
	a.GroupNorm.Forward(b, n, x, false)
	t := p.Get(bsz, hw, c)                // [B, HW, C]
	b.Transpose(t, n.Reshape(bsz, c, hw)) // [B, HW, C]
	p.Put(n)

	q := p.Get(bsz, hw, c) // [B, HW, C]
	a.ToQ.Forward(b, q, t)
	k := p.Get(bsz, hw, c) // [B, HW, C]
	a.ToK.Forward(b, k, t)
	v := p.Get(bsz, hw, c) // [B, HW, C]
	a.ToV.Forward(b, v, t)
	att := p.Get(bsz, hw, c)                                    // [B, HW, C]
	b.Attention(att, q, k, v, engine.AttentionParams{Heads: 1}) // [B, HW, C], scale 1/√C
	p.Put(q, k, v)
	a.ToOut.Forward(b, t, att) // [B, HW, C]
	p.Put(att)

	out := p.Get(bsz, c, h, w)              // [B, C, H, W]
	b.Transpose(out.Reshape(bsz, c, hw), t) // [B, C, HW]
	p.Put(t)
	b.Binary(out, out, x, engine.Add) // [B, C, H, W]
	return out
}

// forward runs ResNet, attention, ResNet on x [B, C, H, W], returning a
// tensor from the pool; x (from the pool) is given back.
func (m *MidBlock) forward(e run, x *engine.Tensor) *engine.Tensor {
	cur := m.Resnets[0].forward(e, x) // [B, C, H, W]
	if m.Attention != nil {
		a := m.Attention.forward(e, cur) // [B, C, H, W]
		e.p.Put(cur)
		cur = a
	}
	return m.Resnets[1].forward(e, cur) // [B, C, H, W]
}

// downsample applies conv (stride 2, no padding of its own) to x [B, C,
// H, W] padded with one zero row below and one zero column to the right,
// as torch's F.pad(x, (0, 1, 0, 1)) then conv: output ⌊H/2⌋ x ⌊W/2⌋. The padding is asymmetric, so it cannot be the
// convolution's own (symmetric) padding: a symmetric pad of 1 with stride
// 2 would centre output i on input row 2i instead of 2i+1. It is built by
// two Concats with zeros, along W (x viewed as rows [B·C·H, W]) and along H
// (viewed as [B·C, H, W+1]).
func downsample(e run, conv *nn.Conv2d, x *engine.Tensor) *engine.Tensor {
	b, p := e.b, e.p
	bsz, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)

	zw := p.Get(bsz*c*h, 1) // [B·C·H, 1]
	b.Write(zw, make([]float32, zw.Numel()))
	pw := p.Get(bsz, c, h, w+1)                                          // [B, C, H, W+1]
	b.Concat(pw.Reshape(bsz*c*h, w+1), x.Reshape(bsz*c*h, w), zw)        // [B·C·H, W+1]
	zh := p.Get(bsz*c, 1, w+1)                                           // [B·C, 1, W+1]
	b.Write(zh, make([]float32, zh.Numel()))                             // zeros
	ph := p.Get(bsz, c, h+1, w+1)                                        // [B, C, H+1, W+1]
	b.Concat(ph.Reshape(bsz*c, h+1, w+1), pw.Reshape(bsz*c, h, w+1), zh) // [B·C, H+1, W+1]
	p.Put(zw, pw, zh)

	out := p.Get(bsz, conv.Out, conv.OutSize(h+1), conv.OutSize(w+1)) // [B, C, ⌊H/2⌋, ⌊W/2⌋]
	conv.Forward(b, out, ph)
	p.Put(ph)
	return out
}

// encode writes the posterior's mean and logvar [B, L, h, w] for image
// [B, In, H, W].
func (v *VAE) encode(e run, mean, logvar, image *engine.Tensor) {
	b, p := e.b, e.p
	enc := v.Encoder
	bsz, h, w := image.Dim(0), image.Dim(2), image.Dim(3)

	cur := p.Get(bsz, enc.ConvIn.Out, h, w) // [B, C0, H, W]
	enc.ConvIn.Forward(b, cur, image)
	for _, d := range enc.DownBlocks {
		for _, r := range d.Resnets {
			cur = r.forward(e, cur) // [B, C, H, W]
		}
		if d.Downsampler != nil {
			next := downsample(e, d.Downsampler, cur) // [B, C, H/2, W/2]
			p.Put(cur)
			cur = next
		}
	}
	mid := enc.MidBlock.forward(e, cur)       // [B, Cl, h, w]
	gn := p.Get(mid.Shape()...)               // [B, Cl, h, w]
	enc.ConvNormOut.Forward(b, gn, mid, true) // [B, Cl, h, w]
	p.Put(mid)
	if enc.ConvOut == nil { // conv_out itself is split
		v.QuantMean.Forward(b, mean, gn)     // [B, L, h, w]
		v.QuantLogvar.Forward(b, logvar, gn) // [B, L, h, w]
		p.Put(gn)
		return
	}
	mom := p.Get(bsz, enc.ConvOut.Out, gn.Dim(2), gn.Dim(3)) // [B, 2L, h, w]
	enc.ConvOut.Forward(b, mom, gn)
	p.Put(gn)
	v.QuantMean.Forward(b, mean, mom)     // [B, L, h, w]
	v.QuantLogvar.Forward(b, logvar, mom) // [B, L, h, w]
	p.Put(mom)
}

// decode writes the image dst [B, Out, H, W] for the latent z [B, L, h, w].
func (v *VAE) decode(e run, dst, z *engine.Tensor) {
	b, p := e.b, e.p
	dec := v.Decoder
	bsz, h, w := z.Dim(0), z.Dim(2), z.Dim(3)

	in := z
	if v.PostQuantConv != nil {
		in = p.Get(z.Shape()...) // [B, L, h, w]
		v.PostQuantConv.Forward(b, in, z)
	}
	cur := p.Get(bsz, dec.ConvIn.Out, h, w) // [B, Cl, h, w]
	dec.ConvIn.Forward(b, cur, in)
	if in != z {
		p.Put(in)
	}
	cur = dec.MidBlock.forward(e, cur) // [B, Cl, h, w]
	for _, u := range dec.UpBlocks {
		for _, r := range u.Resnets {
			cur = r.forward(e, cur) // [B, C, H, W]
		}
		if u.Upsampler != nil {
			// The buffers of this resolution are idle now and too small for
			// the next (4x the pixels): freeing them, here and twice below,
			// keeps the pool at what is live at once (SD's 512x512 decode:
			// 0.5 GiB, in the upsampler and in the next block's first
			// ResNet).
			p.Trim()
			bsz, c, h, w := cur.Dim(0), cur.Dim(1), cur.Dim(2), cur.Dim(3)
			up := p.Get(bsz, c, 2*h, 2*w) // [B, C, 2H, 2W]
			b.Upsample2x(up, cur)
			p.Put(cur)
			p.Trim()                      // cur's buffer too: the convolution's output needs 4x as much
			cur = p.Get(bsz, c, 2*h, 2*w) // [B, C, 2H, 2W]
			u.Upsampler.Forward(b, cur, up)
			p.Put(up)
			p.Trim() // up's buffer would hold one of the next block's half-size tensors, and the next need a buffer of its own
		}
	}
	gn := p.Get(cur.Shape()...)               // [B, C0, H, W]
	dec.ConvNormOut.Forward(b, gn, cur, true) // [B, C0, H, W]
	p.Put(cur)
	dec.ConvOut.Forward(b, dst, gn) // [B, Out, H, W]
	p.Put(gn)
}

// Encode writes the posterior of image [B, In, H, W] (values in [-1, 1])
// into mean and logvar [B, L, h, w], h = ⌊H/2⌋ per downsampling (H/8 for
// SD and H a multiple of 8). logvar is the network's output as is;
// diffusers clamps it to [-30, 20] only when it builds the distribution to
// sample from. Encode queues the work and returns; errors the device
// reports come from the backend's next Read or Sync.
func (v *VAE) Encode(mean, logvar, image *engine.Tensor) error {
	if v.Encoder == nil {
		return fmt.Errorf("vae: Encode: %w", errNoEncoder)
	}
	c := &v.Config
	if image.Rank() != 4 || image.Dim(1) != c.InChannels || image.DType() != engine.F32 {
		return fmt.Errorf("vae: Encode: image %v %v, want F32 [B, %d, H, W]", image.Shape(), image.DType(), c.InChannels)
	}
	h, w := image.Dim(2), image.Dim(3)
	for range len(c.BlockOutChannels) - 1 {
		if h < 2 || w < 2 {
			return fmt.Errorf("vae: Encode: image %v is too small for %d downsamplings", image.Shape(), len(c.BlockOutChannels)-1)
		}
		h, w = h/2, w/2
	}
	want := engine.Shape{image.Dim(0), c.LatentChannels, h, w}
	for _, t := range []*engine.Tensor{mean, logvar} {
		if !t.Shape().Equal(want) || t.DType() != engine.F32 {
			return fmt.Errorf("vae: Encode: output %v %v, want F32 %v", t.Shape(), t.DType(), want)
		}
	}
	v.encode(run{v.b, v.pool}, mean, logvar, image)
	return nil
}

// Decode writes the image dst [B, Out, f·h, f·w] (f = DownsampleFactor, 8
// for SD; values nominally in [-1, 1], not clamped) for the latent z [B, L,
// h, w], the diffusion latent already divided by the scaling factor.
//
// When MaxActivationBytes is positive and DecodeMemory(z) exceeds it,
// Decode frees its activation buffers and decodes in tiles instead
// (DecodeTiled): the largest square tile, in steps of 8 latent pixels,
// whose estimate fits the budget (at least 8), with an overlap of a
// quarter tile. Otherwise it queues the work and returns; errors the
// device reports come from the backend's next Read or Sync.
func (v *VAE) Decode(dst, z *engine.Tensor) error {
	if err := v.checkDecode(dst, z); err != nil {
		return err
	}
	if tile := v.tile(z.Shape()); tile > 0 {
		v.pool.Free()
		return v.DecodeTiled(dst, z, tile, tile/4)
	}
	v.decodePlanned(dst, z)
	return nil
}

// decodePlanned runs decode with its activations laid out in one arena
// (nn.Pool.Plan), rehearsed once for each latent shape: a buffer of its
// own, or the place HomeActivations gave.
func (v *VAE) decodePlanned(dst, z *engine.Tensor) {
	v.pool.Plan(fmt.Sprint("decode ", z.Shape()), func(b engine.Backend, p *nn.Pool) { v.decode(run{b, p}, dst, z) })
	v.pool.Begin()
	v.decode(run{v.b, v.pool}, dst, z)
	v.pool.End()
}

func (v *VAE) checkDecode(dst, z *engine.Tensor) error {
	c := &v.Config
	if z.Rank() != 4 || z.Dim(1) != c.LatentChannels || z.DType() != engine.F32 {
		return fmt.Errorf("vae: Decode: latent %v %v, want F32 [B, %d, h, w]", z.Shape(), z.DType(), c.LatentChannels)
	}
	f := c.DownsampleFactor()
	want := engine.Shape{z.Dim(0), c.OutChannels, f * z.Dim(2), f * z.Dim(3)}
	if !dst.Shape().Equal(want) || dst.DType() != engine.F32 {
		return fmt.Errorf("vae: Decode: output %v %v, want F32 %v", dst.Shape(), dst.DType(), want)
	}
	return nil
}

// ActivationBytes is the device memory the activation pool holds now
// (beyond what it holds in HomeActivations' region).
func (v *VAE) ActivationBytes() int64 { return v.pool.Bytes }

// DecodeArena is the arena, in elements of a backend with alignment
// align (engine.Suballocator), that Decode lays a latent of shape z out
// in: the whole decode's, or where it decodes in tiles, a tile's.
func (v *VAE) DecodeArena(z engine.Shape, align int) int {
	if tile := v.tile(z); tile > 0 { // DecodeTiled's tile shape
		z = engine.Shape{z[0], z[1], min(tile, z[2]), min(tile, z[3])}
	}
	return nn.ArenaSize(align, v.shapeOnlyDecode(z))
}

// HomeActivations makes Decode's arena a Sub of region (an F32 tensor
// of the backend's, an engine.Suballocator) from element off where it
// takes at most n elements (nn.Pool.Home); a nil region ends it.
func (v *VAE) HomeActivations(region *engine.Tensor, off, n int) { v.pool.Home(region, off, n) }

// FreeActivations frees the activation buffers Encode and Decode keep for
// their next call (the next call allocates them again): a pipeline calls
// it once the image is decoded.
func (v *VAE) FreeActivations() { v.pool.Free() }

// Weights are the tensors Load bound (Close frees them).
func (v *VAE) Weights() []*engine.Tensor { return v.weights }

// WeightBytes is the device memory the weights take.
func (v *VAE) WeightBytes() int64 {
	var n int64
	for _, t := range v.weights {
		n += int64(t.Bytes())
	}
	return n
}

// FastDecode marks the decoder's convolutions Fast (engine.Conv2DParams)
// or not: its images are bound for 8-bit pixels, so a backend may take a
// faster, slightly less exact algorithm. On the GL backend that is
// Winograd F(4x4, 3x3), which moves the fixtures' decoded images from
// 6.9e-6 to 2.6e-5 off diffusers' (the tests' bound: 1e-4 times the
// largest value, at least 1); the pipeline turns it on, training leaves
// it off.
func (v *VAE) FastDecode(on bool) {
	d := v.Decoder
	convs := []*nn.Conv2d{v.PostQuantConv, d.ConvIn, d.ConvOut}
	resnets := d.MidBlock.Resnets[:]
	for _, u := range d.UpBlocks {
		resnets = append(resnets, u.Resnets...)
		convs = append(convs, u.Upsampler)
	}
	for _, r := range resnets {
		convs = append(convs, r.Conv1, r.Conv2, r.ConvShortcut)
	}
	for _, c := range convs {
		if c != nil {
			c.P.Fast = on
		}
	}
}

// Close frees the weights and the activation buffers. The VAE must not be
// used afterwards.
func (v *VAE) Close() {
	for _, t := range v.weights {
		v.b.Free(t)
	}
	v.pool.Free()
	v.weights = nil
}
