package prompt

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/tokenizer"
)

// Token ids used below, from CLIP's vocabulary (the fixtures' reference
// token lists show a=320, red=736, cat=2368, ","=267).
const (
	idStart = 49406
	idEnd   = 49407
	idA     = 320
	idB     = 321 // "b</w>"
	idRed   = 736
	idCat   = 2368
	idComma = 267
)

func sd1(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func sd2(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// content returns a chunk's prompt tokens and weights (between start and
// end), checking the framing: start first, end right after, and padding
// and its weights after that.
func content(t *testing.T, tok *tokenizer.Tokenizer, c Chunk) ([]int, []float32) {
	t.Helper()
	if c.IDs[0] != tok.StartID || c.Weights[0] != 1 || c.IDs[c.Len+1] != tok.EndID {
		t.Fatalf("bad frame: %v", c.IDs)
	}
	for i := c.Len + 1; i < tokenizer.Context; i++ {
		want := tok.PadID
		if i == c.Len+1 {
			want = tok.EndID
		}
		if c.IDs[i] != want || c.Weights[i] != 1 {
			t.Fatalf("position %d: id %d weight %v, want %d, 1", i, c.IDs[i], c.Weights[i], want)
		}
	}
	return c.IDs[1 : 1+c.Len], c.Weights[1 : 1+c.Len]
}

func repeatIDs(id, n int) []int { return slices.Repeat([]int{id}, n) }

// TestTokenizeWeights: each span is tokenized on its own and every token
// carries its span's weight, as float32 (A1111 turns the Python floats into
// a float32 tensor).
func TestTokenizeWeights(t *testing.T) {
	tok := sd1(t)
	ch := Tokenize(tok, "a (red:1.5) [cat]")
	if len(ch) != 1 {
		t.Fatalf("%d chunks", len(ch))
	}
	ids, w := content(t, tok, ch[0])
	if !slices.Equal(ids, []int{idA, idRed, idCat}) {
		t.Errorf("ids %v", ids)
	}
	if want := []float32{1, 1.5, float32(1 / 1.1)}; !slices.Equal(w, want) {
		t.Errorf("weights %v, want %v", w, want)
	}
	// "((a))": 1.1*1.1 in float64 (1.2100000000000002), then float32.
	if _, w := content(t, tok, Tokenize(tok, "((a))")[0]); w[0] != float32(1.1*1.1) {
		t.Errorf("((a)) weight %v", w[0])
	}
}

// TestTokenizePlainMatchesWindow: with no syntax characters the first
// chunk is exactly the reference pipelines' window, all weights 1.
func TestTokenizePlainMatchesWindow(t *testing.T) {
	for _, fam := range []struct {
		name, file string
		tok        *tokenizer.Tokenizer
	}{{"sd1-tiny", "sd1-tokens.json", sd1(t)}, {"sd2-tiny", "sd2-tokens.json", sd2(t)}} {
		b, err := os.ReadFile(fixtures.Path(t, "fixtures", fam.name, "refs", fam.file))
		if err != nil {
			t.Fatal(err)
		}
		var refs struct {
			Prompts []string `json:"prompts"`
			IDs     [][]int  `json:"ids"`
		}
		if err := json.Unmarshal(b, &refs); err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, p := range refs.Prompts {
			if strings.ContainsAny(p, `()[]:\`) {
				continue
			}
			n++
			ch := Tokenize(fam.tok, p)
			if len(ch) != 1 || !slices.Equal(ch[0].IDs[:], refs.IDs[i]) {
				t.Errorf("%s %q: %v", fam.name, p, ch)
				continue
			}
			for _, w := range ch[0].Weights {
				if w != 1 {
					t.Errorf("%s %q: weights %v", fam.name, p, ch[0].Weights)
					break
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no plain prompt compared", fam.name)
		}
	}
}

// TestTokenizeBreak: BREAK closes the chunk it is in, padding it.
func TestTokenizeBreak(t *testing.T) {
	tok := sd1(t)
	for _, c := range []struct {
		in   string
		want [][]int // content of each chunk
	}{
		{"a BREAK b", [][]int{{idA}, {idB}}},
		// Only BREAK: the break closes the (empty) first chunk; nothing
		// follows, so no second one.
		{"BREAK", [][]int{{}}},
		// A leading BREAK closes an empty chunk first.
		{"BREAK a", [][]int{{}, {idA}}},
		{"a BREAK", [][]int{{idA}}},
		{"a BREAK BREAK b", [][]int{{idA}, {}, {idB}}},
		// "(BREAK)" is the weighted word "BREAK", not a break.
		{"(BREAK)", [][]int{tok.Encode("BREAK")}},
		{"", [][]int{{}}},
	} {
		ch := Tokenize(tok, c.in)
		if len(ch) != len(c.want) {
			t.Errorf("%q: %d chunks, want %d", c.in, len(ch), len(c.want))
			continue
		}
		for i := range ch {
			if ids, _ := content(t, tok, ch[i]); !slices.Equal(ids, c.want[i]) {
				t.Errorf("%q chunk %d: %v, want %v", c.in, i, ids, c.want[i])
			}
		}
	}
}

// TestTokenizeLong: without commas a long prompt is cut every 75 tokens.
func TestTokenizeLong(t *testing.T) {
	tok := sd1(t)
	ch := Tokenize(tok, strings.Repeat("a ", 160))
	if len(ch) != 3 || ch[0].Len != 75 || ch[1].Len != 75 || ch[2].Len != 10 {
		t.Fatalf("chunks %d, lens %d %d %d", len(ch), ch[0].Len, ch[1].Len, ch[2].Len)
	}
	for _, c := range ch {
		ids, _ := content(t, tok, c)
		if !slices.Equal(ids, repeatIDs(idA, c.Len)) {
			t.Errorf("content %v", ids)
		}
	}
	// Exactly 75 tokens fill one chunk with no empty one after it.
	if n := len(Tokenize(tok, strings.Repeat("a ", 75))); n != 1 {
		t.Errorf("75 tokens: %d chunks", n)
	}
}

// TestTokenizeCommaBacktrack follows tokenize_line: when the 76th token
// arrives and the chunk's last comma is at most 20 tokens from its end,
// the tokens after the comma start the next chunk.
func TestTokenizeCommaBacktrack(t *testing.T) {
	tok := sd1(t)
	// 70 a, comma at index 70, then 10 b: the 5th b finds 75 tokens with
	// the comma 5 from the end, so the 4 b's after it move.
	text := strings.Repeat("a ", 70) + ", " + strings.Repeat("b ", 10)
	ch := Tokenize(tok, text)
	if len(ch) != 2 {
		t.Fatalf("%d chunks", len(ch))
	}
	ids0, _ := content(t, tok, ch[0])
	ids1, _ := content(t, tok, ch[1])
	if !slices.Equal(ids0, append(repeatIDs(idA, 70), idComma)) || !slices.Equal(ids1, repeatIDs(idB, 10)) {
		t.Errorf("chunks %v / %v", ids0, ids1)
	}
	// Weights move with their tokens.
	ch = Tokenize(tok, strings.Repeat("a ", 70)+", (b:1.5) (b:1.5) (b:1.5) (b:1.5) (b:1.5) b")
	if _, w := content(t, tok, ch[1]); !slices.Equal(w, []float32{1.5, 1.5, 1.5, 1.5, 1.5, 1}) {
		t.Errorf("moved weights %v", w)
	}

	// Comma 35 from the end (> 20): a plain cut at 75.
	text = strings.Repeat("a ", 40) + ", " + strings.Repeat("b ", 40)
	if ch := Tokenize(tok, text); ch[0].Len != 75 || ch[1].Len != 6 {
		t.Errorf("far comma: lens %d %d", ch[0].Len, ch[1].Len)
	}
	// Exactly 20 from the end still moves (<=): comma at index 55.
	text = strings.Repeat("a ", 55) + ", " + strings.Repeat("b ", 20)
	if ch := Tokenize(tok, text); ch[0].Len != 56 || ch[1].Len != 20 {
		t.Errorf("comma 20 back: lens %d %d", ch[0].Len, ch[1].Len)
	}
	// Backtrack 0 turns it off.
	text = strings.Repeat("a ", 70) + ", " + strings.Repeat("b ", 10)
	if ch := TokenizeBacktrack(tok, text, 0); ch[0].Len != 75 || ch[1].Len != 6 {
		t.Errorf("backtrack 0: lens %d %d", ch[0].Len, ch[1].Len)
	}
	// A comma arriving as the 76th token opens the next chunk.
	ch = Tokenize(tok, strings.Repeat("a ", 75)+", b")
	if ids, _ := content(t, tok, ch[1]); !slices.Equal(ids, []int{idComma, idB}) {
		t.Errorf("comma at 76: %v", ids)
	}
	// A comma as the 75th token: nothing after it to move.
	ch = Tokenize(tok, strings.Repeat("a ", 74)+", b")
	if ch[0].Len != 75 || ch[1].Len != 1 {
		t.Errorf("comma at 75: lens %d %d", ch[0].Len, ch[1].Len)
	}
}

// TestTokenizeSD2Pad: with SD 2.x's tokenizer (pad "!" = 0) the positions
// after the first end token are 0; A1111 searches the first end token in
// the whole chunk, so an <|endoftext|> written in the prompt cuts it there.
func TestTokenizeSD2Pad(t *testing.T) {
	tok := sd2(t)
	c := Tokenize(tok, "a cat")[0]
	want := append([]int{idStart, idA, idCat, idEnd}, make([]int, 73)...)
	if !slices.Equal(c.IDs[:], want) {
		t.Errorf("ids %v", c.IDs)
	}
	c = Tokenize(tok, "a <|endoftext|> cat")[0]
	want = append([]int{idStart, idA, idEnd}, make([]int, 74)...)
	if !slices.Equal(c.IDs[:], want) {
		t.Errorf("literal end: ids %v", c.IDs)
	}
}

// TestPadChunks: the shorter side gets empty-prompt chunks; the inputs are
// left alone.
func TestPadChunks(t *testing.T) {
	for _, tok := range []*tokenizer.Tokenizer{sd1(t), sd2(t)} {
		empty := EmptyChunk(tok)
		if empty != Tokenize(tok, "")[0] {
			t.Errorf("EmptyChunk differs from the empty prompt's chunk")
		}
		cond := Tokenize(tok, strings.Repeat("a ", 160))
		uncond := Tokenize(tok, "blurry")
		c, u := PadChunks(tok, cond, uncond)
		if len(c) != 3 || len(u) != 3 || len(uncond) != 1 || u[1] != empty || u[2] != empty || c[2] != cond[2] {
			t.Errorf("padded %d/%d", len(c), len(u))
		}
		u, c = PadChunks(tok, uncond[:1:1], cond)
		if len(c) != 3 || len(u) != 3 {
			t.Errorf("reverse padded %d/%d", len(c), len(u))
		}
	}
}

// FuzzTokenize: every chunk is well framed for any prompt.
func FuzzTokenize(f *testing.F) {
	tok := sd2(f)
	for _, c := range parseCases {
		f.Add(c.in)
	}
	f.Add(strings.Repeat("a, ", 60) + "BREAK" + strings.Repeat(" (b:1.2)", 90))
	f.Fuzz(func(t *testing.T, in string) {
		ch := Tokenize(tok, in)
		if len(ch) == 0 {
			t.Fatal("no chunks")
		}
		for _, c := range ch {
			if c.Len < 0 || c.Len > tokenizer.MaxContent || c.IDs[0] != tok.StartID {
				t.Fatalf("bad chunk %+v", c)
			}
			end := slices.Index(c.IDs[:], tok.EndID)
			if end < 1 || end > c.Len+1 || c.Weights[0] != 1 {
				t.Fatalf("bad frame %+v", c)
			}
			for i := c.Len + 1; i < tokenizer.Context; i++ {
				if c.Weights[i] != 1 || (i > end && c.IDs[i] != tok.PadID) {
					t.Fatalf("bad padding at %d: %+v", i, c)
				}
			}
		}
	})
}
