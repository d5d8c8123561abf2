package pipeline_test

import (
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/pipeline"
)

// A single file carries no tokenizer config, so with CLIP's .gz the family
// picks the pad token (SD 2.x pads with "!" = 0); a tokenizer folder's
// config always wins.
func TestTokenizerPadFollowsFamily(t *testing.T) {
	gz := fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz")
	folder := fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers", "tokenizer") // pads with "!"
	sd1Folder := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers", "tokenizer")
	sd2 := &model.Model{Path: "sd2.safetensors", Config: model.Config{Tokenizer: model.TokenizerConfig{Pad: 0}}}
	sd1 := &model.Model{Path: "sd1.safetensors", Config: model.Config{Tokenizer: model.TokenizerConfig{Pad: 49407}}}
	for _, c := range []struct {
		m        *model.Model
		override string
		want     int
	}{
		{sd2, gz, 0},
		{sd1, gz, 49407},
		{sd1, folder, 0},        // the folder's config says "!"
		{sd2, sd1Folder, 49407}, // ... or <|endoftext|>
	} {
		tok, err := pipeline.Tokenizer(c.m, c.override)
		if err != nil {
			t.Fatal(err)
		}
		if tok.PadID != c.want {
			t.Errorf("%s with %s: pad %d, want %d", c.m.Path, c.override, tok.PadID, c.want)
		}
	}
}
