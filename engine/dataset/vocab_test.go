package dataset

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/tokenizer"
)

func loadStarter(t *testing.T) (*tokenizer.Tokenizer, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tokenizer")
	if err := WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok, dir
}

func TestTokenizerLayout(t *testing.T) {
	tok, _ := loadStarter(t)
	n := VocabSize()
	if tok.VocabSize() != n {
		t.Fatalf("loaded vocabulary has %d ids, VocabSize() = %d", tok.VocabSize(), n)
	}
	// Every id from 0 to n-1 is used exactly once (no holes).
	for id := 0; id < n; id++ {
		if tok.Token(id) == "" {
			t.Fatalf("id %d has no token", id)
		}
	}
	if tok.StartID != n-2 || tok.EndID != n-1 {
		t.Errorf("start, end ids = %d, %d; want %d, %d", tok.StartID, tok.EndID, n-2, n-1)
	}
	if tok.PadID != tok.EndID || !tok.PadConfigured {
		t.Errorf("pad id %d (configured %v), want <|endoftext|> %d from the config", tok.PadID, tok.PadConfigured, tok.EndID)
	}
	// CLIP's first entries: "!" is id 0, "!</w>" id 256.
	if id, _ := tok.ID("!"); id != 0 {
		t.Errorf(`id of "!" = %d, want 0`, id)
	}
	if id, _ := tok.ID("!</w>"); id != 256 {
		t.Errorf(`id of "!</w>" = %d, want 256`, id)
	}
	// Small enough to ship: the word list has about 30 words, each of a
	// handful of letters.
	if n > 1024 {
		t.Errorf("vocabulary has %d entries, expected well under 1024", n)
	}
	t.Logf("vocabulary: %d entries, %d caption words", n, len(CaptionWords()))
}

func TestCaptionWordsAreOneToken(t *testing.T) {
	tok, _ := loadStarter(t)
	words := CaptionWords()
	for _, want := range []string{"a", "an", "two", "three", "red", "orange", "circle", "triangles", "top", "corner", "on", "background"} {
		found := false
		for _, w := range words {
			found = found || w == want
		}
		if !found {
			t.Errorf("CaptionWords lacks %q", want)
		}
	}
	for _, w := range words {
		ids := tok.Encode(w)
		if len(ids) != 1 || tok.Token(ids[0]) != w+"</w>" {
			t.Errorf("%q encodes to %v, want the one token %q", w, ids, w+"</w>")
		}
	}
	// Sampled captions, as the trainer sees them: one id per word, every id
	// in range, and the text decodes back.
	for seed := uint64(0); seed < 10000; seed++ {
		_, caption, _ := SampleSplit(seed, MinSize, All)
		ids := tok.Encode(caption)
		if len(ids) != len(strings.Fields(caption)) {
			t.Fatalf("%q: %d tokens for %d words", caption, len(ids), len(strings.Fields(caption)))
		}
		for _, id := range ids {
			if id < 0 || id >= VocabSize() {
				t.Fatalf("%q: id %d outside [0, %d)", caption, id, VocabSize())
			}
		}
		if got := strings.TrimSpace(tok.Decode(ids)); got != caption {
			t.Fatalf("decode(%q) = %q", caption, got)
		}
		if w := tok.Window(caption); w[0] != tok.StartID || w[len(ids)+1] != tok.EndID || w[76] != tok.EndID {
			t.Fatalf("%q: window %v", caption, w)
		}
	}
}

func TestUnknownWordsFallBack(t *testing.T) {
	tok, _ := loadStarter(t)
	for _, text := range []string{"zebra", "Zebra 42!", "naïve café", "日本"} {
		ids := tok.Encode(text)
		if len(ids) == 0 {
			t.Errorf("%q: no tokens", text)
		}
		for _, id := range ids {
			if id < 0 || id >= VocabSize()-2 {
				t.Errorf("%q: id %d is not a text token", text, id)
			}
		}
		// Decoding gives the lower-cased text back, byte for byte.
		want := strings.Join(strings.Fields(strings.ToLower(text)), " ")
		if got := strings.ReplaceAll(strings.TrimSpace(tok.Decode(ids)), " ", ""); got != strings.ReplaceAll(want, " ", "") {
			t.Errorf("%q decodes to %q", text, got)
		}
	}
	// "zebra" has no merges of its own: it falls back to pieces, at least
	// two tokens.
	if ids := tok.Encode("zebra"); len(ids) < 2 {
		t.Errorf("zebra encodes to %v, expected pieces", ids)
	}
}

func TestWriteTokenizerDeterministic(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	if err := WriteTokenizer(a); err != nil {
		t.Fatal(err)
	}
	if err := WriteTokenizer(b); err != nil {
		t.Fatal(err)
	}
	for _, name := range TokenizerFiles {
		x, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two writes", name)
		}
	}
	// The same vocabulary built afresh (not the cached one) is the same.
	v := buildVocab(CaptionWords())
	if len(v.tokens) != VocabSize() {
		t.Errorf("rebuilt vocabulary has %d entries, want %d", len(v.tokens), VocabSize())
	}
}

func TestWriteTokenizerRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	keep := []byte("user's file")
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), keep, 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteTokenizer(dir)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "merges.txt") {
		t.Fatalf("err = %v, want fs.ErrExist naming merges.txt", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "merges.txt")); !bytes.Equal(got, keep) {
		t.Errorf("merges.txt was changed")
	}
	if _, err := os.Stat(filepath.Join(dir, "vocab.json")); err == nil {
		t.Errorf("vocab.json was written although the folder was refused")
	}
}
