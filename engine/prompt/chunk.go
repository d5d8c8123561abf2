package prompt

import (
	"slices"

	"glimmer/engine/tokenizer"
)

// Chunk is one text-encoder window of a weighted prompt: start token, up to
// 75 prompt tokens, end token, padding; one weight per position (1 for the
// start, end and padding).
type Chunk struct {
	IDs     [tokenizer.Context]int
	Weights [tokenizer.Context]float32
	Len     int // prompt tokens in the chunk, between start and end
}

// DefaultCommaBacktrack is A1111's comma_padding_backtrack default: when a
// chunk fills up, the words after its last comma move to the next chunk if
// that comma is within this many tokens of the end.
const DefaultCommaBacktrack = 20

// Tokenize parses text's attention syntax and packs the weighted tokens
// into chunks as A1111's tokenize_line does, with the default comma
// backtrack. There is always at least one chunk.
func Tokenize(tok *tokenizer.Tokenizer, text string) []Chunk {
	return TokenizeBacktrack(tok, text, DefaultCommaBacktrack)
}

// TokenizeBacktrack is Tokenize with A1111's comma_padding_backtrack
// setting (0 turns it off). The packing:
//
//   - each span is tokenized on its own (so "(red)dog" is two words);
//   - a BREAK closes the current chunk, even an empty one (a leading BREAK
//     gives an empty first chunk);
//   - when a chunk holds 75 tokens and another token comes: if the last
//     comma in it is at most backtrack tokens from its end, the tokens after
//     that comma move to the next chunk; the full chunk is closed either way
//     (a comma arriving then starts the next chunk and is not remembered);
//   - a chunk is closed by padding with the end token (weight 1), then
//     framing with start and end; after the first end token the positions
//     take tok.PadID (A1111's SD 2.x rule; a no-op when PadID == EndID);
//   - the last chunk is closed if it holds tokens, or if there is no chunk.
//
// Textual-inversion embeddings are not looked up: their names are tokenized
// as text.
func TokenizeBacktrack(tok *tokenizer.Tokenizer, text string, backtrack int) []Chunk {
	comma, hasComma := tok.ID(",</w>")
	var (
		chunks    []Chunk
		ids       []int
		weights   []float32
		lastComma = -1
	)
	next := func() {
		chunks = append(chunks, frame(tok, ids, weights))
		ids, weights = nil, nil
		lastComma = -1
	}
	for _, s := range Parse(text) {
		if s.IsBreak() {
			next()
			continue
		}
		w := float32(s.Weight)
		for _, id := range tok.Encode(s.Text) {
			if hasComma && id == comma {
				lastComma = len(ids)
			} else if backtrack != 0 && len(ids) == tokenizer.MaxContent && lastComma != -1 &&
				len(ids)-lastComma <= backtrack {
				at := lastComma + 1
				movedIDs := slices.Clone(ids[at:])
				movedW := slices.Clone(weights[at:])
				ids, weights = ids[:at], weights[:at]
				next()
				ids, weights = movedIDs, movedW
			}
			if len(ids) == tokenizer.MaxContent {
				next()
			}
			ids = append(ids, id)
			weights = append(weights, w)
		}
	}
	if len(ids) > 0 || len(chunks) == 0 {
		next()
	}
	return chunks
}

// frame makes a chunk from at most 75 weighted tokens.
func frame(tok *tokenizer.Tokenizer, ids []int, weights []float32) Chunk {
	var c Chunk
	c.Len = len(ids)
	c.IDs[0], c.Weights[0] = tok.StartID, 1
	for i, id := range ids {
		c.IDs[1+i], c.Weights[1+i] = id, weights[i]
	}
	for i := 1 + len(ids); i < tokenizer.Context; i++ {
		c.IDs[i], c.Weights[i] = tok.EndID, 1
	}
	if tok.PadID != tok.EndID {
		end := slices.Index(c.IDs[:], tok.EndID)
		for i := end + 1; i < tokenizer.Context; i++ {
			c.IDs[i] = tok.PadID
		}
	}
	return c
}

// EmptyChunk is the chunk of the empty prompt: start, end, padding, all
// weights 1.
func EmptyChunk(tok *tokenizer.Tokenizer) Chunk { return frame(tok, nil, nil) }

// PadChunks gives the prompt and negative prompt the same number of chunks
// by appending EmptyChunk to the shorter one, so classifier-free guidance
// can run both in one batch. This is A1111's "pad_cond_uncond" option
// (padding with the encoding of the empty prompt). A1111's default instead
// runs the two separately at their own lengths, which gives slightly
// different images when the lengths differ. The inputs are not modified.
func PadChunks(tok *tokenizer.Tokenizer, cond, uncond []Chunk) ([]Chunk, []Chunk) {
	cond, uncond = slices.Clip(cond), slices.Clip(uncond)
	for len(cond) < len(uncond) {
		cond = append(cond, EmptyChunk(tok))
	}
	for len(uncond) < len(cond) {
		uncond = append(uncond, EmptyChunk(tok))
	}
	return cond, uncond
}
