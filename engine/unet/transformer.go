package unet

import (
	"glimmer/engine"
	"glimmer/engine/model"
	"glimmer/engine/nn"
)

// transformer2D is diffusers' Transformer2DModel (continuous input): the
// feature map becomes a sequence of H·W tokens, runs through
// BasicTransformerBlocks that attend to themselves and to the text, and
// is added back to its input:
//
//	tokens = proj_in(norm(x))       (1x1 conv on NCHW in SD1, Linear on tokens in SD2)
//	tokens = blocks(tokens, context)
//	out    = proj_out(tokens) + x
type transformer2D struct {
	Norm *nn.GroupNorm // norm: [C], eps AttnNormEps
	// ProjInConv/ProjOutConv: proj_in/proj_out as [C, C, 1, 1] convolutions
	// (SD1); ProjIn/ProjOut: as Linear [C, C] (SD2, use_linear_projection).
	ProjInConv, ProjOutConv *nn.Conv2d
	ProjIn, ProjOut         *nn.Linear
	Blocks                  []*basicTransformerBlock // transformer_blocks.<d>
}

// basicTransformerBlock is diffusers' BasicTransformerBlock (layer_norm,
// no ada-norm):
//
//	h = attn1(norm1(h)) + h            self-attention
//	h = attn2(norm2(h), context) + h   cross-attention to the text
//	h = ff(norm3(h)) + h               GEGLU feed-forward
type basicTransformerBlock struct {
	Norm1, Norm2, Norm3 *nn.LayerNorm // [C], eps 1e-5
	Attn1, Attn2        *attention
	FF                  *feedForward
}

// attention is diffusers' Attention: multi-head softmax(QKᵀ/√d)V, with
// to_q/to_k/to_v without bias and to_out.0 with bias. Heads stay
// interleaved in the feature axis.
type attention struct {
	ToQ   *nn.Linear // to_q: [C, C]
	ToK   *nn.Linear // to_k: [C, Ckv]
	ToV   *nn.Linear // to_v: [C, Ckv]
	ToOut *nn.Linear // to_out.0: [C, C]
	Heads int
	// QKV: at inference, a self-attention's to_q, to_k and to_v as one
	// product [C, 3C] (nn.NewFusedLinear) whose rows attention reads
	// packed (engine.AttentionParams.Packed); ToQ, ToK and ToV are then nil.
	QKV *nn.Linear

	// keepFor is the context whose keys and values are kept (UNet.
	// KeepContext): keptK and keptV, from store, once its first forward
	// made them.
	keepFor, keptK, keptV *engine.Tensor
	store                 *keptStore
}

// feedForward is diffusers' FeedForward with GEGLU: net.0.proj maps C to
// 8C = [value | gate], value·gelu(gate) is 4C wide, net.2 maps it back.
type feedForward struct {
	Proj *nn.Linear // net.0.proj: [8C, C]; at inference [C, 8C] with value and gate interleaved (Paired)
	Out  *nn.Linear // net.2: [C, 4C]
}

// layerNormEps is BasicTransformerBlock's LayerNorm eps (diffusers'
// default norm_eps), the same in SD 1.x and 2.x.
const layerNormEps = 1e-5

func newTransformer(l *nn.Loader, c *model.UNetConfig, ch, heads int) *transformer2D {
	t := &transformer2D{Norm: nn.NewGroupNorm(l, "norm", c.NormGroups, ch, c.AttnNormEps)}
	if c.UseLinearProjection {
		t.ProjIn = nn.NewLinear(l, "proj_in", ch, ch, true)
	} else {
		t.ProjInConv = nn.NewConv2d(l, "proj_in", ch, ch, 1, 1, 0)
	}
	for d := 0; d < c.TransformerDepth; d++ {
		bl := l.Subf("transformer_blocks.%d", d)
		t.Blocks = append(t.Blocks, &basicTransformerBlock{
			Norm1: nn.NewLayerNorm(bl, "norm1", ch, layerNormEps),
			Attn1: newSelfAttention(bl.Sub("attn1"), ch, heads),
			Norm2: nn.NewLayerNorm(bl, "norm2", ch, layerNormEps),
			Attn2: newAttention(bl.Sub("attn2"), ch, c.CrossAttentionDim, heads),
			Norm3: nn.NewLayerNorm(bl, "norm3", ch, layerNormEps),
			FF: &feedForward{
				Proj: nn.NewGEGLULinear(bl, "ff.net.0.proj", ch, 8*ch),
				Out:  nn.NewLinear(bl, "ff.net.2", 4*ch, ch, true),
			},
		})
	}
	if c.UseLinearProjection {
		t.ProjOut = nn.NewLinear(l, "proj_out", ch, ch, true)
	} else {
		t.ProjOutConv = nn.NewConv2d(l, "proj_out", ch, ch, 1, 1, 0)
	}
	return t
}

// newSelfAttention is newAttention of the tokens themselves, with the
// three projections fused at inference.
func newSelfAttention(l *nn.Loader, ch, heads int) *attention {
	if !l.TransposesLinears() {
		return newAttention(l, ch, ch, heads)
	}
	return &attention{
		QKV:   nn.NewFusedLinear(l, []string{"to_q", "to_k", "to_v"}, ch, ch),
		ToOut: nn.NewLinear(l, "to_out.0", ch, ch, true),
		Heads: heads,
	}
}

func newAttention(l *nn.Loader, ch, kv, heads int) *attention {
	return &attention{
		ToQ:   nn.NewLinear(l, "to_q", ch, ch, false),
		ToK:   nn.NewLinear(l, "to_k", kv, ch, false),
		ToV:   nn.NewLinear(l, "to_v", kv, ch, false),
		ToOut: nn.NewLinear(l, "to_out.0", ch, ch, true),
		Heads: heads,
	}
}

// forward returns proj_out(blocks(proj_in(norm(x)))) + x for x [B, C, H,
// W] and the text embedding context [B, L, Ckv], in a tensor from p. x
// may be one row [1, C, H, W] shared by the B contexts (UNet.Forward):
// the first block widens the tokens where the text comes in, and x is
// widened for the residual; the result has B rows.
func (t *transformer2D) forward(b engine.Backend, p *nn.Pool, x, context *engine.Tensor) *engine.Tensor {
	bsz, ch, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	n := h * w

	norm := p.Get(bsz, ch, h, w)      // [B, C, H, W]
	t.Norm.Forward(b, norm, x, false) // [B, C, H, W]
	tokens := p.Get(bsz, n, ch)       // [B, HW, C]
	if t.ProjInConv != nil {
		proj := p.Get(bsz, ch, h, w)                  // [B, C, H, W]
		t.ProjInConv.Forward(b, proj, norm)           // [B, C, H, W]
		b.Transpose(tokens, proj.Reshape(bsz, ch, n)) // [B, HW, C]
		p.Put(proj)
	} else {
		seq := p.Get(bsz, n, ch)                   // [B, HW, C]
		b.Transpose(seq, norm.Reshape(bsz, ch, n)) // [B, HW, C]
		t.ProjIn.Forward(b, tokens, seq)           // [B, HW, C]
		p.Put(seq)
	}
	p.Put(norm)

	for _, blk := range t.Blocks {
		tokens = blk.forward(b, p, tokens, context) // [B, HW, C]
	}
	if wide := tokens.Dim(0); bsz < wide {
		x = widen(b, p, x, wide) // [B, C, H, W]
		defer p.Put(x)
		bsz = wide
	}

	out := p.Get(bsz, ch, h, w) // [B, C, H, W]
	if t.ProjOutConv != nil {
		nchw := p.Get(bsz, ch, n)                                        // [B, C, HW]
		b.Transpose(nchw, tokens)                                        // [B, C, HW]
		t.ProjOutConv.ForwardAdd(b, out, nchw.Reshape(bsz, ch, h, w), x) // [B, C, H, W], + x
		p.Put(nchw)
	} else {
		proj := p.Get(bsz, n, ch)                  // [B, HW, C]
		t.ProjOut.Forward(b, proj, tokens)         // [B, HW, C]
		b.Transpose(out.Reshape(bsz, ch, n), proj) // [B, C, HW]
		p.Put(proj)
		b.Binary(out, out, x, engine.Add) // [B, C, H, W]
	}
	p.Put(tokens)
	return out
}

// forward updates the token sequence h [B, N, C] in place: each sublayer's
// last linear layer adds its output to h. With h one row shared by the B
// contexts, the self-attention runs on that row, which is then widened
// to B rows (a tensor from p replacing h, which goes back to p) for the
// cross-attention; forward returns the sequence.
func (blk *basicTransformerBlock) forward(b engine.Backend, p *nn.Pool, h, context *engine.Tensor) *engine.Tensor {
	norm := p.Get(h.Shape()...) // [B, N, C]

	blk.Norm1.Forward(b, norm, h)          // [B, N, C]
	blk.Attn1.forward(b, p, h, norm, norm) // [B, N, C], h += attn1

	if wide := context.Dim(0); h.Dim(0) < wide {
		hw := widen(b, p, h, wide) // [B, N, C]
		p.Put(h, norm)
		h, norm = hw, p.Get(hw.Shape()...) // [B, N, C]
	}
	blk.Norm2.Forward(b, norm, h)             // [B, N, C]
	blk.Attn2.forward(b, p, h, norm, context) // [B, N, C], h += attn2

	blk.Norm3.Forward(b, norm, h) // [B, N, C]
	blk.FF.forward(b, p, h, norm) // [B, N, C], h += ff

	p.Put(norm)
	return h
}

// forward adds attention of x [B, N, C] over ctx [B, L, Ckv] (ctx = x for
// self-attention) to h [B, N, C].
func (a *attention) forward(b engine.Backend, p *nn.Pool, h, x, ctx *engine.Tensor) {
	if a.QKV != nil {
		a.selfPacked(b, p, h, x)
		return
	}
	bsz, n, ch := x.Dim(0), x.Dim(1), a.ToQ.Out
	q := p.Get(bsz, n, ch)                                          // [B, N, H*D]
	a.ToQ.Forward(b, q, x)                                          // [B, N, H*D]
	k, v, kept := a.keysValues(b, p, ctx)                           // [B, L, H*D] each
	o := p.Get(bsz, n, ch)                                          // [B, N, H*D]
	b.Attention(o, q, k, v, engine.AttentionParams{Heads: a.Heads}) // [B, N, H*D]
	a.ToOut.ForwardAdd(b, h, o, h)                                  // [B, N, C], h + to_out(o)
	p.Put(q, o)
	if !kept {
		p.Put(k, v)
	}
}

// selfPacked is forward's self-attention through the fused projection.
func (a *attention) selfPacked(b engine.Backend, p *nn.Pool, h, x *engine.Tensor) {
	bsz, n, ch := x.Dim(0), x.Dim(1), a.ToOut.Out
	qkv := p.Get(bsz, n, 3*ch)                                                          // [B, N, 3·H*D]: q | k | v
	a.QKV.Forward(b, qkv, x)                                                            // [B, N, 3·H*D]
	o := p.Get(bsz, n, ch)                                                              // [B, N, H*D]
	b.Attention(o, qkv, nil, nil, engine.AttentionParams{Heads: a.Heads, Packed: true}) // [B, N, H*D]
	a.ToOut.ForwardAdd(b, h, o, h)                                                      // [B, N, C], h + to_out(o)
	p.Put(qkv, o)
}

// keysValues projects ctx [B, L, Ckv] to keys and values [B, L, H*D] in
// tensors from p, or, for the context a.keepFor, in tensors of their own
// that the first call fills and later calls return as they are (kept).
func (a *attention) keysValues(b engine.Backend, p *nn.Pool, ctx *engine.Tensor) (k, v *engine.Tensor, kept bool) {
	kept = ctx == a.keepFor
	if kept && a.keptK != nil {
		return a.keptK, a.keptV, true
	}
	bsz, l, ch := ctx.Dim(0), ctx.Dim(1), a.ToK.Out
	if kept && p.Rehearsing() { // stand-ins: the first real pass fills the kept ones
		return b.New(engine.F32, bsz, l, ch), b.New(engine.F32, bsz, l, ch), true // [B, L, H*D] each
	}
	if kept {
		a.keptK, a.keptV = a.store.new(bsz, l, ch), a.store.new(bsz, l, ch) // [B, L, H*D] each
		k, v = a.keptK, a.keptV
	} else {
		k, v = p.Get(bsz, l, ch), p.Get(bsz, l, ch) // [B, L, H*D] each
	}
	a.ToK.Forward(b, k, ctx) // [B, L, H*D]
	a.ToV.Forward(b, v, ctx) // [B, L, H*D]
	return k, v, kept
}

// forget frees the kept keys and values and keeps none from now on.
func (a *attention) forget() {
	if a.keptK != nil {
		a.store.free(a.keptK)
		a.store.free(a.keptV)
	}
	a.keepFor, a.keptK, a.keptV = nil, nil, nil
}

// forward adds net.2(GEGLU(net.0.proj(x))) for x [B, N, C] to h.
func (f *feedForward) forward(b engine.Backend, p *nn.Pool, h, x *engine.Tensor) {
	bsz, n := x.Dim(0), x.Dim(1)
	gated := p.Get(bsz, n, f.Out.In) // [B, N, 4C]
	if f.Proj.Paired {
		f.Proj.ForwardGEGLU(b, gated, x) // [B, N, 4C], GEGLU in the product's epilogue
	} else {
		proj := p.Get(bsz, n, f.Proj.Out) // [B, N, 8C]
		f.Proj.Forward(b, proj, x)        // [B, N, 8C]: [value | gate]
		b.GEGLU(gated, proj)              // [B, N, 4C]
		p.Put(proj)
	}
	f.Out.ForwardAdd(b, h, gated, h) // [B, N, C], h + net.2(gated)
	p.Put(gated)
}
