package app

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	glmodel "glimmer/engine/model"
	"glimmer/engine/pipeline"
	"glimmer/engine/prompt"
	"glimmer/engine/tokenizer"
)

func init() {
	register("tokenize", "print a prompt's CLIP token ids", runTokenize)
}

func runTokenize(env *Env, args []string) error {
	fs := newFlags(env, "tokenize")
	model := fs.String("model", "", "model: a .safetensors/.ckpt file or a diffusers folder")
	tokPath := fs.String("tokenizer", "", "use this tokenizer instead of looking for one: "+
		tokenizer.GzName+", a tokenizer folder (vocab.json, merges.txt) or a diffusers folder")
	all := fs.Bool("all", false, "print every 77-token chunk of a long prompt, one per line")
	weights := fs.Bool("weights", false, "parse the (word:1.2) [word] BREAK syntax and list each chunk's tokens with their weights")
	pad := fs.Int("pad", -1, "pad token id; -1 takes the tokenizer config's (49407 for "+tokenizer.GzName+"; SD 2.x pads with 0)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: glimmer tokenize --model PATH [--all | --weights] [--tokenizer PATH] [--pad ID] TEXT")
		fmt.Fprintln(w, "Prints the 77 token ids the text encoder gets for TEXT (start, up to 75 tokens, end, padding).")
		fmt.Fprintf(w, "Without a tokenizer in the model, looks for tokenizer/ or %s beside the model file,\n", tokenizer.GzName)
		fmt.Fprintf(w, "then in the data folder ($%s, default <user config dir>/glimmer).\n", tokenizer.DataDirEnv)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *model == "" && *tokPath == "":
		return usagef("tokenize: --model is required")
	case len(pos) == 0:
		return usagef("tokenize: missing TEXT (glimmer tokenize --model PATH TEXT)")
	case len(pos) > 1:
		return usagef("tokenize: one TEXT expected, got %d arguments (quote the prompt)", len(pos))
	case *pad < -1:
		return usagef("tokenize: --pad %d is not a token id", *pad)
	}
	text := pos[0]

	tok, err := tokenizerFor(*model, *tokPath)
	if err != nil {
		return err
	}
	if *pad >= 0 {
		if *pad >= tok.VocabSize() {
			return usagef("tokenize: --pad %d is outside the vocabulary (%d ids)", *pad, tok.VocabSize())
		}
		tok.PadID = *pad
	}

	out := bufio.NewWriter(env.Stdout)
	switch {
	case *weights:
		printWeights(out, tok, prompt.Tokenize(tok, text))
	case *all:
		for _, w := range tok.Chunks(text) {
			printIDs(out, w[:])
		}
	default:
		w := tok.Window(text)
		printIDs(out, w[:])
	}
	return out.Flush()
}

// tokenizerFor loads the tokenizer named by --tokenizer, else the one
// tokenizer.ForModel finds for the model. Its PadID comes from the
// tokenizer config, or is <|endoftext|> for a bare .gz vocabulary.
//
// Seam for SD 2.x single-file models: they carry no tokenizer config, so
// once the model family is known (engine/model) the caller sets
// PadID = 0 for SD 2.x; `tokenize --pad 0` does it by hand meanwhile.
func tokenizerFor(model, override string) (*tokenizer.Tokenizer, error) {
	if model != "" {
		if _, err := os.Stat(model); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	// The model's family decides the pad token when no tokenizer config
	// does (single files with CLIP's .gz); opening reads headers only.
	if model != "" {
		if m, err := glmodel.Open(model, glmodel.Options{}); err == nil {
			defer m.Close()
			tok, err := pipeline.Tokenizer(m, override)
			var nf *tokenizer.NotFoundError
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("%w; put it there, set %s, or pass --tokenizer PATH", err, tokenizer.DataDirEnv)
			}
			return tok, err
		}
	}
	if override != "" {
		return tokenizer.Open(override)
	}
	tok, err := tokenizer.ForModel(model)
	var nf *tokenizer.NotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("%w; put it there, set %s, or pass --tokenizer PATH", err, tokenizer.DataDirEnv)
	}
	return tok, err
}

func printIDs(w *bufio.Writer, ids []int) {
	for i, id := range ids {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.WriteString(strconv.Itoa(id))
	}
	w.WriteByte('\n')
}

// printWeights lists each chunk's prompt tokens (not start, end or
// padding), one per line: the token as CLIP spells it ("</w>" ends a word;
// a fragment of a character is written as Go-quoted bytes), a tab, and the
// float32 weight the text encoder will use.
func printWeights(w *bufio.Writer, tok *tokenizer.Tokenizer, chunks []prompt.Chunk) {
	for i, c := range chunks {
		unit := "tokens"
		if c.Len == 1 {
			unit = "token"
		}
		fmt.Fprintf(w, "chunk %d of %d, %d %s:\n", i+1, len(chunks), c.Len, unit)
		for k := 1; k <= c.Len; k++ {
			fmt.Fprintf(w, "%s\t%s\n", tokenText(tok, c.IDs[k]), strconv.FormatFloat(float64(c.Weights[k]), 'g', -1, 32))
		}
	}
}

func tokenText(tok *tokenizer.Tokenizer, id int) string {
	b, end := tok.TokenBytes(id)
	s := string(b)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) >= 0 {
		s = strconv.Quote(s)
	}
	if end {
		s += "</w>"
	}
	return s
}
