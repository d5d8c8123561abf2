package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// clean is CLIP's text cleanup without ftfy: whitespace_clean (runs of
// `\s` of the regex module, i.e. Unicode White_Space = unicode.IsSpace,
// become one space), Python's str.strip (which also strips U+001C..U+001F),
// then Python's str.lower.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if space {
		b.WriteByte(' ')
	}
	return pyLower(strings.TrimFunc(b.String(), pyIsSpace))
}

// pyIsSpace is Python's str.isspace for one character: Unicode White_Space
// plus the information separators U+001C..U+001F.
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// pyLower is Python's str.lower: simple lower-case mappings, plus the two
// context-free/contextual rules Python applies: U+0130 (İ) becomes "i̇"
// and a capital sigma at the end of a word becomes final sigma (ς).
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			if finalSigma(rs, i) {
				b.WriteRune(0x3c2)
			} else {
				b.WriteRune(0x3c3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is Unicode's Final_Sigma condition as CPython checks it: a
// cased letter before (skipping case-ignorable characters) and none after.
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && caseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !cased(rs[j])
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.In(r, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

func caseIgnorable(r rune) bool {
	switch r {
	// Word_Break MidLetter, MidNumLet and Single_Quote.
	case '\'', '.', ':', 0xb7, 0x387, 0x55f, 0x5f4, 0x2018, 0x2019, 0x2024,
		0x2027, 0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// split cuts cleaned text into the pieces CLIP's pattern finds:
//
//	's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// matched case-insensitively; whitespace separates pieces and is dropped.
// At each position the first alternative that matches wins, as in the
// regex engine: a contraction only when a piece starts at the apostrophe.
func split(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsSpace(r):
			i += n
			continue
		case r == '\'':
			if k := contraction(s[i+1:]); k > 0 {
				out = append(out, s[i:i+1+k])
				i += 1 + k
				continue
			}
		case unicode.IsLetter(r):
			j := i + n
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsLetter(r2) {
					break
				}
				j += n2
			}
			out = append(out, s[i:j])
			i = j
			continue
		case unicode.IsNumber(r):
			out = append(out, s[i:i+n])
			i += n
			continue
		}
		// A run of characters that are neither space, letter nor number.
		j := i + n
		for j < len(s) {
			r2, n2 := utf8.DecodeRuneInString(s[j:])
			if unicode.IsSpace(r2) || unicode.IsLetter(r2) || unicode.IsNumber(r2) {
				break
			}
			j += n2
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// contraction returns the byte length of the contraction suffix (s, t,
// re, ve, m, ll, d) at the start of s, or 0. Case-insensitive with simple
// case folding, so the long s (ſ, which folds to s) counts as s.
func contraction(s string) int {
	if s == "" {
		return 0
	}
	if strings.HasPrefix(s, "ſ") {
		return len("ſ")
	}
	switch s[0] | 0x20 {
	case 's', 't', 'm', 'd':
		return 1
	}
	if len(s) >= 2 {
		switch strings.ToLower(s[:2]) {
		case "re", "ve", "ll":
			return 2
		}
	}
	return 0
}
