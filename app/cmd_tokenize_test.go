package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/tokenizer"
)

// run calls the CLI as a user would and returns exit code, stdout, stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func tokenRefs(t *testing.T, family, file string) (prompts []string, ids []string) {
	t.Helper()
	b, err := os.ReadFile(fixtures.Path(t, "fixtures", family, "refs", file))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Prompts []string `json:"prompts"`
		IDs     [][]int  `json:"ids"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, l := range r.IDs {
		s := make([]string, len(l))
		for i, id := range l {
			s[i] = strconv.Itoa(id)
		}
		ids = append(ids, strings.Join(s, " "))
	}
	return r.Prompts, ids
}

// emptyDataDir points the tokenizer's data folder at an empty folder, so
// that the user's own ~/.config/glimmer never changes a test.
func emptyDataDir(t *testing.T) string {
	d := t.TempDir()
	t.Setenv(tokenizer.DataDirEnv, d)
	return d
}

// TestTokenizeReference: the printed line is the reference tokenizer's 77
// ids, for a diffusers folder (its own tokenizer and pad), for the
// single-file SD 1.x model with CLIP's .gz in the data folder, and with
// --tokenizer.
func TestTokenizeReference(t *testing.T) {
	data := emptyDataDir(t)
	gz := fixtures.Path(t, "refdata", tokenizer.GzName)
	if err := os.Symlink(gz, filepath.Join(data, tokenizer.GzName)); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	sd1File := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	for _, c := range []struct {
		family, file string
		args         []string
	}{
		{"sd1-tiny", "sd1-tokens.json", []string{"--model", fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")}},
		{"sd1-tiny", "sd1-tokens.json", []string{"--model", sd1File}},
		{"sd1-tiny", "sd1-tokens.json", []string{"--model", sd1File, "--tokenizer", gz}},
		{"sd2-tiny", "sd2-tokens.json", []string{"--model", fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers")}},
		// SD 2.x's pad by hand, with a vocabulary that has no config.
		{"sd2-tiny", "sd2-tokens.json", []string{"--tokenizer", gz, "--pad", "0"}},
	} {
		prompts, want := tokenRefs(t, c.family, c.file)
		for i, p := range prompts {
			args := append(append([]string{"tokenize"}, c.args...), p)
			code, out, errs := run(t, args...)
			if code != ExitOK || out != want[i]+"\n" || errs != "" {
				t.Errorf("%v: exit %d, stderr %q\n got %q\nwant %q", args, code, errs, out, want[i])
			}
		}
	}
}

// TestTokenizeAll: --all prints one 77-id line per 75 tokens; the first
// line is the plain output. 160 "a" tokens (id 320) make 75+75+10.
func TestTokenizeAll(t *testing.T) {
	emptyDataDir(t)
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	text := strings.Repeat("a ", 160)
	code, out, _ := run(t, "tokenize", "--model", model, text, "--all")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != ExitOK || len(lines) != 3 {
		t.Fatalf("exit %d, %d lines", code, len(lines))
	}
	_, first, _ := run(t, "tokenize", "--model", model, text)
	if lines[0]+"\n" != first {
		t.Errorf("first chunk %q differs from the plain output %q", lines[0], first)
	}
	last := strings.Fields(lines[2])
	if len(last) != 77 || last[0] != "49406" || last[10] != "320" || last[11] != "49407" || last[76] != "49407" {
		t.Errorf("last chunk %v", last)
	}
}

// TestTokenizeWeights: --weights parses the prompt syntax; each token
// line is CLIP's spelling and the float32 weight (1/1.1 prints as
// 0.90909094). BREAK starts a new chunk.
func TestTokenizeWeights(t *testing.T) {
	emptyDataDir(t)
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	code, out, errs := run(t, "tokenize", "--weights", "--model", model, "a (red:1.5) [cat] BREAK café")
	want := "chunk 1 of 2, 3 tokens:\n" +
		"a</w>\t1\n" +
		"red</w>\t1.5\n" +
		"cat</w>\t0.90909094\n" +
		"chunk 2 of 2, 1 token:\n" +
		"café</w>\t1\n"
	if code != ExitOK || out != want {
		t.Errorf("exit %d, stderr %q\n got %q\nwant %q", code, errs, out, want)
	}
	// A character split over several tokens shows its bytes quoted.
	code, out, _ = run(t, "tokenize", "--weights", "--model", model, "🦩")
	if code != ExitOK || !strings.Contains(out, `"\x`) {
		t.Errorf("exit %d, out %q", code, out)
	}
}

// TestTokenizeErrors: usage mistakes exit 2, other failures 1, each with
// one line on stderr.
func TestTokenizeErrors(t *testing.T) {
	data := emptyDataDir(t)
	diffusers := fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers")
	models := t.TempDir()
	lone := filepath.Join(models, "lone.safetensors")
	if err := os.WriteFile(lone, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stderr []string // substrings of the one line
	}{
		{"missing text", []string{"--model", diffusers}, ExitUsage, []string{"missing TEXT"}},
		{"missing model", []string{"a cat"}, ExitUsage, []string{"--model"}},
		{"two texts", []string{"--model", diffusers, "a", "cat"}, ExitUsage, []string{"quote"}},
		{"bad flag", []string{"--model", diffusers, "--nope", "a"}, ExitUsage, []string{"nope"}},
		{"bad pad", []string{"--model", diffusers, "--pad", "49408", "a"}, ExitUsage, []string{"--pad"}},
		{"negative pad", []string{"--model", diffusers, "--pad", "-2", "a"}, ExitUsage, []string{"--pad"}},
		{"no model file", []string{"--model", filepath.Join(models, "nope.safetensors"), "a"}, ExitError, []string{"nope.safetensors"}},
		// A single file with no tokenizer anywhere: the line names the
		// file needed and every place looked in.
		{"no tokenizer", []string{"--model", lone, "a"}, ExitError, []string{
			tokenizer.GzName, filepath.Join(models, "tokenizer"), filepath.Join(models, tokenizer.GzName),
			filepath.Join(data, tokenizer.GzName), "--tokenizer",
		}},
		{"bad tokenizer", []string{"--model", diffusers, "--tokenizer", lone, "a"}, ExitError, []string{"lone.safetensors"}},
	} {
		code, out, errs := run(t, append([]string{"tokenize"}, c.args...)...)
		if code != c.code || out != "" {
			t.Errorf("%s: exit %d (want %d), stdout %q", c.name, code, c.code, out)
		}
		line := strings.TrimSuffix(errs, "\n")
		if c.code == ExitError && strings.Contains(line, "\n") {
			t.Errorf("%s: stderr is not one line: %q", c.name, errs)
		}
		for _, s := range c.stderr {
			if !strings.Contains(errs, s) {
				t.Errorf("%s: stderr %q lacks %q", c.name, errs, s)
			}
		}
	}
}
