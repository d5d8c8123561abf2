// Package taesd is the tiny autoencoder (madebyollin's TAESD) that
// Glimmer uses for live previews: a decoder from SD latents to images
// about a hundred times cheaper than the VAE's, and the matching encoder.
//
// The architecture is read from the weight names, so files of either
// naming work:
//
//   - taesd.py's (taesd_decoder.safetensors, taesd_encoder.safetensors):
//     the layers of an nn.Sequential by index, "1.weight",
//     "3.conv.0.weight", "3.skip.weight". Decoder index 0 is the clamp
//     tanh(z/3)·3, which has no weights; other weightless indices are
//     ReLUs and nearest ×2 upsamplings.
//   - diffusers' AutoencoderTiny: "decoder.layers.N" is taesd.py's
//     decoder layer N+1 (the clamp is not a layer there) and
//     "encoder.layers.N" its encoder layer N. One file holds both.
//
// Decoder: clamp → conv → ReLU → (Block × k, Upsample ×2, conv without
// bias) × 3 → Block → conv to RGB. Encoder: conv → Block → (conv stride 2
// without bias, Block × k) × 3 → conv to latent channels. A Block is
// ReLU(conv(ReLU(conv(ReLU(conv(x))))) + skip(x)), skip the identity or
// a 1x1 convolution without bias. Every conv is 3x3 with padding 1.
//
// Latents are SD's scaled latents as the U-Net sees them (no division by
// the VAE's scaling factor); images are in [-1, 1] like the VAE's:
// Decode gives 2·D(z)−1 and Encode computes E((x+1)/2), where D and E
// are taesd.py's networks on [0, 1] images.
//
// Activations are NCHW [B, C, H, W] (see package engine for the layout).
// Every line that produces a tensor carries its shape.
package taesd

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"glimmer/engine"
	"glimmer/engine/ckpt"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
)

// Kind is what a layer does.
type Kind int

const (
	Clamp    Kind = iota // tanh(x/3)·3, the decoder's first step
	Conv                 // 3x3 convolution, padding 1
	Block                // taesd.py's Block
	ReLU                 // max(x, 0)
	Upsample             // nearest ×2
)

func (k Kind) String() string {
	return [...]string{"clamp", "conv", "block", "relu", "upsample"}[k]
}

// Layer is one step of a network.
type Layer struct {
	Kind  Kind
	Index int        // taesd.py's index in its nn.Sequential
	Conv  *nn.Conv2d // Conv: [Out, In, 3, 3]; no bias and stride 2 for the encoder's downsampling convs
	Block *ResBlock  // Block
}

// ResBlock is taesd.py's Block: ReLU(conv.4(ReLU(conv.2(ReLU(conv.0(x)))))
// + skip(x)).
type ResBlock struct {
	Conv [3]*nn.Conv2d // conv.0: [Out, In, 3, 3]; conv.2, conv.4: [Out, Out, 3, 3]; all with bias
	Skip *nn.Conv2d    // skip: [Out, In, 1, 1] without bias; nil is the identity (In == Out)
}

// Net is a decoder or an encoder: its layers in order.
type Net struct {
	Layers []Layer
	In     int // channels in: latent (decoder) or RGB (encoder)
	Out    int // channels out
	// Scale is the spatial factor: the decoder upsamples by Scale, the
	// encoder downsamples by it (8 for SD's TAESD).
	Scale int
}

// Model is an opened TAESD file on one backend: a decoder, an encoder, or
// both (diffusers' AutoencoderTiny). It is not safe for concurrent use.
type Model struct {
	Path           string
	Naming         string // "taesd.py" or "diffusers"
	LatentChannels int
	Decoder        *Net // nil when the file has no decoder
	Encoder        *Net // nil when the file has no encoder

	b       engine.Backend
	pool    *nn.Pool
	weights []*engine.Tensor
}

// weightsFile is an open safetensors or torch checkpoint file.
type weightsFile interface {
	Names() []string
	Raw(name string) ([]byte, error)
	Float32(name string) ([]float32, error)
	Close() error
}

// source serves a file's tensors to an nn.Loader.
type source struct {
	f    weightsFile
	info func(name string) (safetensors.DType, []int, bool)
}

func openFile(path string) (*source, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pth", ".pt", ".ckpt":
		f, err := ckpt.Open(path)
		if err != nil {
			return nil, err
		}
		return &source{f, func(n string) (safetensors.DType, []int, bool) {
			t, ok := f.Info(n)
			return t.DType, t.Shape, ok
		}}, nil
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	return &source{f, func(n string) (safetensors.DType, []int, bool) {
		t, ok := f.Info(n)
		return t.DType, t.Shape, ok
	}}, nil
}

func (s *source) Raw(name string) (model.Data, error) {
	dt, shape, ok := s.info(name)
	if !ok {
		return model.Data{}, fmt.Errorf("no tensor %q", name)
	}
	switch dt {
	case safetensors.F16, safetensors.F32:
		raw, err := s.f.Raw(name)
		if err != nil {
			return model.Data{}, err
		}
		d := engine.F32
		if dt == safetensors.F16 {
			d = engine.F16
		}
		return model.Data{DType: d, Shape: shape, Bytes: raw}, nil
	}
	if !dt.IsFloat() {
		return model.Data{}, fmt.Errorf("tensor %q is %s, not a float type", name, dt)
	}
	v, err := s.f.Float32(name) // BF16, F64
	if err != nil {
		return model.Data{}, err
	}
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return model.Data{DType: engine.F32, Shape: shape, Bytes: raw}, nil
}

// Open reads a TAESD file (.safetensors, or a torch .pth) onto b. It tells
// the naming and which networks the file holds from the tensor names, and
// checks that the layers chain (channels, the final RGB or latent conv).
// Errors name the file.
func Open(path string, b engine.Backend) (*Model, error) {
	src, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("taesd: %w", err)
	}
	defer src.f.Close()
	m, err := load(path, src, b)
	if err != nil {
		return nil, fmt.Errorf("taesd: %s: %w", filepath.Base(path), err)
	}
	return m, nil
}

func load(path string, src *source, b engine.Backend) (*Model, error) {
	names := src.f.Names()
	m := &Model{Path: path, b: b, pool: nn.NewPool(b)}
	var dec, enc map[int][]string
	var decPrefix, encPrefix string
	switch {
	case slices.ContainsFunc(names, func(n string) bool {
		return strings.HasPrefix(n, "decoder.layers.") || strings.HasPrefix(n, "encoder.layers.")
	}):
		m.Naming = "diffusers"
		dec, enc = map[int][]string{}, map[int][]string{}
		for _, n := range names {
			var err error
			switch {
			case strings.HasPrefix(n, "decoder.layers."):
				err = index(dec, strings.TrimPrefix(n, "decoder.layers."), 1)
			case strings.HasPrefix(n, "encoder.layers."):
				err = index(enc, strings.TrimPrefix(n, "encoder.layers."), 0)
			default:
				err = fmt.Errorf("unexpected tensor %q beside decoder.layers.* and encoder.layers.*", n)
			}
			if err != nil {
				return nil, err
			}
		}
		decPrefix, encPrefix = "decoder.layers", "encoder.layers"
		if len(dec) == 0 {
			dec = nil
		} else {
			dec[0] = nil // the clamp, not a layer in diffusers
		}
		if len(enc) == 0 {
			enc = nil
		}
	default:
		m.Naming = "taesd.py"
		layers := map[int][]string{}
		for _, n := range names {
			if err := index(layers, n, 0); err != nil {
				return nil, fmt.Errorf("%w (want taesd.py's names, \"1.weight\", \"3.conv.0.weight\", or diffusers' \"decoder.layers.0.weight\")", err)
			}
		}
		if len(layers) == 0 {
			return nil, fmt.Errorf("no tensors")
		}
		// The encoder starts with a conv; the decoder with the
		// weightless clamp.
		if len(layers[0]) > 0 {
			enc = layers
		} else {
			dec = layers
		}
	}
	var err error
	if dec != nil {
		if m.Decoder, err = m.build(src, decPrefix, dec, true); err != nil {
			m.Close()
			return nil, fmt.Errorf("decoder: %w", err)
		}
		m.LatentChannels = m.Decoder.In
	}
	if enc != nil {
		if m.Encoder, err = m.build(src, encPrefix, enc, false); err != nil {
			m.Close()
			return nil, fmt.Errorf("encoder: %w", err)
		}
		if m.Decoder != nil && m.Encoder.Out != m.LatentChannels {
			m.Close()
			return nil, fmt.Errorf("encoder gives %d latent channels, the decoder takes %d", m.Encoder.Out, m.LatentChannels)
		}
		m.LatentChannels = m.Encoder.Out
	}
	return m, nil
}

// maxLayers bounds a layer index (TAESD has 20 layers), so a hostile
// name cannot make build allocate per-index tables of any size.
const maxLayers = 1000

// index files name "N.rest" under layer N+shift.
func index(layers map[int][]string, name string, shift int) error {
	num, rest, ok := strings.Cut(name, ".")
	i, err := strconv.Atoi(num)
	if !ok || err != nil || i < 0 || rest == "" {
		return fmt.Errorf("unexpected tensor %q", name)
	}
	if i > maxLayers {
		return fmt.Errorf("tensor %q: layer index above %d", name, maxLayers)
	}
	layers[i+shift] = append(layers[i+shift], rest)
	return nil
}

// blockTensors are the names a Block may have.
var blockTensors = []string{
	"conv.0.weight", "conv.0.bias", "conv.2.weight", "conv.2.bias",
	"conv.4.weight", "conv.4.bias", "skip.weight",
}

// build turns layer indices and their tensor names into a network,
// binding the weights. Indices are taesd.py's (the loader's names are
// shifted back for diffusers' decoder).
func (m *Model) build(src *source, prefix string, layers map[int][]string, decoder bool) (*Net, error) {
	l := nn.NewLoader(m.b, src, false).Sub(prefix) // prefix "" is the file's top level
	nm := &names{src, prefix}
	last := 0
	for i := range layers {
		last = max(last, i)
	}
	shift := 0
	if decoder && m.Naming == "diffusers" {
		shift = 1
	}
	defer func() { m.weights = append(m.weights, l.Tensors()...) }()

	lname := func(i int) string { return nm.full(strconv.Itoa(i - shift)) }

	// Classify each index by its tensor names.
	kinds := make([]Kind, last+1)
	weightless := make([]bool, last+1)
	for i := 0; i <= last; i++ {
		rests := layers[i]
		switch {
		case len(rests) == 0:
			weightless[i] = true
		case slices.Contains(rests, "weight"):
			kinds[i] = Conv
			for _, r := range rests {
				if r != "weight" && r != "bias" {
					return nil, fmt.Errorf("layer %s: unexpected tensor %q beside a conv's weight", lname(i), r)
				}
			}
		case slices.ContainsFunc(rests, func(r string) bool { return strings.HasPrefix(r, "conv.") }):
			kinds[i] = Block
			for _, r := range rests {
				if !slices.Contains(blockTensors, r) {
					return nil, fmt.Errorf("layer %s: tensor %q is not part of a TAESD Block (conv.0/2/4, skip); "+
						"another tiny-autoencoder family (TAEF2, TAEHV?) that Glimmer does not run", lname(i), r)
				}
			}
		default:
			return nil, fmt.Errorf("layer %s: tensors %q are neither a conv nor a Block", lname(i), rests)
		}
	}
	hasBias := func(i int) bool { return slices.Contains(layers[i], "bias") }
	for i := 0; i <= last; i++ {
		if !weightless[i] {
			continue
		}
		switch {
		case !decoder:
			return nil, fmt.Errorf("layer %s has no tensors, yet every encoder layer has weights (a missing layer?)", lname(i))
		case i == 0:
			kinds[i] = Clamp
		case i+1 <= last && kinds[i+1] == Conv && !weightless[i+1] && !hasBias(i+1):
			kinds[i] = Upsample // Upsample, then conv(bias=False)
		case !weightless[i-1] && kinds[i-1] == Conv:
			kinds[i] = ReLU // the ReLU after the first conv
		default:
			return nil, fmt.Errorf("layer %s has no tensors and is neither the ReLU after a conv nor an upsampling before a conv without bias (a missing layer?)", lname(i))
		}
	}
	if decoder && (!weightless[0] || kinds[0] != Clamp) {
		return nil, fmt.Errorf("layer 0 should be the weightless clamp")
	}

	n := &Net{Scale: 1}
	ch := -1 // channels flowing between layers
	for i := 0; i <= last; i++ {
		name := strconv.Itoa(i - shift)
		ly := Layer{Kind: kinds[i], Index: i}
		switch kinds[i] {
		case Conv:
			out, in, err := nm.convShape(name+".weight", 3)
			if err != nil {
				return nil, err
			}
			if ch < 0 {
				n.In = in
			} else if in != ch {
				return nil, fmt.Errorf("layer %s: conv takes %d channels, the layer before gives %d", lname(i), in, ch)
			}
			c := &nn.Conv2d{Weight: l.Tensor(name+".weight", out, in, 3, 3), In: in, Out: out, K: 3,
				P: engine.Conv2DParams{PadH: 1, PadW: 1}}
			if hasBias(i) {
				c.Bias = l.Tensor(name+".bias", out)
			} else if !decoder {
				// taesd.py's encoder downsamples with conv(stride=2, bias=False).
				c.P.StrideH, c.P.StrideW = 2, 2
				n.Scale *= 2
			}
			ly.Conv, ch = c, out
		case Block:
			out, in, err := nm.convShape(name+".conv.0.weight", 3)
			if err != nil {
				return nil, err
			}
			if ch < 0 {
				n.In = in
			} else if in != ch {
				return nil, fmt.Errorf("layer %s: block takes %d channels, the layer before gives %d", lname(i), in, ch)
			}
			bl := l.Sub(name)
			r := &ResBlock{}
			for k, cin := range []int{in, out, out} {
				r.Conv[k] = nn.NewConv2d(bl, fmt.Sprintf("conv.%d", 2*k), cin, out, 3, 1, 1)
			}
			if slices.Contains(layers[i], "skip.weight") {
				r.Skip = &nn.Conv2d{Weight: bl.Tensor("skip.weight", out, in, 1, 1), In: in, Out: out, K: 1}
			} else if in != out {
				return nil, fmt.Errorf("layer %s: block maps %d to %d channels but has no skip.weight", lname(i), in, out)
			}
			ly.Block, ch = r, out
		case Upsample:
			n.Scale *= 2
		case Clamp, ReLU:
			if ch < 0 && kinds[i] == ReLU {
				return nil, fmt.Errorf("layer %s: a ReLU before any conv", lname(i))
			}
		}
		if err := l.Err(); err != nil {
			return nil, err
		}
		n.Layers = append(n.Layers, ly)
	}
	n.Out = ch
	lastLayer := n.Layers[len(n.Layers)-1]
	switch {
	case lastLayer.Kind != Conv:
		return nil, fmt.Errorf("ends with a %v at layer %s, want the output conv (a missing layer?)", lastLayer.Kind, lname(lastLayer.Index))
	case decoder && n.Out != 3:
		return nil, fmt.Errorf("ends with %d channels at layer %s, want 3 (RGB): the output conv is missing?", n.Out, lname(lastLayer.Index))
	case !decoder && n.In != 3:
		return nil, fmt.Errorf("starts with %d channels, want 3 (RGB)", n.In)
	}
	return n, nil
}

// convShape reads a conv weight's [out, in, k, k] shape from the file
// (the loader then checks the tensor against it) and checks the kernel
// size.
func (n *names) convShape(name string, k int) (out, in int, err error) {
	_, s, ok := n.src.info(n.full(name))
	if !ok {
		return 0, 0, fmt.Errorf("no tensor %q", n.full(name))
	}
	if len(s) != 4 || s[2] != k || s[3] != k {
		return 0, 0, fmt.Errorf("tensor %q has shape %v, want [out, in, %d, %d]", n.full(name), s, k, k)
	}
	return s[0], s[1], nil
}

// names resolves a network's tensor names in its file.
type names struct {
	src    *source
	prefix string // "decoder.layers", "encoder.layers" or ""
}

func (n *names) full(name string) string {
	if n.prefix == "" {
		return name
	}
	return n.prefix + "." + name
}

// forward runs the layers on x [B, In, H, W]; the last layer (a conv)
// writes into dst. x is left to the caller.
func (n *Net) forward(b engine.Backend, p *nn.Pool, dst, x *engine.Tensor) {
	cur, owned := x, false
	next := func(t *engine.Tensor) {
		if owned && t != cur {
			p.Put(cur)
		}
		cur, owned = t, true
	}
	for i, ly := range n.Layers {
		bsz, c, h, w := cur.Dim(0), cur.Dim(1), cur.Dim(2), cur.Dim(3)
		switch ly.Kind {
		case Clamp:
			t := p.Get(bsz, c, h, w)  // [B, C, H, W]
			b.Scale(t, cur, 1.0/3, 0) // z/3
			b.Unary(t, t, engine.Tanh)
			b.Scale(t, t, 3, 0) // tanh(z/3)·3
			next(t)
		case Conv:
			cv := ly.Conv
			out := dst
			if i < len(n.Layers)-1 {
				out = p.Get(bsz, cv.Out, engine.ConvOut(h, 3, max(cv.P.StrideH, 1), 1), engine.ConvOut(w, 3, max(cv.P.StrideW, 1), 1)) // [B, Out, H', W']
			}
			cv.Forward(b, out, cur)
			next(out)
		case ReLU:
			t := cur
			if !owned {
				t = p.Get(bsz, c, h, w) // [B, C, H, W]
			}
			b.Unary(t, cur, engine.ReLU)
			next(t)
		case Upsample:
			t := p.Get(bsz, c, 2*h, 2*w) // [B, C, 2H, 2W]
			b.Upsample2x(t, cur)
			next(t)
		case Block:
			next(ly.Block.forward(b, p, cur))
		}
	}
	if owned && cur != dst {
		p.Put(cur)
	}
}

// forward returns the block's output for x [B, In, H, W] in a tensor from
// p; x is left to the caller.
func (r *ResBlock) forward(b engine.Backend, p *nn.Pool, x *engine.Tensor) *engine.Tensor {
	bsz, h, w := x.Dim(0), x.Dim(2), x.Dim(3)
	out := r.Conv[0].Out

	h1 := p.Get(bsz, out, h, w) // [B, Out, H, W]
	r.Conv[0].Forward(b, h1, x)
	b.Unary(h1, h1, engine.ReLU)
	h2 := p.Get(bsz, out, h, w) // [B, Out, H, W]
	r.Conv[1].Forward(b, h2, h1)
	b.Unary(h2, h2, engine.ReLU)
	// The last convolution adds the skip in its epilogue.
	if r.Skip != nil {
		s := p.Get(bsz, out, h, w) // [B, Out, H, W]
		r.Skip.Forward(b, s, x)
		r.Conv[2].ForwardAdd(b, h1, h2, s) // [B, Out, H, W]
		p.Put(s)
	} else {
		r.Conv[2].ForwardAdd(b, h1, h2, x) // [B, Out, H, W]
	}
	p.Put(h2)
	b.Unary(h1, h1, engine.ReLU) // [B, Out, H, W]
	return h1
}

// Decode writes the image dst [B, 3, S·h, S·w] in [-1, 1] (2·D(z)−1; S =
// Decoder.Scale, 8 for SD) for the latent z [B, L, h, w]. It queues the
// work and returns; errors the device reports come from the backend's
// next Read or Sync.
func (m *Model) Decode(dst, z *engine.Tensor) error {
	d := m.Decoder
	if d == nil {
		return fmt.Errorf("taesd: %s has no decoder", filepath.Base(m.Path))
	}
	if z.Rank() != 4 || z.Dim(1) != d.In || z.DType() != engine.F32 {
		return fmt.Errorf("taesd: Decode: latent %v %v, want F32 [B, %d, h, w]", z.Shape(), z.DType(), d.In)
	}
	want := engine.Shape{z.Dim(0), d.Out, d.Scale * z.Dim(2), d.Scale * z.Dim(3)}
	if !dst.Shape().Equal(want) || dst.DType() != engine.F32 {
		return fmt.Errorf("taesd: Decode: output %v %v, want F32 %v", dst.Shape(), dst.DType(), want)
	}
	d.forward(m.b, m.pool, dst, z) // [B, 3, H, W] in [0, 1]
	m.b.Scale(dst, dst, 2, -1)     // [B, 3, H, W] in [-1, 1]
	return nil
}

// Encode writes the latent dst [B, L, h, w] for image [B, 3, H, W] in
// [-1, 1] (E((image+1)/2)); each of the encoder's stride-2 convs maps an
// extent n to ⌊(n-1)/2⌋+1 (H/8 for SD and H a multiple of 8). It queues
// the work and returns; errors the device reports come from the
// backend's next Read or Sync.
func (m *Model) Encode(dst, image *engine.Tensor) error {
	e := m.Encoder
	if e == nil {
		return fmt.Errorf("taesd: %s has no encoder", filepath.Base(m.Path))
	}
	if image.Rank() != 4 || image.Dim(1) != e.In || image.DType() != engine.F32 {
		return fmt.Errorf("taesd: Encode: image %v %v, want F32 [B, %d, H, W]", image.Shape(), image.DType(), e.In)
	}
	h, w := image.Dim(2), image.Dim(3)
	for range bits(e.Scale) {
		h, w = (h-1)/2+1, (w-1)/2+1
	}
	want := engine.Shape{image.Dim(0), e.Out, h, w}
	if !dst.Shape().Equal(want) || dst.DType() != engine.F32 {
		return fmt.Errorf("taesd: Encode: output %v %v, want F32 %v", dst.Shape(), dst.DType(), want)
	}
	x := m.pool.Get(image.Shape()...) // [B, 3, H, W]
	m.b.Scale(x, image, 0.5, 0.5)     // (image+1)/2 in [0, 1]
	e.forward(m.b, m.pool, dst, x)    // [B, L, h, w]
	m.pool.Put(x)
	return nil
}

// bits is log2 of a power of two.
func bits(scale int) int {
	n := 0
	for ; scale > 1; scale /= 2 {
		n++
	}
	return n
}

// FreeActivations frees the activation buffers Decode and Encode keep for
// their next call (which allocates them again): a pipeline calls it after
// the denoising loop's previews.
func (m *Model) FreeActivations() { m.pool.Free() }

// Close frees the weights and the activation buffers. The Model must not
// be used afterwards.
func (m *Model) Close() {
	for _, t := range m.weights {
		m.b.Free(t)
	}
	m.pool.Free()
	m.weights = nil
}
