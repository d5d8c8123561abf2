// Package clip is the CLIP text transformer that turns a prompt's token
// ids into the conditioning the U-Net cross-attends to: transformers'
// CLIPTextModel, whose last_hidden_state Stable Diffusion uses (SD 1.x:
// OpenAI's ViT-L/14 text tower; SD 2.x: OpenCLIP ViT-H/14's, mapped by
// engine/model onto the same names with its last layer dropped).
//
// The network, for ids [B, 77]:
//
//	x = token_embedding[ids] + position_embedding        // [B, 77, C]
//	for each layer (pre-LayerNorm, eps 1e-5):
//	    x += out_proj(attention(q_proj(ln1(x)), k_proj(..), v_proj(..)))  // causal, Heads heads
//	    x += fc2(act(fc1(ln2(x))))                        // act: quick_gelu (SD1) or gelu (SD2)
//	z = final_layer_norm(x)                               // [B, 77, C]
//
// The token embedding table ([49408, C]) stays on the host: the ids'
// rows are gathered in Go and uploaded, as the op set has no gather.
//
// CLIP skip N (A1111's "stop at last layers") runs all but the last N-1
// layers and still applies final_layer_norm. Prompt weighting
// (A1111's "Original" emphasis, see engine/prompt) is EncodeChunks.
package clip

import (
	"fmt"
	"math"

	"glimmer/engine"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/prompt"
	"glimmer/engine/tokenizer"
)

// Context is the number of token positions of one sequence.
const Context = tokenizer.Context

// Layer is one pre-LayerNorm transformer block, named as in
// text_model.encoder.layers.<i>.
type Layer struct {
	LayerNorm1 *nn.LayerNorm // layer_norm1: [C]
	Q, K, V    *nn.Linear    // self_attn.{q,k,v}_proj: [C, C] + [C]
	Out        *nn.Linear    // self_attn.out_proj: [C, C] + [C]
	LayerNorm2 *nn.LayerNorm // layer_norm2: [C]
	FC1        *nn.Linear    // mlp.fc1: [I, C] + [I]
	FC2        *nn.Linear    // mlp.fc2: [C, I] + [C]
}

// TextEncoder is a loaded CLIP text transformer. It is not safe for
// concurrent use (its activation pool is shared between calls).
type TextEncoder struct {
	B      engine.Backend
	Config model.TextConfig

	tokenEmbedding    []float32      // host: [Vocab, C]
	TokenEmbedding    *engine.Tensor // [Vocab, C] on the device, only when trainable
	PositionEmbedding *engine.Tensor // [77, C]
	Layers            []*Layer
	FinalLayerNorm    *nn.LayerNorm // [C]

	act     engine.UnaryOp
	weights []*engine.Tensor // what Load bound, freed by Close
	pool    *nn.Pool
}

// Load binds the weights of a CLIPTextModel's text_model from l, whose
// names are relative to "text_model":
//
//	l := nn.NewLoader(b, m.Component("text_encoder"), false).Sub("text_model")
//	enc, err := clip.Load(l, m.Config.Text)
//
// It runs cfg.Layers layers (SD 2.x configs already leave out OpenCLIP's
// last one). The weights Load binds belong to the encoder: Close frees
// them, so the loader must not Free them as well. The token embedding
// table is uploaded through l, read back to the host and freed at once
// (the loader gives no other way to its source), so l.Bytes counts it
// although the device no longer holds it.
func Load(l *nn.Loader, cfg model.TextConfig) (*TextEncoder, error) {
	return load(l, cfg, false)
}

// LoadTrainable is Load for training: the token embedding stays on the
// device as TokenEmbedding and Encode looks tokens up by multiplying
// one-hot rows with it, so its gradient flows (practical for small
// vocabularies).
func LoadTrainable(l *nn.Loader, cfg model.TextConfig) (*TextEncoder, error) {
	return load(l, cfg, true)
}

func load(l *nn.Loader, cfg model.TextConfig, trainable bool) (*TextEncoder, error) {
	c, inner, v := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	switch {
	case c <= 0 || inner <= 0 || v <= 0 || cfg.Layers <= 0:
		return nil, fmt.Errorf("clip: bad text encoder config %+v", cfg)
	case cfg.MaxPositions != Context:
		return nil, fmt.Errorf("clip: text encoder has %d positions, want %d", cfg.MaxPositions, Context)
	case cfg.Heads <= 0 || cfg.Heads*cfg.HeadDim != c:
		return nil, fmt.Errorf("clip: %d heads of %d do not make width %d", cfg.Heads, cfg.HeadDim, c)
	}
	e := &TextEncoder{B: l.B, Config: cfg, pool: nn.NewPool(l.B)}
	switch cfg.Activation {
	case "quick_gelu":
		e.act = engine.QuickGELU
	case "gelu":
		e.act = engine.GELU
	default:
		return nil, fmt.Errorf("clip: unsupported activation %q (want quick_gelu or gelu)", cfg.Activation)
	}
	eps := cfg.LayerNormEps
	if eps == 0 {
		eps = 1e-5
	}
	afterTable := len(l.Tensors())
	if trainable {
		e.TokenEmbedding = l.Tensor("embeddings.token_embedding.weight", v, c) // [V, C]
	} else {
		table, err := hostTable(l, "embeddings.token_embedding.weight", v, c) // [V, C]
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("clip: %w", err)
		}
		e.tokenEmbedding = table
		afterTable = len(l.Tensors())
	}
	e.PositionEmbedding = l.Tensor("embeddings.position_embedding.weight", Context, c) // [77, C]
	for i := range cfg.Layers {
		ll := l.Subf("encoder.layers.%d", i)
		e.Layers = append(e.Layers, &Layer{
			LayerNorm1: nn.NewLayerNorm(ll, "layer_norm1", c, eps),         // [C]
			Q:          nn.NewLinear(ll, "self_attn.q_proj", c, c, true),   // [C, C]
			K:          nn.NewLinear(ll, "self_attn.k_proj", c, c, true),   // [C, C]
			V:          nn.NewLinear(ll, "self_attn.v_proj", c, c, true),   // [C, C]
			Out:        nn.NewLinear(ll, "self_attn.out_proj", c, c, true), // [C, C]
			LayerNorm2: nn.NewLayerNorm(ll, "layer_norm2", c, eps),         // [C]
			FC1:        nn.NewLinear(ll, "mlp.fc1", c, inner, true),        // [I, C]
			FC2:        nn.NewLinear(ll, "mlp.fc2", inner, c, true),        // [C, I]
		})
	}
	e.FinalLayerNorm = nn.NewLayerNorm(l, "final_layer_norm", c, eps) // [C]
	e.weights = append([]*engine.Tensor(nil), l.Tensors()[afterTable:]...)
	if err := l.Err(); err != nil {
		e.Close()
		return nil, fmt.Errorf("clip: %w", err)
	}
	return e, nil
}

// hostTable reads a weight into host memory. The loader exposes its
// source only through uploads, so the table goes to the device and comes
// straight back (exactly: F16 widens to float32 without rounding), then
// the device copy is freed.
func hostTable(l *nn.Loader, name string, rows, cols int) ([]float32, error) {
	t := l.Tensor(name, rows, cols) // [rows, cols]
	if err := l.Err(); err != nil {
		return nil, err
	}
	defer l.B.Free(t)
	return l.B.Read(t)
}

// Weights are the tensors Load bound and Close frees (the token table,
// which Load keeps on the host, is not among them).
func (e *TextEncoder) Weights() []*engine.Tensor { return e.weights }

// Close frees the encoder's weights and activation buffers.
func (e *TextEncoder) Close() {
	for _, t := range e.weights {
		if t != nil {
			e.B.Free(t)
		}
	}
	e.weights = nil
	e.tokenEmbedding = nil
	e.pool.Free()
}

// Release gives a tensor returned by an Encode method back to the encoder,
// so a later call can reuse its memory. Tensors not released stay valid
// until Close.
func (e *TextEncoder) Release(t *engine.Tensor) { e.pool.Put(t) }

// layersFor is how many layers run for CLIP skip n (0 means 1).
func (e *TextEncoder) layersFor(clipSkip int) (int, error) {
	if clipSkip == 0 {
		clipSkip = 1
	}
	if clipSkip < 1 || clipSkip > len(e.Layers) {
		return 0, fmt.Errorf("clip: CLIP skip %d out of range 1..%d", clipSkip, len(e.Layers))
	}
	return len(e.Layers) - (clipSkip - 1), nil
}

// Encode runs the transformer on a batch of 77-token sequences and returns
// last_hidden_state [B, 77, C] after final_layer_norm. clipSkip N ≥ 1 is
// A1111's: 1 (or 0) uses the last layer; N uses the output of the N-th
// layer from the end. The result belongs to the encoder (see Release).
// Ids outside the vocabulary are an error.
func (e *TextEncoder) Encode(ids [][Context]int, clipSkip int) (*engine.Tensor, error) {
	n, err := e.layersFor(clipSkip)
	if err != nil {
		return nil, err
	}
	bsz, c := len(ids), e.Config.HiddenSize
	if bsz == 0 {
		return nil, fmt.Errorf("clip: no sequences to encode")
	}
	for b, seq := range ids {
		for t, id := range seq {
			if id < 0 || id >= e.Config.VocabSize {
				return nil, fmt.Errorf("clip: token id %d (sequence %d, position %d) outside the vocabulary of %d", id, b, t, e.Config.VocabSize)
			}
		}
	}
	be := e.B
	x := e.pool.Get(bsz, Context, c) // [B, 77, C]
	e.embed(x, ids)
	be.Binary(x, x, e.PositionEmbedding, engine.Add) // [B, 77, C] += [77, C]
	for _, layer := range e.Layers[:n] {
		e.block(layer, x)
	}
	z := e.pool.Get(bsz, Context, c) // [B, 77, C]
	e.FinalLayerNorm.Forward(be, z, x)
	e.pool.Put(x)
	return z, nil
}

// embed writes the token embeddings of ids into x [B, 77, C]: copied from
// the host table, or as one-hot rows times TokenEmbedding when trainable.
func (e *TextEncoder) embed(x *engine.Tensor, ids [][Context]int) {
	c, v := e.Config.HiddenSize, e.Config.VocabSize
	if e.TokenEmbedding == nil {
		host := make([]float32, len(ids)*Context*c) // [B, 77, C]
		for b, seq := range ids {
			for t, id := range seq {
				copy(host[(b*Context+t)*c:][:c], e.tokenEmbedding[id*c:][:c])
			}
		}
		e.B.Write(x, host)
		return
	}
	rows := len(ids) * Context
	hot := make([]float32, rows*v) // [B*77, V]
	for b, seq := range ids {
		for t, id := range seq {
			hot[(b*Context+t)*v+id] = 1
		}
	}
	oneHot := e.pool.Get(rows, v)                                                        // [B*77, V]
	e.B.Write(oneHot, hot)                                                               // [B*77, V]
	e.B.MatMul(x.Reshape(rows, c), oneHot, e.TokenEmbedding, nil, engine.MatMulParams{}) // [B*77, C]
	e.pool.Put(oneHot)
}

// block runs one transformer layer on x [B, 77, C] in place.
func (e *TextEncoder) block(m *Layer, x *engine.Tensor) {
	be, p := e.B, e.pool
	bsz, c, inner := x.Dim(0), e.Config.HiddenSize, e.Config.IntermediateSize
	h := p.Get(bsz, Context, c) // [B, 77, C]
	m.LayerNorm1.Forward(be, h, x)
	q := p.Get(bsz, Context, c) // [B, 77, H*D]
	k := p.Get(bsz, Context, c) // [B, 77, H*D]
	v := p.Get(bsz, Context, c) // [B, 77, H*D]
	m.Q.Forward(be, q, h)
	m.K.Forward(be, k, h)
	m.V.Forward(be, v, h)
	a := p.Get(bsz, Context, c) // [B, 77, H*D]
	be.Attention(a, q, k, v, engine.AttentionParams{
		Heads:  e.Config.Heads,
		Scale:  float32(1 / math.Sqrt(float64(e.Config.HeadDim))),
		Causal: true,
	})
	p.Put(q, k, v)
	m.Out.ForwardAdd(be, x, a, x) // [B, 77, C], x + out_proj(a)
	p.Put(a)

	m.LayerNorm2.Forward(be, h, x)  // [B, 77, C]
	f := p.Get(bsz, Context, inner) // [B, 77, I]
	m.FC1.Forward(be, f, h)
	be.Unary(f, f, e.act)         // [B, 77, I]
	m.FC2.ForwardAdd(be, x, f, x) // [B, 77, C], x + fc2(f)
	p.Put(f, h)
}

// EncodeChunks encodes weighted prompts as A1111 does. Each prompt is a
// list of 77-token chunks (prompt.Tokenize); every prompt must have the
// same number n of chunks (prompt.PadChunks evens a prompt and its
// negative). Each chunk is encoded on its own, weighted per token with
// ApplyWeights (its mean restored), and a prompt's chunks are
// concatenated along the tokens: the result is [P, n*77, C], ready as
// cross-attention context (P = 2 runs CFG's two prompts in one batch).
// Chunks whose weights are all 1 come out exactly as Encode gives them;
// when every weight is 1 nothing is read back from the device. The result
// belongs to the encoder (see Release).
func (e *TextEncoder) EncodeChunks(prompts [][]prompt.Chunk, clipSkip int) (*engine.Tensor, error) {
	if len(prompts) == 0 || len(prompts[0]) == 0 {
		return nil, fmt.Errorf("clip: no chunks to encode")
	}
	n := len(prompts[0])
	var ids [][Context]int // [P*n] sequences, prompt-major
	weighted := false
	for i, p := range prompts {
		if len(p) != n {
			return nil, fmt.Errorf("clip: prompt %d has %d chunks, prompt 0 has %d (pad them with prompt.PadChunks)", i, len(p), n)
		}
		for _, ch := range p {
			ids = append(ids, ch.IDs)
			weighted = weighted || !allOnes(ch.Weights[:])
		}
	}
	z, err := e.Encode(ids, clipSkip) // [P*n, 77, C]
	if err != nil {
		return nil, err
	}
	c := e.Config.HiddenSize
	out := z.Reshape(len(prompts), n*Context, c) // [P, n*77, C]: the same memory
	if !weighted {
		return out, nil
	}
	host, err := e.B.Read(z)
	if err != nil {
		e.pool.Put(z)
		return nil, fmt.Errorf("clip: %w", err)
	}
	s := 0
	for _, p := range prompts {
		for _, ch := range p {
			if !allOnes(ch.Weights[:]) {
				ApplyWeights(host[s*Context*c:][:Context*c], ch.Weights[:])
			}
			s++
		}
	}
	e.B.Write(z, host)
	return out, nil
}

// EncodePrompt tokenizes an A1111-syntax prompt (engine/prompt) and
// encodes it with EncodeChunks: [1, n*77, C] for a prompt of n chunks.
func (e *TextEncoder) EncodePrompt(tok *tokenizer.Tokenizer, text string, clipSkip int) (*engine.Tensor, error) {
	return e.EncodeChunks([][]prompt.Chunk{prompt.Tokenize(tok, text)}, clipSkip)
}

func allOnes(w []float32) bool {
	for _, v := range w {
		if v != 1 {
			return false
		}
	}
	return true
}

// ApplyWeights is A1111's "Original" emphasis on one chunk's embedding z
// [T, C] (T = len(weights)), in place: every token's vector is multiplied
// by its weight, then all of z by mean(z before) / mean(z after), so the
// chunk keeps its mean. The means are summed in float64 and, as in torch,
// the ratio and products are float32. All weights 1 leave z exactly as it
// was. A weighted mean of exactly 0 (every weight 0) skips the rescale,
// where torch would give NaN. Like A1111's, the rescale is only as good as
// the means are far from 0: real CLIP's final_layer_norm bias keeps them
// so, while an encoder whose every token has mean 0 gets a ratio of
// rounding noise.
func ApplyWeights(z []float32, weights []float32) {
	if len(weights) == 0 || len(z)%len(weights) != 0 {
		panic(fmt.Sprintf("clip: ApplyWeights of %d values with %d weights", len(z), len(weights)))
	}
	c := len(z) / len(weights)
	m0 := mean(z)
	for t, w := range weights {
		for k := range z[t*c : (t+1)*c] {
			z[t*c+k] *= w
		}
	}
	m1 := mean(z)
	if m1 == 0 {
		return
	}
	r := m0 / m1
	for i := range z {
		z[i] *= r
	}
}

// mean is z's mean, summed in float64 and rounded to float32.
func mean(z []float32) float32 {
	var s float64
	for _, v := range z {
		s += float64(v)
	}
	return float32(s / float64(len(z)))
}
