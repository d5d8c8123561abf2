package dataset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// This file writes the tokenizer of the starter model: a CLIP-style
// byte-level BPE vocabulary small enough to ship, in which every word of
// the captions above is one token.
//
// Its layout follows CLIP's, so engine/tokenizer (and Hugging Face's
// CLIPTokenizer) read it unchanged:
//
//	ids 0..255     the 256 byte symbols of CLIP's bytes_to_unicode table,
//	               in the order of the table's values
//	ids 256..511   the same symbols with "</w>" (end of word)
//	ids 512..      one entry per merge that makes a new symbol, in merge order
//	last two ids   <|startoftext|>, <|endoftext|>
//
// The merges are learnt from the caption words as BPE training does: count
// every adjacent symbol pair over the distinct words, merge the most common
// one everywhere (ties: the lexically smallest pair), record it, repeat
// until every word is a single symbol. Applying merges lowest rank first,
// as CLIP's tokenizer does, retraces the same steps, so every caption word
// encodes to one token; any other text falls back to shorter pieces and at
// worst to byte symbols, so nothing is out of vocabulary.

const (
	vocabStart = "<|startoftext|>"
	vocabEnd   = "<|endoftext|>"
	wordEnd    = "</w>"
)

// CaptionWords lists the distinct words of every caption Caption can write
// (every shape, count, colour pair and position), sorted.
func CaptionWords() []string {
	seen := map[string]bool{}
	for _, shape := range Shapes {
		for _, pair := range Pairs(All) {
			for count := 1; count <= 3; count++ {
				for _, pos := range Positions {
					c := Caption(Spec{Shape: shape, Colour: pair[0], Background: pair[1], Count: count, Position: pos})
					for _, w := range strings.Fields(c) {
						seen[w] = true
					}
				}
			}
		}
	}
	words := make([]string, 0, len(seen))
	for w := range seen {
		words = append(words, w)
	}
	sort.Strings(words)
	return words
}

// byteSymbols is CLIP's bytes_to_unicode table: printable Latin-1 bytes
// stand for themselves, the other 68 map to U+0100 upwards in byte order.
// byteVocabOrder lists the bytes in the order of their symbols' values.
func byteSymbols() (sym [256]string, order [256]byte) {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
	}
	k, n := 0, 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			sym[b], order[k] = string(rune(b)), byte(b)
			k++
		}
	}
	for b := 0; b < 256; b++ {
		if !printable(b) {
			sym[b], order[k] = string(rune(256+n)), byte(b)
			n++
			k++
		}
	}
	return sym, order
}

// bpeVocab is the generated vocabulary: tokens in id order and the merges
// in rank order.
type bpeVocab struct {
	tokens []string
	merges [][2]string
}

var (
	vocabOnce  sync.Once
	vocabBuilt bpeVocab
)

func starterVocab() bpeVocab {
	vocabOnce.Do(func() { vocabBuilt = buildVocab(CaptionWords()) })
	return vocabBuilt
}

// VocabSize is the number of token ids of the starter tokenizer
// (WriteTokenizer): the text encoder's embedding table has this many rows.
func VocabSize() int { return len(starterVocab().tokens) }

// buildVocab learns the merges that make each word one symbol (see the
// comment at the top of this file) and lays out the vocabulary.
func buildVocab(words []string) bpeVocab {
	sym, order := byteSymbols()
	var v bpeVocab
	for _, b := range order {
		v.tokens = append(v.tokens, sym[b])
	}
	for _, b := range order {
		v.tokens = append(v.tokens, sym[b]+wordEnd)
	}
	have := map[string]bool{}
	for _, t := range v.tokens {
		have[t] = true
	}

	// Each word as its current symbols; the last carries "</w>".
	state := make([][]string, 0, len(words))
	for _, w := range words {
		if w == "" {
			continue
		}
		s := make([]string, len(w))
		for i := 0; i < len(w); i++ {
			s[i] = sym[w[i]]
		}
		s[len(s)-1] += wordEnd
		state = append(state, s)
	}
	for {
		counts := map[[2]string]int{}
		for _, s := range state {
			for i := 0; i+1 < len(s); i++ {
				counts[[2]string{s[i], s[i+1]}]++
			}
		}
		if len(counts) == 0 {
			break
		}
		var best [2]string
		bestN := 0
		for p, n := range counts {
			if n > bestN || (n == bestN && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, n
			}
		}
		v.merges = append(v.merges, best)
		joined := best[0] + best[1]
		if !have[joined] {
			have[joined] = true
			v.tokens = append(v.tokens, joined)
		}
		// Merge every occurrence left to right, as the tokenizer does.
		for k, s := range state {
			out := s[:0]
			for i := 0; i < len(s); {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, joined)
					i += 2
				} else {
					out = append(out, s[i])
					i++
				}
			}
			state[k] = out
		}
	}
	v.tokens = append(v.tokens, vocabStart, vocabEnd)
	return v
}

// tokenizerConfig mirrors SD 1.x's tokenizer_config.json: padding with
// <|endoftext|>, 77 positions.
const tokenizerConfig = `{
  "bos_token": "<|startoftext|>",
  "do_lower_case": true,
  "eos_token": "<|endoftext|>",
  "model_max_length": 77,
  "pad_token": "<|endoftext|>",
  "tokenizer_class": "CLIPTokenizer",
  "unk_token": "<|endoftext|>"
}
`

const specialTokensMap = `{
  "bos_token": "<|startoftext|>",
  "eos_token": "<|endoftext|>",
  "pad_token": "<|endoftext|>",
  "unk_token": "<|endoftext|>"
}
`

// TokenizerFiles are the files WriteTokenizer writes.
var TokenizerFiles = []string{"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"}

// WriteTokenizer writes the starter model's tokenizer as a diffusers
// tokenizer folder (TokenizerFiles) in dir, creating dir if needed. The
// output depends on nothing but the caption templates, so it is the same
// bytes on every run. Existing files are never overwritten: if any of the
// four names is taken, nothing is written and the error wraps fs.ErrExist.
func WriteTokenizer(dir string) error {
	v := starterVocab()

	var vj bytes.Buffer
	vj.WriteString("{\n")
	for id, t := range v.tokens {
		key, err := jsonString(t)
		if err != nil {
			return fmt.Errorf("dataset: token %q: %w", t, err)
		}
		sep := ","
		if id == len(v.tokens)-1 {
			sep = ""
		}
		fmt.Fprintf(&vj, "  %s: %d%s\n", key, id, sep)
	}
	vj.WriteString("}\n")

	var mt bytes.Buffer
	mt.WriteString("#version: 0.2\n")
	for _, m := range v.merges {
		mt.WriteString(m[0] + " " + m[1] + "\n")
	}

	data := map[string][]byte{
		"vocab.json":              vj.Bytes(),
		"merges.txt":              mt.Bytes(),
		"tokenizer_config.json":   []byte(tokenizerConfig),
		"special_tokens_map.json": []byte(specialTokensMap),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	for _, name := range TokenizerFiles {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("dataset: %s: %w", p, fs.ErrExist)
		}
	}
	for _, name := range TokenizerFiles {
		if err := writeNew(filepath.Join(dir, name), data[name]); err != nil {
			return err
		}
	}
	return nil
}

// jsonString quotes s as JSON without escaping <, > and & (the special
// tokens stay readable).
func jsonString(s string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
