// Package unet is Stable Diffusion's denoising network ε_θ(z_t, t, y):
// diffusers' UNet2DConditionModel as SD 1.x and 2.x configure it, with its
// weights bound by their canonical (diffusers) names.
//
//	conv_in → down blocks (ResNet [+ transformer]) × LayersPerBlock, downsampler
//	        → mid block (ResNet, transformer, ResNet)
//	        → up blocks (concat skip, ResNet [+ transformer]) × (LayersPerBlock+1), upsampler
//	        → GroupNorm + SiLU → conv_out
//
// The timestep enters every ResNet through a sinusoidal embedding and an
// MLP; the text embedding enters every transformer through
// cross-attention. Each block type has its own file: resnet.go
// (ResnetBlock2D), transformer.go (Transformer2DModel and its
// BasicTransformerBlock), resample.go (Downsample2D, Upsample2D).
//
// Activations are NCHW [B, C, H, W] between blocks and [B, H·W, C] token
// sequences inside the transformers (see package engine for the layout).
// Every line that produces a tensor carries its shape.
package unet

import (
	"fmt"
	"slices"

	"glimmer/engine"
	"glimmer/engine/model"
	"glimmer/engine/nn"
)

// UNet is a loaded U-Net on one backend. It is not safe for concurrent
// use: Forward reuses its activation buffers.
type UNet struct {
	Config model.UNetConfig

	ConvIn        *nn.Conv2d     // conv_in: [C0, In, 3, 3]
	TimeEmbedding *timeEmbedding // time_embedding: sinusoid → Linear → SiLU → Linear
	DownBlocks    []*downBlock   // down_blocks.<level>
	MidBlock      *midBlock      // mid_block
	UpBlocks      []*upBlock     // up_blocks.<i>, at level Levels-1-i
	ConvNormOut   *nn.GroupNorm  // conv_norm_out: [C0], followed by SiLU
	ConvOut       *nn.Conv2d     // conv_out: [Out, C0, 3, 3]

	b         engine.Backend
	pool      *nn.Pool                  // activations, recycled between calls
	kept      keptStore                 // what KeepTimesteps and KeepContext keep
	keptTs    map[float32]int           // KeepTimesteps: a kept timestep's first row
	keptBatch int                       // and the batch they were kept for
	weights   []*engine.Tensor          // uploaded by Load, freed by Close
	resize    map[[2]int]*engine.Tensor // nearest-resize selection matrices by (in, out)
}

// timeEmbedding is diffusers' Timesteps + TimestepEmbedding.
type timeEmbedding struct {
	Params  engine.TimestepParams
	Linear1 *nn.Linear // linear_1: [TimeEmbedDim, C0]
	Linear2 *nn.Linear // linear_2: [TimeEmbedDim, TimeEmbedDim]
}

// downBlock is CrossAttnDownBlock2D (with Attentions) or DownBlock2D.
type downBlock struct {
	Resnets     []*resnetBlock
	Attentions  []*transformer2D // one per ResNet, or nil
	Downsampler *downsample2D    // nil at the last level
}

// midBlock is UNetMidBlock2DCrossAttn.
type midBlock struct {
	Resnets   [2]*resnetBlock
	Attention *transformer2D // nil without MidAttention
}

// upBlock is CrossAttnUpBlock2D (with Attentions) or UpBlock2D.
type upBlock struct {
	Resnets    []*resnetBlock
	Attentions []*transformer2D // one per ResNet, or nil
	Upsampler  *upsample2D      // nil in the last (full-resolution) block
}

// Load builds the U-Net from cfg, binding weights through l, whose names
// are the U-Net's canonical ones ("conv_in.weight"): for a model.Model,
// nn.NewLoader(b, m.Component(model.UNet), f32). The weights Load uploads
// belong to the UNet and are freed by Close.
func Load(l *nn.Loader, cfg model.UNetConfig) (*UNet, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	first := len(l.Tensors())
	u := &UNet{Config: cfg, b: l.B, pool: nn.NewPool(l.B), resize: map[[2]int]*engine.Tensor{}}
	n := cfg.Levels()
	c0 := cfg.BlockOutChannels[0]

	u.ConvIn = nn.NewConv2d(l, "conv_in", cfg.InChannels, c0, 3, 1, 1)
	u.TimeEmbedding = &timeEmbedding{
		Params: engine.TimestepParams{
			Dim:                c0,
			FlipSinToCos:       cfg.FlipSinToCos,
			DownscaleFreqShift: float32(cfg.FreqShift),
		},
		Linear1: nn.NewLinear(l, "time_embedding.linear_1", c0, cfg.TimeEmbedDim, true),
		Linear2: nn.NewLinear(l, "time_embedding.linear_2", cfg.TimeEmbedDim, cfg.TimeEmbedDim, true),
	}

	prev := c0
	for lvl, out := range cfg.BlockOutChannels {
		bl := l.Subf("down_blocks.%d", lvl)
		d := &downBlock{}
		for j := 0; j < cfg.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			d.Resnets = append(d.Resnets, newResnet(bl.Subf("resnets.%d", j), &cfg, in, out))
			if cfg.DownAttention[lvl] {
				d.Attentions = append(d.Attentions, newTransformer(bl.Subf("attentions.%d", j), &cfg, out, cfg.Heads[lvl]))
			}
		}
		if lvl < n-1 {
			d.Downsampler = newDownsample(bl.Sub("downsamplers.0"), out)
		}
		u.DownBlocks = append(u.DownBlocks, d)
		prev = out
	}

	cl := cfg.BlockOutChannels[n-1]
	ml := l.Sub("mid_block")
	u.MidBlock = &midBlock{}
	u.MidBlock.Resnets[0] = newResnet(ml.Sub("resnets.0"), &cfg, cl, cl)
	if cfg.MidAttention {
		u.MidBlock.Attention = newTransformer(ml.Sub("attentions.0"), &cfg, cl, cfg.Heads[n-1])
	}
	u.MidBlock.Resnets[1] = newResnet(ml.Sub("resnets.1"), &cfg, cl, cl)

	prev = cl
	for i := 0; i < n; i++ {
		lvl := n - 1 - i
		out := cfg.BlockOutChannels[lvl]
		skipIn := cfg.BlockOutChannels[max(lvl-1, 0)] // width of the down block's input
		bl := l.Subf("up_blocks.%d", i)
		up := &upBlock{}
		for j := 0; j <= cfg.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			skip := out
			if j == cfg.LayersPerBlock {
				skip = skipIn
			}
			up.Resnets = append(up.Resnets, newResnet(bl.Subf("resnets.%d", j), &cfg, in+skip, out))
			if cfg.UpAttention[i] {
				up.Attentions = append(up.Attentions, newTransformer(bl.Subf("attentions.%d", j), &cfg, out, cfg.Heads[lvl]))
			}
		}
		if i < n-1 {
			up.Upsampler = newUpsample(bl.Sub("upsamplers.0"), out)
		}
		u.UpBlocks = append(u.UpBlocks, up)
		prev = out
	}

	u.ConvNormOut = nn.NewGroupNorm(l, "conv_norm_out", cfg.NormGroups, c0, cfg.NormEps)
	u.ConvOut = nn.NewConv2d(l, "conv_out", c0, cfg.OutChannels, 3, 1, 1)

	u.weights = append(u.weights, l.Tensors()[first:]...)
	if err := l.Err(); err != nil {
		u.Close()
		return nil, fmt.Errorf("unet: %w", err)
	}
	u.kept = keptStore{b: u.b}
	for _, a := range u.crossAttentions() {
		a.store = &u.kept
	}
	return u, nil
}

func checkConfig(c model.UNetConfig) error {
	n := c.Levels()
	switch {
	case n == 0:
		return fmt.Errorf("no levels (BlockOutChannels is empty)")
	case len(c.DownAttention) != n || len(c.UpAttention) != n || len(c.Heads) != n:
		return fmt.Errorf("%d levels but %d DownAttention, %d UpAttention, %d Heads entries",
			n, len(c.DownAttention), len(c.UpAttention), len(c.Heads))
	case c.LayersPerBlock < 1 || c.TransformerDepth < 1 || c.NormGroups < 1:
		return fmt.Errorf("LayersPerBlock %d, TransformerDepth %d, NormGroups %d must be positive",
			c.LayersPerBlock, c.TransformerDepth, c.NormGroups)
	case c.InChannels < 1 || c.OutChannels < 1 || c.TimeEmbedDim < 1 || c.CrossAttentionDim < 1:
		return fmt.Errorf("InChannels %d, OutChannels %d, TimeEmbedDim %d, CrossAttentionDim %d must be positive",
			c.InChannels, c.OutChannels, c.TimeEmbedDim, c.CrossAttentionDim)
	}
	for lvl, ch := range c.BlockOutChannels {
		if ch%c.NormGroups != 0 {
			return fmt.Errorf("level %d: %d channels do not split into %d groups", lvl, ch, c.NormGroups)
		}
		if c.Heads[lvl] < 1 || ch%c.Heads[lvl] != 0 {
			return fmt.Errorf("level %d: %d channels do not split into %d heads", lvl, ch, c.Heads[lvl])
		}
	}
	return nil
}

// Forward runs one denoising step: dst [B, Out, h, w] = ε_θ(x, t, context)
// (or v for v-prediction models: the raw network output) for x [B, In, h,
// w], one timestep per batch entry or one shared by all (len(timesteps)
// is B or 1), and the text embedding context [B, L, CrossAttentionDim]
// (L = 77 per prompt chunk). Batch entries are independent: CFG runs the
// conditional and unconditional halves as one batch of two.
//
// x may also be [1, In, h, w] with a batch of B contexts and one shared
// timestep: the same latents under B prompts, as CFG's two halves are.
// Everything before the first cross-attention is then the same for every
// entry and runs once, on one row (conv_in, SD 1.5's first ResNet, and
// its first transformer up to the self-attention), and the rows are
// copied out where the text comes in (widen); the result is what x
// repeated B times would give.
//
// dst is the caller's and must not alias x. Any h, w ≥ 1 work; when they
// are not multiples of 2^(Levels-1), the up path resizes to the skip
// connections' sizes as diffusers does (forward_upsample_size). Forward
// queues the work and returns; errors the device reports come from the
// backend's next Read or Sync. Intermediate buffers come from the UNet's
// pool, so repeated calls with the same shapes allocate nothing.
func (u *UNet) Forward(dst, x *engine.Tensor, timesteps []float32, context *engine.Tensor) error {
	c := &u.Config
	if x.Rank() != 4 || x.Dim(1) != c.InChannels {
		return fmt.Errorf("unet: input %v, want [B, %d, H, W]", x.Shape(), c.InChannels)
	}
	if context.Rank() != 3 || context.Dim(2) != c.CrossAttentionDim {
		return fmt.Errorf("unet: context %v, want [B, L, %d]", context.Shape(), c.CrossAttentionDim)
	}
	bsz, h, w := context.Dim(0), x.Dim(2), x.Dim(3)
	if x.Dim(0) != bsz && x.Dim(0) != 1 {
		return fmt.Errorf("unet: input %v for %d contexts (want a batch of %d or 1)", x.Shape(), bsz, bsz)
	}
	if want := (engine.Shape{bsz, c.OutChannels, h, w}); !dst.Shape().Equal(want) {
		return fmt.Errorf("unet: output %v, want %v", dst.Shape(), want)
	}
	if len(timesteps) != bsz && len(timesteps) != 1 {
		return fmt.Errorf("unet: %d timesteps for a batch of %d (want %d or 1)", len(timesteps), bsz, bsz)
	}
	if x.Dim(0) < bsz && slices.ContainsFunc(timesteps, func(t float32) bool { return t != timesteps[0] }) {
		return fmt.Errorf("unet: one input for %d contexts needs one timestep, got %v", bsz, timesteps)
	}
	if x.DType() != engine.F32 || dst.DType() != engine.F32 || context.DType() != engine.F32 {
		return fmt.Errorf("unet: x %v, dst %v and context %v must be F32", x.DType(), dst.DType(), context.DType())
	}
	ts := make([]float32, bsz)
	for i := range ts {
		ts[i] = timesteps[min(i, len(timesteps)-1)]
	}
	row := u.keptRow(ts)

	// The pool lays the pass's activations out in one arena (nn.Pool.Plan),
	// rehearsed once for each kind of call: what the pass takes from the
	// pool depends on the shapes, on whether the time embedding is kept and
	// on whether the context's keys and values are.
	key := fmt.Sprint(x.Shape(), context.Shape(), row >= 0, u.keepsContext(context))
	u.pool.Plan(key, func(b engine.Backend, p *nn.Pool) { u.forward(b, p, dst, x, ts, row, context) })
	u.pool.Begin()
	u.forward(u.b, u.pool, dst, x, ts, row, context)
	u.pool.End()
	return nil
}

// forward is Forward's pass on b with activations from p, for timesteps
// ts (one per context row) whose kept time embedding starts at row (-1:
// none kept).
func (u *UNet) forward(b engine.Backend, p *nn.Pool, dst, x *engine.Tensor, ts []float32, row int, context *engine.Tensor) {
	c := &u.Config
	bsz, h, w := context.Dim(0), x.Dim(2), x.Dim(3)

	// Time embedding; every ResNet adds time_emb_proj(SiLU(emb)), so the
	// SiLU is applied once here, unless KeepTimesteps projected it already.
	var temb *engine.Tensor
	te := stepEmbedding{row: row}
	if te.row < 0 {
		temb = u.TimeEmbedding.forward(b, p, ts) // [B, TimeEmbedDim]
		b.Unary(temb, temb, engine.SiLU)         // [B, TimeEmbedDim]
		te.act = temb
	}

	// Down path: every block output is kept as a skip connection. With a
	// shared input the rows stay one (x's batch, b1) until a transformer
	// widens them to B; skips kept before that are widened when popped.
	hs := p.Get(x.Dim(0), c.BlockOutChannels[0], h, w) // [b1, C0, H, W]
	u.ConvIn.Forward(b, hs, x)                         // [b1, C0, H, W]
	skips := []*engine.Tensor{hs}
	for _, d := range u.DownBlocks {
		for j, r := range d.Resnets {
			hs = r.forward(b, p, hs, te) // [B, C, H, W]
			if d.Attentions != nil {
				a := d.Attentions[j].forward(b, p, hs, context) // [B, C, H, W]
				p.Put(hs)
				hs = a
			}
			skips = append(skips, hs)
		}
		if d.Downsampler != nil {
			hs = d.Downsampler.forward(b, p, hs) // [B, C, ⌈H/2⌉, ⌈W/2⌉]
			skips = append(skips, hs)
		}
	}

	// Mid block. The last skip (hs itself) stays alive until it is popped.
	m := u.MidBlock
	cur := m.Resnets[0].forward(b, p, hs, te) // [B, Cl, h, w]
	if m.Attention != nil {
		a := m.Attention.forward(b, p, cur, context) // [B, Cl, h, w]
		p.Put(cur)
		cur = a
	}
	next := m.Resnets[1].forward(b, p, cur, te) // [B, Cl, h, w]
	p.Put(cur)
	cur = next

	// Up path: each ResNet consumes the latest skip, concatenated after the
	// current features as torch.cat([h, skip], dim=1).
	for _, up := range u.UpBlocks {
		for j, r := range up.Resnets {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			if skip.Dim(0) < cur.Dim(0) {
				wide := widen(b, p, skip, cur.Dim(0)) // [B, Cskip, H, W]
				p.Put(skip)
				skip = wide
			}
			cat := p.Get(cur.Dim(0), cur.Dim(1)+skip.Dim(1), cur.Dim(2), cur.Dim(3)) // [B, C+Cskip, H, W]
			b.Concat(cat, cur, skip)                                                 // [B, C+Cskip, H, W]
			p.Put(cur, skip)
			cur = r.forward(b, p, cat, te) // [B, C, H, W]
			p.Put(cat)
			if up.Attentions != nil {
				a := up.Attentions[j].forward(b, p, cur, context) // [B, C, H, W]
				p.Put(cur)
				cur = a
			}
		}
		if up.Upsampler != nil {
			// Upsample to the next skip's size: 2x, or 2x-1 after an odd size
			// was downsampled.
			target := skips[len(skips)-1]
			next := up.Upsampler.forward(u, b, p, cur, target.Dim(2), target.Dim(3)) // [B, C, H', W']
			p.Put(cur)
			cur = next
		}
	}

	// Output head.
	if cur.Dim(0) < bsz { // a U-Net without cross-attention
		wide := widen(b, p, cur, bsz) // [B, C0, H, W]
		p.Put(cur)
		cur = wide
	}
	gn := p.Get(cur.Shape()...)             // [B, C0, H, W]
	u.ConvNormOut.Forward(b, gn, cur, true) // [B, C0, H, W]
	u.ConvOut.Forward(b, dst, gn)           // [B, Out, H, W]
	p.Put(gn, cur)
	if temb != nil {
		p.Put(temb)
	}
}

// widen returns, in a tensor from p, x [1, ...] repeated as n rows [n,
// ...]: Concat's exact copies, doubling the rows each pass. x stays the
// caller's.
func widen(b engine.Backend, p *nn.Pool, x *engine.Tensor, n int) *engine.Tensor {
	shape := x.Shape().Clone()
	r := x.Numel() // elements a row
	cur := x
	for have := 1; have < n; {
		k := min(have, n-have)
		shape[0] = have + k
		next := p.Get(shape...)                                                          // [have+k, ...]
		b.Concat(next.Reshape(1, have+k, r), cur.Reshape(1, have, r), cur.View(1, k, r)) // [1, have+k, row]
		if cur != x {
			p.Put(cur)
		}
		cur, have = next, have+k
	}
	return cur
}

// forward returns the embedding MLP's output for timesteps t (one per
// batch entry) from pool p; the caller puts it back.
func (te *timeEmbedding) forward(b engine.Backend, p *nn.Pool, t []float32) *engine.Tensor {
	bsz := len(t)
	tt := p.Get(bsz)                        // [B]
	b.Write(tt, t)                          // [B]
	sin := p.Get(bsz, te.Params.Dim)        // [B, C0]
	b.TimestepEmbedding(sin, tt, te.Params) // [B, C0]
	h := p.Get(bsz, te.Linear1.Out)         // [B, TimeEmbedDim]
	te.Linear1.Forward(b, h, sin)           // [B, TimeEmbedDim]
	b.Unary(h, h, engine.SiLU)              // [B, TimeEmbedDim]
	emb := p.Get(bsz, te.Linear2.Out)       // [B, TimeEmbedDim]
	te.Linear2.Forward(b, emb, h)           // [B, TimeEmbedDim]
	p.Put(tt, sin, h)
	return emb
}

// ActivationBytes is the device memory the activation pool holds now.
func (u *UNet) ActivationBytes() int64 { return u.pool.Bytes }

// FreeActivations frees the activation buffers Forward keeps for its next
// call (which allocates them again): a pipeline calls it after the
// denoising loop, so they are not held while the VAE decodes.
func (u *UNet) FreeActivations() { u.pool.Free() }

// FastConvs marks every convolution Fast (engine.Conv2DParams) or not, as
// vae.FastDecode does the decoder's: a backend may take a faster, slightly
// less exact algorithm. On the GL backend that is Winograd F(4x4, 3x3)
// where a convolution makes at least 128 tiles of 4x4 (SD 1.5's 64x64 and
// 32x32 latents with CFG). Forced on every 3x3 convolution of the
// fixtures' U-Nets it moves their outputs at most 1.7e-5 off diffusers'
// (4.4e-6 to 8.7e-6 without), within the 1e-4 of float32 (TestFastConvs).
// The pipeline turns it on; training leaves it off.
func (u *UNet) FastConvs(on bool) {
	for _, c := range u.convs() {
		c.P.Fast = on
	}
}

// FoldTimeEmbedding makes every ResNet add its time embedding inside
// norm2 (engine.GroupNormParams.Shift) instead of by a Binary Add into
// conv1's output, which nothing else reads: the same bits, one pass of
// memory traffic and one dispatch fewer per ResNet. Inference only: the
// shift has no gradient, so training leaves it off. The pipeline turns it
// on.
func (u *UNet) FoldTimeEmbedding(on bool) {
	for _, r := range u.resnets() {
		r.foldTemb = on
	}
}

// KeepTimesteps lets Forward take each ResNet's projected time embedding
// from one computed now for every timestep of ts (a generation's steps,
// each shared by the batch of B): the time embedding and the ResNets'
// time_emb_proj products run once, on steps·B rows, instead of at every
// step on B (about 50 small dispatches a step for SD 1.5). Forward uses
// them when all its timesteps are one of ts and its batch is B, and
// computes the embedding itself otherwise. Inference only, and only with
// FoldTimeEmbedding on (the kept rows are norm2's shift); otherwise it
// keeps nothing. ForgetTimesteps frees them ([steps·B, Out] a ResNet).
func (u *UNet) KeepTimesteps(ts []float32, batch int) {
	u.ForgetTimesteps()
	rs := u.resnets()
	if len(ts) == 0 || batch < 1 || !rs[0].foldTemb {
		return
	}
	rows := make([]float32, len(ts)*batch)
	for i := range rows {
		rows[i] = ts[i/batch]
	}
	b, p := u.b, u.pool
	temb := u.TimeEmbedding.forward(b, p, rows) // [steps·B, TimeEmbedDim]
	b.Unary(temb, temb, engine.SiLU)            // [steps·B, TimeEmbedDim]
	for _, r := range rs {
		r.kept = u.kept.new(len(rows), r.TimeEmbProj.Out) // [steps·B, Out]
		r.TimeEmbProj.Forward(b, r.kept, temb)            // [steps·B, Out]
	}
	p.Put(temb)
	u.keptTs = make(map[float32]int, len(ts))
	for i, t := range ts {
		if _, ok := u.keptTs[t]; !ok {
			u.keptTs[t] = i * batch
		}
	}
	u.keptBatch = batch
}

// ForgetTimesteps frees what KeepTimesteps kept.
func (u *UNet) ForgetTimesteps() {
	for _, r := range u.resnets() {
		if r.kept != nil {
			u.kept.free(r.kept)
			r.kept = nil
		}
	}
	u.keptTs, u.keptBatch = nil, 0
}

// keptRow is the first kept row of timesteps ts (one per batch entry),
// or -1 when they are not one kept timestep for a batch of the kept size.
func (u *UNet) keptRow(ts []float32) int {
	if u.keptTs == nil || len(ts) != u.keptBatch {
		return -1
	}
	row, ok := u.keptTs[ts[0]]
	for _, t := range ts[1:] {
		ok = ok && t == ts[0]
	}
	if !ok {
		return -1
	}
	return row
}

// KeepContext lets Forward project context's keys and values for the
// cross-attentions once and reuse them for as long as it is called with
// this same tensor, until ForgetContext: a generation's text embedding is
// the same at every step, so its to_k and to_v products (2 of every
// cross-attention's 4 projections) need computing only at the first.
// The results are bit-identical. context's contents must not change in
// the meantime; the kept tensors ([B, L, C] twice per cross-attention:
// 15 MB for SD 1.5 with CFG) are allocated at the first Forward.
func (u *UNet) KeepContext(context *engine.Tensor) {
	u.ForgetContext()
	for _, a := range u.crossAttentions() {
		a.keepFor = context
	}
}

// keepsContext reports whether Forward keeps context's keys and values.
func (u *UNet) keepsContext(context *engine.Tensor) bool {
	as := u.crossAttentions()
	return len(as) > 0 && as[0].keepFor == context
}

// ForgetContext frees what KeepContext kept and keeps nothing from now on.
func (u *UNet) ForgetContext() {
	for _, a := range u.crossAttentions() {
		a.forget()
	}
}

// ActivationArena bounds the arena, in elements of a backend with
// alignment align (engine.Suballocator), that Forward lays its pass out
// in for input x [1 or B, C, h, w] and context [B, L, C'] as Generate
// calls it: it rehearses the pass with neither the time embedding nor
// the context's keys and values kept, which takes what the kept pass
// takes and their computation besides (TestPlanSD15UNet).
func (u *UNet) ActivationArena(x, context engine.Shape, align int) int {
	var so nn.ShapeOnly
	xt := so.New(engine.F32, x...)                                          // [1 or B, C, h, w]
	ct := so.New(engine.F32, context...)                                    // [B, L, C']
	dst := so.New(engine.F32, context[0], u.Config.OutChannels, x[2], x[3]) // [B, C, h, w]
	ts := make([]float32, context[0])
	return nn.ArenaSize(align, func(b engine.Backend, p *nn.Pool) { u.forward(b, p, dst, xt, ts, -1, ct) })
}

// HomeActivations makes Forward's arena a Sub of region (an F32 tensor
// of the backend's, an engine.Suballocator) from element off where it
// takes at most n elements (nn.Pool.Home); a nil region ends it.
func (u *UNet) HomeActivations(region *engine.Tensor, off, n int) { u.pool.Home(region, off, n) }

// HomeKept lets the time embeddings KeepTimesteps keeps and the keys and
// values KeepContext keeps lie in elements [off, off+n) of region (an F32
// tensor of the backend's, an engine.Suballocator), one after another,
// where they fit; a nil region ends it. Nothing may be kept meanwhile.
func (u *UNet) HomeKept(region *engine.Tensor, off, n int) { u.kept.home(region, off, n) }

// ActivationPeak is the most device memory the activation pool has held.
func (u *UNet) ActivationPeak() int64 { return u.pool.Peak }

// Weights are the tensors Load bound (Close frees them).
func (u *UNet) Weights() []*engine.Tensor { return u.weights }

// WeightBytes is the device memory the weights take.
func (u *UNet) WeightBytes() int64 {
	var n int64
	for _, t := range u.weights {
		n += int64(t.Bytes())
	}
	return n
}

// Close frees the weights, the activation buffers and the resize
// matrices. The UNet must not be used afterwards.
func (u *UNet) Close() {
	for _, t := range u.weights {
		u.b.Free(t)
	}
	for _, t := range u.resize {
		u.b.Free(t)
	}
	u.pool.Free()
	u.ForgetContext()
	u.ForgetTimesteps()
	u.weights, u.resize = nil, nil
}
