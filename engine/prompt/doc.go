// Package prompt reads AUTOMATIC1111's prompt syntax — attention weights
// "(word)", "[word]", "(word:1.3)", escapes, BREAK — and turns a prompt of
// any length into 77-token chunks with one weight per token, as the
// stable-diffusion-webui does, so that prompts written for it give the
// same conditioning here.
//
// ExtractTags first removes A1111's extra-network tags ("<lora:name:0.8>")
// and reads them, as A1111 does before parsing; Parse gives the weighted
// text spans; Tokenize tokenizes them (with
// engine/tokenizer) and packs them into chunks of 75 tokens framed by the
// start and end tokens; PadChunks evens out the prompt and negative prompt.
//
// # Applying the weights (for the text encoder)
//
// The weights act on the text encoder's output, not on its input. For each
// chunk c, with ids c.IDs and weights c.Weights, all float32 (A1111's
// "Original" emphasis, its default):
//
//	z := encoder(c.IDs)          // [77, C] last_hidden_state (after final LayerNorm)
//	m0 := mean(z)                // over all 77*C values of this chunk
//	z[t][k] *= c.Weights[t]      // every position t, every channel k
//	m1 := mean(z)
//	z[t][k] *= m0 / m1           // restores the chunk's original mean
//
// then the chunks' z are concatenated along the token axis: n chunks give a
// [n*77, C] conditioning that cross-attention uses as is (keys and values
// of length n*77). The prompt and the negative prompt are encoded
// separately, each chunk on its own (the means are per chunk, never over a
// batch of different prompts); PadChunks makes their chunk counts equal so
// that CFG can batch them. When every weight is 1 the scaling is exactly
// the identity, so a plain prompt's single chunk is the reference
// pipelines' embedding.
//
// With CLIP skip ("stop at last layers" N > 1), z is the hidden state N
// layers from the end passed through the final LayerNorm, before the
// weighting above; that is outside this package.
//
// SD 2.x: positions after the first end token hold the pad id (0) rather
// than the end token; Tokenize does this when the tokenizer's PadID differs
// from its EndID.
//
// Not supported: prompt editing "[a:b:0.5]" and alternation "[a|b]"
// (parsed as plain weighted text, as A1111's attention parser alone sees
// them), "AND" composition, and textual-inversion embeddings.
package prompt
