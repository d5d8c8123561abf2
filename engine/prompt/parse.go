package prompt

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Span is a run of prompt text with one attention weight. A BREAK keyword
// is the span {"BREAK", -1}, as in AUTOMATIC1111 (see IsBreak).
type Span struct {
	Text   string
	Weight float64
}

// BreakWeight is the weight that marks a BREAK span.
const BreakWeight = -1

// IsBreak reports whether s is a BREAK marker. As in A1111, a BREAK
// inside brackets has its weight multiplied like any text, so "(BREAK)"
// stays the text "BREAK" (weight -1.1) rather than a break.
func (s Span) IsBreak() bool { return s.Text == "BREAK" && s.Weight == BreakWeight }

// Multipliers of one pair of brackets without an explicit weight.
const (
	RoundMultiplier  = 1.1
	SquareMultiplier = 1 / 1.1
)

// Parse splits a prompt into spans of text and weight the way
// AUTOMATIC1111's parse_prompt_attention does. It never fails:
//
//   - "(x)" multiplies x's weight by 1.1, "[x]" by 1/1.1; brackets nest
//     and multiply ("((x))" is 1.1*1.1);
//   - "(x:1.3)" multiplies by 1.3 instead (spaces allowed around the
//     number; any sign, digits and dots, Unicode digits included);
//   - "\(", "\)", "\[", "\]", "\\" are the literal characters; any other
//     backslash is dropped;
//   - an open bracket never closed applies its multiplier to everything
//     after it (round ones first, then square); a ")" or "]" with no open
//     bracket of its kind, and a ":" that starts no weight, are text;
//     "(x:abc)" is the text "x:abc" at 1.1;
//   - "BREAK" as a whole word (spaces around it swallowed) becomes a
//     BREAK span;
//   - adjacent spans of equal weight are merged; an empty prompt, or one
//     with only brackets, is [{"", 1}].
//
// Weights are float64 and multiplied in A1111's order, so they are the
// same numbers (1.1*1.1 = 1.2100000000000002). One deliberate difference:
// where A1111 would crash because the number of "(x:1.2.3)" is not a valid
// float, the ":" is read as text, so the result is "x:1.2.3" at 1.1.
func Parse(text string) []Span {
	p := parser{}
	for i := 0; i < len(text); {
		switch c := text[i]; c {
		case '\\':
			if i+1 < len(text) && strings.IndexByte(`()[]\`, text[i+1]) >= 0 {
				p.add(text[i+1 : i+2])
				i += 2
			} else {
				p.add("") // A1111 keeps text[1:] of a lone backslash: nothing
				i++
			}
		case '(':
			p.round = append(p.round, len(p.res))
			i++
		case '[':
			p.square = append(p.square, len(p.res))
			i++
		case ':':
			n, num := weightClose(text[i:])
			if n == 0 {
				p.text(":")
				i++
				break
			}
			if len(p.round) == 0 {
				p.text(text[i : i+n]) // no bracket to close: all literal
				i += n
				break
			}
			w, ok := pyFloat(num)
			if !ok {
				p.text(":") // see the doc comment: A1111 raises here
				i++
				break
			}
			p.multiply(pop(&p.round), w)
			i += n
		case ')':
			if len(p.round) > 0 {
				p.multiply(pop(&p.round), RoundMultiplier)
			} else {
				p.text(")")
			}
			i++
		case ']':
			if len(p.square) > 0 {
				p.multiply(pop(&p.square), SquareMultiplier)
			} else {
				p.text("]")
			}
			i++
		default:
			j := i + 1
			for j < len(text) && strings.IndexByte(`\()[]:`, text[j]) < 0 {
				j++
			}
			p.text(text[i:j])
			i = j
		}
	}
	for _, pos := range p.round {
		p.multiply(pos, RoundMultiplier)
	}
	for _, pos := range p.square {
		p.multiply(pos, SquareMultiplier)
	}
	res := p.res
	if len(res) == 0 {
		return []Span{{"", 1}}
	}
	// Merge runs of equal weights (NaN never equals, as in Python).
	out := res[:1]
	for _, s := range res[1:] {
		if last := &out[len(out)-1]; last.Weight == s.Weight {
			last.Text += s.Text
		} else {
			out = append(out, s)
		}
	}
	return out
}

type parser struct {
	res           []Span
	round, square []int // indexes into res where open brackets started
}

func (p *parser) add(s string) { p.res = append(p.res, Span{s, 1}) }

// text adds plain text, cutting it at each BREAK.
func (p *parser) text(s string) {
	for i, part := range splitBreak(s) {
		if i > 0 {
			p.res = append(p.res, Span{"BREAK", BreakWeight})
		}
		p.add(part)
	}
}

func (p *parser) multiply(from int, m float64) {
	for i := from; i < len(p.res); i++ {
		p.res[i].Weight *= m
	}
}

func pop(s *[]int) int {
	v := (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	return v
}

// weightClose matches A1111's `:\s*([+-]?[.\d]+)\s*\)` at the start of s
// (Python re: \s and \d are Unicode). It returns the match length and the
// number text, or 0.
func weightClose(s string) (int, string) {
	i := 1 // past ':'
	i = skip(s, i, pyIsSpace)
	start := i
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	j := skip(s, i, func(r rune) bool { return r == '.' || unicode.Is(unicode.Nd, r) })
	if j == i {
		return 0, ""
	}
	num := s[start:j]
	j = skip(s, j, pyIsSpace)
	if j >= len(s) || s[j] != ')' {
		return 0, ""
	}
	return j + 1, num
}

// skip advances i over runes that satisfy f.
func skip(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !f(r) {
			break
		}
		i += n
	}
	return i
}

// pyFloat is Python's float() for the strings weightClose captures: an
// optional sign, then digits (any Unicode decimal digit) and dots. Out of
// range values become ±Inf or 0 as in Python.
func pyFloat(s string) (float64, bool) {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x80 {
			r = '0' + digitValue(r)
		}
		b.WriteRune(r)
	}
	f, err := strconv.ParseFloat(b.String(), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

// digitValue is the value of a Unicode decimal digit: Unicode keeps every
// Nd digit in a contiguous run of complete 0..9 sequences.
func digitValue(r rune) rune {
	start := r
	for unicode.Is(unicode.Nd, start-1) {
		start--
	}
	return (r - start) % 10
}

// pyIsSpace is Python's str.isspace (what re's \s matches in str
// patterns): Unicode White_Space plus U+001C..U+001F.
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// pyIsWord is Python re's \w for str patterns: letters, numbers, '_'.
func pyIsWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

// splitBreak is re.split(r"\s*\bBREAK\b\s*", s): the parts around each
// whole-word BREAK, the spaces on both sides dropped; empty parts kept.
func splitBreak(s string) []string {
	if !strings.Contains(s, "BREAK") {
		return []string{s}
	}
	var parts []string
	start := 0
	for i := 0; i < len(s); {
		k := skip(s, i, pyIsSpace) // the \s* before BREAK
		if strings.HasPrefix(s[k:], "BREAK") && boundaryBefore(s, k) && boundaryAfter(s, k+len("BREAK")) {
			end := skip(s, k+len("BREAK"), pyIsSpace)
			parts = append(parts, s[start:i])
			start, i = end, end
			continue
		}
		// Every start between i and k reaches the same k and fails the
		// same way, so the next candidate is the rune after k.
		if k >= len(s) {
			break
		}
		_, n := utf8.DecodeRuneInString(s[k:])
		i = k + n
	}
	return append(parts, s[start:])
}

// boundaryBefore: \b before a word character at i.
func boundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !pyIsWord(r)
}

// boundaryAfter: \b after a word character ending at i.
func boundaryAfter(s string, i int) bool {
	if i == len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return !pyIsWord(r)
}
