package prompt

import (
	"math"
	"strings"
	"testing"
)

// The expectations follow A1111's parse_prompt_attention step by step:
// a "(" or "[" pushes the index of the next span; a closing bracket pops it
// and multiplies every span from there to the end; text is split at BREAK;
// brackets left open multiply the rest (round first, then square); equal
// neighbours merge. Weights are float64 products in that order, so they are
// written as Python prints them. Cases marked "doctest" are the examples in
// A1111's own docstring.
var parseCases = []struct {
	name, in string
	want     []Span
}{
	{"doctest plain", "normal text", []Span{{"normal text", 1}}},
	{"doctest round", "an (important) word", []Span{{"an ", 1}, {"important", 1.1}, {" word", 1}}},
	{"doctest unbalanced", "(unbalanced", []Span{{"unbalanced", 1.1}}},
	{"doctest escapes", `\(literal\]`, []Span{{"(literal]", 1}}},
	{"doctest merge", "(unnecessary)(parens)", []Span{{"unnecessaryparens", 1.1}}},
	{"doctest mixed", "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", []Span{
		// The first "(" is never closed: it multiplies everything after
		// "a " by 1.1 at the end.
		{"a ", 1},
		{"house", 1.5730000000000004}, // 1.3, *1.1 for "))", *1.1 unclosed
		{" ", 1.1},
		{"on", 1}, // /1.1, *1.1 unclosed
		{" a ", 1.1},
		{"hill", 0.55}, // 0.5, *1.1 unclosed
		{", sun, ", 1.1},
		{"sky", 1.4641000000000006}, // 1.1 three times, *1.1 unclosed
		{".", 1.1},
	}},
	{"double round", "((word))", []Span{{"word", 1.2100000000000002}}},
	{"square", "[word]", []Span{{"word", 0.9090909090909091}}},
	{"double square", "[[word]]", []Span{{"word", 0.8264462809917354}}},
	{"explicit", "(word:1.3)", []Span{{"word", 1.3}}},
	// The newer regex allows spaces around the number.
	{"explicit spaces", "(word: 1.3 )", []Span{{"word", 1.3}}},
	{"explicit signs", "(a:-0.5)", []Span{{"a", -0.5}}},
	{"explicit dots", "(a:+.5) (b:2.) ", []Span{{"a", 0.5}, {" ", 1}, {"b", 2}, {" ", 1}}},
	// \d is Unicode in Python's re, and float() reads Arabic-Indic digits.
	{"unicode digits", "(a:٣.٥)", []Span{{"a", 3.5}}},
	{"nested explicit", "a ((b:1.2) c) d", []Span{{"a ", 1}, {"b", 1.32}, {" c", 1.1}, {" d", 1}}},
	// ":abc)" is not a weight: ":" is text, ")" closes with 1.1.
	{"bad weight", "(word:abc)", []Span{{"word:abc", 1.1}}},
	// Glimmer's one deviation: A1111 raises on float("1.2.3"); here the
	// ":" is text, as for ":abc".
	{"unparsable weight", "(a:1.2.3)", []Span{{"a:1.2.3", 1.1}}},
	// A weight with no "(" open is text, whole.
	{"stray weight", "x:1.3)", []Span{{"x:1.3)", 1}}},
	{"stray round", "a) b", []Span{{"a) b", 1}}},
	{"stray square", "a] b", []Span{{"a] b", 1}}},
	{"stray colon", "a: b", []Span{{"a: b", 1}}},
	// Overlapping ( [ ) ]: ")" multiplies "a " and "b" by 1.1; "]"
	// multiplies "b" and " c" by 1/1.1, which brings b back to exactly 1.
	{"interleaved", "(a [b) c]", []Span{{"a ", 1.1}, {"b", 1}, {" c", 0.9090909090909091}}},
	// Unclosed: round brackets first (b *1.1), then square (a, b /1.1).
	{"unclosed mix", "[a (b", []Span{{"a ", 0.9090909090909091}, {"b", 1}}},
	// b: [b] then the outer (): 1/1.1*1.1 = 1, merging with " c".
	{"nested mix", "((a) [b]) c", []Span{{"a", 1.2100000000000002}, {" ", 1.1}, {"b c", 1}}},
	{"escaped in weight", `(\(x\):1.2)`, []Span{{"(x)", 1.2}}},
	{"escaped backslash", `a\\b`, []Span{{`a\b`, 1}}},
	// A lone backslash matches `\\` alone and keeps text[1:]: nothing.
	{"lone backslash", `a\b`, []Span{{"ab", 1}}},
	{"trailing backslash", `a\`, []Span{{"a", 1}}},
	{"prompt editing is text", "[a:b:0.5]", []Span{{"a:b:0.5", 0.9090909090909091}}},
	{"empty", "", []Span{{"", 1}}},
	{"only brackets", "()[]((", []Span{{"", 1}}},
	{"break", "a BREAK b", []Span{{"a", 1}, {"BREAK", -1}, {"b", 1}}},
	{"only break", "BREAK", []Span{{"", 1}, {"BREAK", -1}, {"", 1}}},
	{"break spaces", "x \t BREAK\n y", []Span{{"x", 1}, {"BREAK", -1}, {"y", 1}}},
	{"two breaks", "BREAK BREAK", []Span{{"", 1}, {"BREAK", -1}, {"", 1}, {"BREAK", -1}, {"", 1}}},
	// \b: BREAK must be a whole word; "_" and digits are word characters.
	{"break in word", "aBREAK BREAKb BREAK_ BREAK1 break", []Span{{"aBREAK BREAKb BREAK_ BREAK1 break", 1}}},
	{"break punctuation", "a,BREAK,b", []Span{{"a,", 1}, {"BREAK", -1}, {",b", 1}}},
	// Inside brackets the marker's -1 is multiplied too: no longer a break.
	{"break in brackets", "a (BREAK) b", []Span{{"a ", 1}, {"", 1.1}, {"BREAK", -1.1}, {"", 1.1}, {" b", 1}}},
	// *0 makes the parts 0 and the marker -0, which Python counts equal:
	// all three merge into the text "BREAK".
	{"break times zero", "(BREAK:0)", []Span{{"BREAK", 0}}},
	{"escaped break prefix", `\\BREAK`, []Span{{`\`, 1}, {"BREAK", -1}, {"", 1}}},
}

func TestParse(t *testing.T) {
	for _, c := range parseCases {
		got := Parse(c.in)
		if !equalSpans(got, c.want) {
			t.Errorf("%s: Parse(%q)\n got %v\nwant %v", c.name, c.in, got, c.want)
		}
	}
}

// TestParseBreakMarker: IsBreak recognises exactly A1111's marker.
func TestParseBreakMarker(t *testing.T) {
	s := Parse("a BREAK b")
	if !s[1].IsBreak() || s[0].IsBreak() {
		t.Errorf("%v", s)
	}
	if Parse("a (BREAK) b")[2].IsBreak() {
		t.Error("(BREAK) is a break")
	}
}

// TestParseHuge: weights beyond float64 become +Inf as with Python's
// float(), without an error.
func TestParseHuge(t *testing.T) {
	s := Parse("(a:" + strings.Repeat("9", 400) + ")")
	if len(s) != 1 || !math.IsInf(s[0].Weight, 1) {
		t.Errorf("%v", s)
	}
}

func equalSpans(a, b []Span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		// Bit-exact weights, except that -0 and 0 count equal as in Python.
		if a[i].Text != b[i].Text || a[i].Weight != b[i].Weight {
			return false
		}
	}
	return true
}

// FuzzParse: no input panics, and the output keeps A1111's invariants:
// at least one span; no two neighbours share a weight (they would have
// merged); the spans' text is a subsequence of the input (the parser only
// drops syntax, never invents text); text with no syntax characters and no
// BREAK comes back whole at weight 1.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		spans := Parse(in)
		if len(spans) == 0 {
			t.Fatal("no spans")
		}
		var all strings.Builder
		for i, s := range spans {
			if i > 0 && s.Weight == spans[i-1].Weight {
				t.Fatalf("unmerged neighbours %v", spans)
			}
			all.WriteString(s.Text)
		}
		if !subsequence(all.String(), in) {
			t.Fatalf("Parse(%q) = %v: text not from the input", in, spans)
		}
		if !strings.ContainsAny(in, `()[]:\`) && !strings.Contains(in, "BREAK") {
			if len(spans) != 1 || spans[0].Text != in || spans[0].Weight != 1 {
				t.Fatalf("Parse(%q) = %v, want it whole", in, spans)
			}
		}
	})
}

func subsequence(sub, s string) bool {
	j := 0
	for i := 0; i < len(s) && j < len(sub); i++ {
		if s[i] == sub[j] {
			j++
		}
	}
	return j == len(sub)
}
