package tokenizer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// byteRunes is GPT-2's byte-to-unicode table (CLIP's bytes_to_unicode):
// printable Latin-1 bytes stand for themselves, the other 68 bytes map to
// U+0100 upwards in byte order. byteOrder lists the bytes in the order of
// the table's values, which is the order of CLIP's first 256 vocabulary
// entries.
var (
	byteRunes [256]rune
	byteOrder [256]byte
	runeBytes [256 + 68]int16 // inverse of byteRunes, -1 where none
)

func init() {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
	}
	n, k := 0, 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			byteRunes[b] = rune(b)
			byteOrder[k] = byte(b)
			k++
		}
	}
	for b := 0; b < 256; b++ {
		if !printable(b) {
			byteRunes[b] = rune(256 + n)
			byteOrder[k] = byte(b)
			n++
			k++
		}
	}
	for i := range runeBytes {
		runeBytes[i] = -1
	}
	for b, r := range byteRunes {
		runeBytes[r] = int16(b)
	}
}

// unicodeToByte inverts byteRunes.
func unicodeToByte(r rune) (byte, bool) {
	if r < 0 || int(r) >= len(runeBytes) || runeBytes[r] < 0 {
		return 0, false
	}
	return byte(runeBytes[r]), true
}

// Load reads a diffusers/Hugging Face tokenizer folder: vocab.json and
// merges.txt, plus tokenizer_config.json and special_tokens_map.json when
// present (the latter wins, as in transformers) for the start, end and pad
// tokens. With no config the pad token is <|endoftext|>.
func Load(dir string) (*Tokenizer, error) {
	vb, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	mf, err := os.Open(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer mf.Close()

	var ids map[string]int
	if err := json.Unmarshal(vb, &ids); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", filepath.Join(dir, "vocab.json"), err)
	}
	v, err := newVocab(ids)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", filepath.Join(dir, "vocab.json"), err)
	}
	if err := v.readMerges(mf); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", filepath.Join(dir, "merges.txt"), err)
	}

	special := map[string]string{"bos_token": StartToken, "eos_token": EndToken, "pad_token": EndToken}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		if err := readSpecial(filepath.Join(dir, name), special); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	t := &Tokenizer{v: v}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.PadConfigured = true
		}
	}
	for _, f := range []struct {
		key string
		id  *int
	}{{"bos_token", &t.StartID}, {"eos_token", &t.EndID}, {"pad_token", &t.PadID}} {
		id, ok := v.ids[special[f.key]]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: %s %q is not in vocab.json", dir, f.key, special[f.key])
		}
		*f.id = id
	}
	return t, nil
}

// readSpecial reads the *_token entries of a tokenizer config into m. A
// missing file is not an error. Entries are strings or, in older configs,
// AddedToken objects with a "content" field.
func readSpecial(path string, m map[string]string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for key := range m {
		r, ok := raw[key]
		if !ok || string(r) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(r, &s) != nil {
			var obj struct {
				Content *string `json:"content"`
			}
			if json.Unmarshal(r, &obj) != nil || obj.Content == nil {
				return fmt.Errorf("%s: %s is neither a string nor a token object", path, key)
			}
			s = *obj.Content
		}
		m[key] = s
	}
	return nil
}

// gzMerges is how many merge lines CLIP's SimpleTokenizer uses from
// bpe_simple_vocab_16e6.txt.gz: lines[1 : 49152-256-2+1].
const gzMerges = 49152 - 256 - 2

// LoadBPEGz reads openai/CLIP's bpe_simple_vocab_16e6.txt.gz and builds
// the vocabulary as CLIP does: the 256 byte symbols, the same with "</w>",
// one entry per merge (the two halves joined), <|startoftext|>,
// <|endoftext|>. The pad token is <|endoftext|> (SD 1.x); set PadID on a
// copy for SD 2.x.
func LoadBPEGz(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}

	lines := bytes.Split(data, []byte{'\n'})
	if len(lines) < 1+gzMerges {
		return nil, fmt.Errorf("tokenizer: %s: %d lines, want at least %d merges after the header", path, len(lines), gzMerges)
	}
	lines = lines[1 : 1+gzMerges]

	pairs := make([][2]string, len(lines))
	tokens := make([]string, 0, 512+len(lines)+2)
	for _, b := range byteOrder {
		tokens = append(tokens, string(byteRunes[b]))
	}
	for _, b := range byteOrder {
		tokens = append(tokens, string(byteRunes[b])+wordEnd)
	}
	for i, l := range lines {
		a, b, ok := mergeFields(string(l))
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: line %d: not a merge: %q", path, i+2, l)
		}
		pairs[i] = [2]string{a, b}
		tokens = append(tokens, a+b)
	}
	tokens = append(tokens, StartToken, EndToken)
	ids := make(map[string]int, len(tokens))
	for i, s := range tokens {
		ids[s] = i // a repeated entry keeps its last id, as Python's dict(zip(...))
	}
	v, err := newVocab(ids)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if err := v.setMerges(pairs, 2); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	t := &Tokenizer{v: v, StartID: ids[StartToken], EndID: ids[EndToken]}
	t.PadID = t.EndID
	return t, nil
}

// mergeFields splits a merge line into its two symbols, as Python's
// str.split() does (any run of whitespace).
func mergeFields(l string) (string, string, bool) {
	f := strings.Fields(l)
	if len(f) != 2 {
		return "", "", false
	}
	return f[0], f[1], true
}

// newVocab indexes a token → id map and resolves the byte symbols.
func newVocab(ids map[string]int) (*vocab, error) {
	n := 0
	for s, id := range ids {
		if id < 0 || id > 1<<24 {
			return nil, fmt.Errorf("token %q has id %d", s, id)
		}
		n = max(n, id+1)
	}
	v := &vocab{ids: ids, tokens: make([]string, n), cache: map[string][]int{}}
	for s, id := range ids {
		v.tokens[id] = s
	}
	for b := 0; b < 256; b++ {
		s := string(byteRunes[b])
		id, ok := ids[s]
		if !ok {
			return nil, fmt.Errorf("byte symbol %q is missing", s)
		}
		idEnd, ok := ids[s+wordEnd]
		if !ok {
			return nil, fmt.Errorf("byte symbol %q is missing", s+wordEnd)
		}
		v.byteID[b], v.byteEndID[b] = int32(id), int32(idEnd)
	}
	return v, nil
}

// readMerges reads merges.txt: an optional "#version" header line, then
// one merge per line, rank = order. Blank lines are ignored.
func (v *vocab) readMerges(r io.Reader) error {
	var pairs [][2]string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	first, line0 := true, 1
	for sc.Scan() {
		l := sc.Text()
		if first && strings.HasPrefix(l, "#version") {
			first, line0 = false, 2
			continue
		}
		first = false
		if strings.TrimSpace(l) == "" {
			pairs = append(pairs, [2]string{}) // keeps line numbers; skipped
			continue
		}
		a, b, ok := mergeFields(l)
		if !ok {
			return fmt.Errorf("line %d: not a merge: %q", line0+len(pairs), l)
		}
		pairs = append(pairs, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return v.setMerges(pairs, line0)
}

// setMerges builds the merge table; pairs[i] is on line line0+i of its
// file (for errors), empty pairs are skipped. Both halves and the merged
// symbol must be in the vocabulary.
func (v *vocab) setMerges(pairs [][2]string, line0 int) error {
	v.merges = make(map[uint64]merge, len(pairs))
	rank := uint32(0)
	for i, p := range pairs {
		if p[0] == "" {
			continue
		}
		ia, oka := v.ids[p[0]]
		ib, okb := v.ids[p[1]]
		im, okm := v.ids[p[0]+p[1]]
		if !oka || !okb || !okm {
			return fmt.Errorf("line %d: merge %q %q: symbol not in the vocabulary", line0+i, p[0], p[1])
		}
		// A repeated pair keeps its last rank, as Python's dict(zip(...)).
		v.merges[pairKey(int32(ia), int32(ib))] = merge{rank: rank, id: int32(im)}
		rank++
	}
	if rank == 0 {
		return errors.New("no merges")
	}
	return nil
}
