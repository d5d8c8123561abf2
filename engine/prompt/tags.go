package prompt

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tag is one of AUTOMATIC1111's extra-network tags, "<kind:args>", as in
// "<lora:name:0.8>".
type Tag struct {
	Kind string // "lora" (A1111's alias "lyco" reads as "lora"), "hypernet", ...
	// Name and Weight are read for LoRA tags: "<lora:name>" has weight 1.
	Name   string
	Weight float64
	Text   string // the tag as written
}

// MaxTagWeight bounds a tag's LoRA weight as --lora's flag does: merged
// into the weights, 1e300 of a LoRA's delta overflows them to infinity.
const MaxTagWeight = 1e6

// ExtractTags removes every extra-network tag from text as A1111 does
// before it parses the prompt (its pattern "<(\w+):([^>]+)>", each match
// replaced by nothing, spaces around it kept), and returns the text left
// and the tags in order. A LoRA tag is "<lora:NAME>" or
// "<lora:NAME:WEIGHT>"; a weight that is not a number, or a third field
// (A1111's separate U-Net weight, not supported here), is an error that
// quotes the tag. Tags of other kinds are returned unread: the caller
// says what it does with them.
func ExtractTags(text string) (string, []Tag, error) {
	var sb strings.Builder
	var tags []Tag
	for i := 0; i < len(text); {
		n := tagLen(text[i:])
		if n == 0 {
			sb.WriteByte(text[i])
			i++
			continue
		}
		raw := text[i : i+n]
		i += n
		kind, args, _ := strings.Cut(raw[1:len(raw)-1], ":")
		t := Tag{Kind: kind, Text: raw}
		if kind == "lyco" {
			t.Kind = "lora"
		}
		if t.Kind == "lora" {
			items := strings.Split(args, ":")
			t.Name, t.Weight = strings.TrimSpace(items[0]), 1
			switch {
			case t.Name == "":
				return "", nil, fmt.Errorf("prompt tag %s names no LoRA", raw)
			case len(items) > 2:
				return "", nil, fmt.Errorf("prompt tag %s: separate text-encoder and U-Net weights are not supported; give one weight, as in <lora:%s:0.8>", raw, t.Name)
			case len(items) == 2:
				w, err := strconv.ParseFloat(strings.TrimSpace(items[1]), 64)
				if err != nil || !(math.Abs(w) <= MaxTagWeight) {
					return "", nil, fmt.Errorf("prompt tag %s: weight %q is not a number within ±%g", raw, items[1], float64(MaxTagWeight))
				}
				t.Weight = w
			}
		}
		tags = append(tags, t)
	}
	if len(tags) == 0 {
		return text, nil, nil
	}
	return sb.String(), tags, nil
}

// tagLen is the length of the "<word:args>" tag at the start of s, or 0:
// a word of letters, digits and underscores (Unicode, as Python's \w),
// a colon, then at least one character up to the first ">".
func tagLen(s string) int {
	if !strings.HasPrefix(s, "<") {
		return 0
	}
	i := 1
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			break
		}
		i += size
	}
	if i == 1 || i >= len(s) || s[i] != ':' {
		return 0
	}
	end := strings.IndexByte(s[i+1:], '>')
	if end <= 0 {
		return 0
	}
	return i + 1 + end + 1
}
