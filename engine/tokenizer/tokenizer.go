// Package tokenizer is CLIP's byte-level BPE tokenizer, as used by every
// Stable Diffusion text encoder: it turns a prompt into the token ids that
// the CLIP text transformer embeds.
//
// It reproduces openai/CLIP's SimpleTokenizer and Hugging Face's (non-fast)
// CLIPTokenizer:
//
//  1. Cleanup: runs of Unicode whitespace become one space, the ends are
//     stripped, the text is lower-cased with Python's str.lower rules
//     (İ → "i̇", final sigma). ftfy's repairs and NFC normalisation are not
//     done (see "Differences" below).
//  2. Split with CLIP's pattern, case-insensitively:
//     's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
//     so digits become one token each and punctuation runs stay together.
//     The literal special tokens <|startoftext|> and <|endoftext|> in the
//     text map to their ids, as Hugging Face's added-token matching does.
//  3. Each piece's UTF-8 bytes are mapped through GPT-2's byte-to-unicode
//     table, "</w>" is appended to the last symbol, and BPE merges are
//     applied lowest rank first, every occurrence of the chosen pair left to
//     right, until no ranked pair remains.
//
// A prompt is framed into the text encoder's 77 positions as
// <|startoftext|>, at most 75 content tokens, <|endoftext|>, then padding:
// <|endoftext|> (49407) for SD 1.x, the tokenizer config's pad token for
// SD 2.x ("!", id 0). Window does this with truncation, as the reference
// pipelines do; Chunks splits a long prompt into several 77-token windows.
// The prompt-weighting syntax of AUTOMATIC1111 lives in engine/prompt.
//
// # Loading
//
// Load reads a diffusers tokenizer/ folder (vocab.json, merges.txt and,
// when present, tokenizer_config.json / special_tokens_map.json for the
// special and pad tokens). LoadBPEGz reads openai/CLIP's
// bpe_simple_vocab_16e6.txt.gz and builds the same 49,408-entry vocabulary
// (256 byte symbols, the same with "</w>", the 48,894 merges, then the two
// special tokens); its pad token is <|endoftext|> (SD 1.x): an SD 2.x caller
// sets PadID (see SD2PadToken). ForModel finds the tokenizer for a model
// file or folder (see its doc for where it looks). The vocabulary is never
// shipped with Glimmer.
//
// # Differences from the Python tokenizers
//
// ftfy (mojibake repair, control-character removal) and NFC normalisation
// are not applied: the Go standard library has no Unicode composition
// tables. Text typed in NFC (what keyboards and browsers produce) tokenizes
// identically; a decomposed "e\u0301" does not merge into "é".
package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"
)

const (
	// Context is the number of positions of CLIP's text encoder.
	Context = 77
	// MaxContent is how many prompt tokens fit between the start and end
	// tokens of one window.
	MaxContent = Context - 2

	// StartToken and EndToken are CLIP's special tokens (ids 49406 and
	// 49407 in its vocabulary).
	StartToken = "<|startoftext|>"
	EndToken   = "<|endoftext|>"
	// SD2PadToken is the pad token of SD 2.x's tokenizer config (id 0);
	// SD 1.x pads with EndToken.
	SD2PadToken = "!"

	wordEnd = "</w>"
)

// Tokenizer turns text into CLIP token ids. It is safe for concurrent use.
// The id fields may be changed on a copy (t2 := *t; t2.PadID = ...): the
// vocabulary and the word cache are shared, not copied.
type Tokenizer struct {
	StartID int // <|startoftext|>, 49406 in CLIP's vocabulary
	EndID   int // <|endoftext|>, 49407
	PadID   int // fills a window after EndID: 49407 (SD 1.x) or 0 (SD 2.x)
	// PadConfigured: a tokenizer config chose PadID. Without one (CLIP's
	// .gz vocabulary, a bare vocab.json) PadID is the SD 1.x default and
	// the model family should decide.
	PadConfigured bool

	v *vocab
}

// vocab is the immutable vocabulary and merge table plus the word cache.
type vocab struct {
	ids    map[string]int // token string → id
	tokens []string       // id → token string ("" for unused ids)

	// Symbols a word starts as: byte b alone, and b ending the word.
	byteID, byteEndID [256]int32
	// merges maps a pair of symbol ids (a<<32 | b) to its rank and the
	// id of the merged symbol.
	merges map[uint64]merge

	mu    sync.Mutex
	cache map[string][]int // BPE result per split piece
}

type merge struct {
	rank uint32
	id   int32
}

// cacheMax bounds the word cache; it is emptied when full. Pieces longer
// than cacheWordMax bytes are not cached.
const (
	cacheMax     = 1 << 16
	cacheWordMax = 64
)

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// VocabSize is the number of token ids (49,408 for CLIP).
func (t *Tokenizer) VocabSize() int { return len(t.v.tokens) }

// ID returns the id of a vocabulary entry such as ",</w>" or "!".
func (t *Tokenizer) ID(token string) (int, bool) {
	id, ok := t.v.ids[token]
	return id, ok
}

// Token returns the vocabulary entry of id as stored (byte-level symbols,
// "</w>" marking a word's end), or "" for an id outside the vocabulary.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.v.tokens) {
		return ""
	}
	return t.v.tokens[id]
}

// TokenBytes returns the text bytes that id stands for and whether it ends
// a word. Special tokens return their own text. A multi-byte character may
// be split over several tokens, so the bytes are not always valid UTF-8.
func (t *Tokenizer) TokenBytes(id int) (b []byte, endsWord bool) {
	s := t.Token(id)
	if id == t.StartID || id == t.EndID {
		return []byte(s), false
	}
	s, endsWord = strings.CutSuffix(s, wordEnd)
	for _, r := range s {
		if c, ok := unicodeToByte(r); ok {
			b = append(b, c)
		} else {
			b = utf8.AppendRune(b, r)
		}
	}
	return b, endsWord
}

// Decode turns ids back into text as CLIP's decode does: word ends become
// spaces; special tokens are written out. Invalid UTF-8 becomes U+FFFD.
func (t *Tokenizer) Decode(ids []int) string {
	var b []byte
	for _, id := range ids {
		tb, end := t.TokenBytes(id)
		b = append(b, tb...)
		if end {
			b = append(b, ' ')
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// Encode returns the content token ids of text: no start or end token, no
// truncation.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for text != "" {
		// Special tokens are matched in the raw text first, case-sensitively,
		// as Hugging Face's tokenizer does with its added tokens.
		i, special := nextSpecial(text)
		ids = t.encodePlain(text[:i], ids)
		if special == "" {
			break
		}
		if special == StartToken {
			ids = append(ids, t.StartID)
		} else {
			ids = append(ids, t.EndID)
		}
		text = text[i+len(special):]
	}
	return ids
}

// nextSpecial finds the first special token in s: its offset and text, or
// (len(s), "") when there is none.
func nextSpecial(s string) (int, string) {
	best, which := len(s), ""
	for _, sp := range [...]string{StartToken, EndToken} {
		if i := strings.Index(s, sp); i >= 0 && i < best {
			best, which = i, sp
		}
	}
	return best, which
}

func (t *Tokenizer) encodePlain(text string, ids []int) []int {
	for _, piece := range split(clean(text)) {
		ids = append(ids, t.v.word(piece)...)
	}
	return ids
}

// word returns the BPE ids of one split piece, through the cache.
func (v *vocab) word(piece string) []int {
	if len(piece) <= cacheWordMax {
		v.mu.Lock()
		ids, ok := v.cache[piece]
		v.mu.Unlock()
		if ok {
			return ids
		}
	}
	ids := v.bpe(piece)
	if len(piece) <= cacheWordMax {
		v.mu.Lock()
		if len(v.cache) >= cacheMax {
			clear(v.cache)
		}
		v.cache[piece] = ids
		v.mu.Unlock()
	}
	return ids
}

// bpe applies the merges to one non-empty piece, as CLIP's bpe(): find the
// adjacent pair with the lowest rank, merge every occurrence of it from
// left to right, repeat until no adjacent pair has a rank.
//
// The rank of each adjacent pair is kept in ranks[i] (for syms[i],
// syms[i+1]) and only looked up again next to a merge, so a long word
// costs a linear scan per merge step rather than a map lookup per pair.
func (v *vocab) bpe(piece string) []int {
	const none = ^uint32(0)
	n := len(piece)
	syms := make([]int32, n)
	for i := 0; i < n; i++ {
		syms[i] = v.byteID[piece[i]]
	}
	syms[n-1] = v.byteEndID[piece[n-1]]
	ranks := make([]uint32, n) // ranks[i]: pair (i, i+1); the last is unused
	merged := make([]int32, n) // the pair's merged symbol
	rank := func(i int) {
		if m, ok := v.merges[pairKey(syms[i], syms[i+1])]; ok {
			ranks[i], merged[i] = m.rank, m.id
		} else {
			ranks[i] = none
		}
	}
	for i := 0; i+1 < n; i++ {
		rank(i)
	}
	for len(syms) > 1 {
		at := -1
		best := none
		for i, r := range ranks[:len(syms)-1] {
			if r < best {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		a, b, m := syms[at], syms[at+1], merged[at]
		// Merge every occurrence left to right, compacting in place (the
		// write index never passes the read index). fresh marks output
		// positions whose pairs must be ranked again.
		w := at
		var fresh []int
		for i := at; i < len(syms); {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				syms[w] = m
				fresh = append(fresh, w)
				i += 2
			} else {
				syms[w], ranks[w], merged[w] = syms[i], ranks[i], merged[i]
				i++
			}
			w++
		}
		syms = syms[:w]
		for _, k := range fresh {
			if k > 0 {
				rank(k - 1)
			}
			if k+1 < len(syms) {
				rank(k)
			}
		}
	}
	ids := make([]int, len(syms))
	for i, s := range syms {
		ids[i] = int(s)
	}
	return ids
}

// Frame puts content ids into one encoder window: start, at most
// MaxContent ids (the rest are dropped), end, then PadID.
func (t *Tokenizer) Frame(content []int) [Context]int {
	var w [Context]int
	if len(content) > MaxContent {
		content = content[:MaxContent]
	}
	w[0] = t.StartID
	n := 1 + copy(w[1:], content)
	w[n] = t.EndID
	for i := n + 1; i < Context; i++ {
		w[i] = t.PadID
	}
	return w
}

// Window returns the 77 ids the reference pipelines feed the text encoder
// for text: start, the first 75 content tokens, end, padding.
func (t *Tokenizer) Window(text string) [Context]int {
	return t.Frame(t.Encode(text))
}

// Chunks splits text into 77-id windows of 75 content tokens each (the last
// one shorter), for prompts longer than one window. No prompt syntax is
// parsed and no comma backtracking is done (engine/prompt does both). An
// empty text gives one window.
func (t *Tokenizer) Chunks(text string) [][Context]int {
	ids := t.Encode(text)
	out := [][Context]int{t.Frame(ids)}
	for i := MaxContent; i < len(ids); i += MaxContent {
		out = append(out, t.Frame(ids[i:]))
	}
	return out
}
