package prompt

import (
	"reflect"
	"strings"
	"testing"
)

// TestLoraTags: tags are cut out exactly as A1111's
// re.sub(r"<(\w+):([^>]+)>", "", prompt) does (the expected texts below are
// that substitution done by hand), and LoRA tags give name and weight.
func TestLoraTags(t *testing.T) {
	for _, tc := range []struct {
		in, text string
		tags     []Tag
	}{
		{"a cat", "a cat", nil},
		{"a cat <lora:pixel-art:0.8>", "a cat ", []Tag{{"lora", "pixel-art", 0.8, "<lora:pixel-art:0.8>"}}},
		{"<lora:a b.v2>(red:1.2) cat,<lyco:x: -0.5 >dog", "(red:1.2) cat,dog",
			[]Tag{{"lora", "a b.v2", 1, "<lora:a b.v2>"}, {"lora", "x", -0.5, "<lyco:x: -0.5 >"}}},
		{"a <hypernet:h:1> b", "a  b", []Tag{{Kind: "hypernet", Text: "<hypernet:h:1>"}}},
		// Not tags: no word, no colon, empty args, no closing bracket, a
		// space in the kind.
		{"a <cat> <:x> <lora:> <lo ra:x> <lora:x", "a <cat> <:x> <lora:> <lo ra:x> <lora:x", nil},
		{"<lora:x:1>>", ">", []Tag{{"lora", "x", 1, "<lora:x:1>"}}},
		{"<ローラ:x>é", "é", []Tag{{Kind: "ローラ", Text: "<ローラ:x>"}}},
	} {
		text, tags, err := ExtractTags(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if text != tc.text || !reflect.DeepEqual(tags, tc.tags) {
			t.Errorf("%q: got %q %+v, want %q %+v", tc.in, text, tags, tc.text, tc.tags)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"a <lora:x:abc>", `prompt tag <lora:x:abc>: weight "abc" is not a number`},
		{"a <lora:x:1:0.5>", "separate text-encoder and U-Net weights are not supported"},
		{"a <lora: :1>", "names no LoRA"},
		{"a <lora:x:nan>", "not a number"},
	} {
		_, _, err := ExtractTags(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

// TestLoraTagsLeaveTokens: a prompt with tags tokenizes as the prompt
// without them: the tag's characters never reach the tokenizer.
func TestLoraTagsLeaveTokens(t *testing.T) {
	text, _, err := ExtractTags("a red <lora:style:0.7>circle")
	if err != nil {
		t.Fatal(err)
	}
	got, want := Parse(text), Parse("a red circle")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spans %+v, want %+v", got, want)
	}
}
