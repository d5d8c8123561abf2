package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GzName is the file name of openai/CLIP's BPE data
// (clip/bpe_simple_vocab_16e6.txt.gz in the openai/CLIP repository).
const GzName = "bpe_simple_vocab_16e6.txt.gz"

// DataDirEnv names the environment variable that overrides DataDir (tests
// and portable installs use it).
const DataDirEnv = "GLIMMER_DATA_DIR"

// DataDir is Glimmer's per-user data folder, where a tokenizer that no
// model carries can be put once: $GLIMMER_DATA_DIR when set, else
// os.UserConfigDir()/glimmer (~/.config/glimmer on Linux,
// ~/Library/Application Support/glimmer on macOS, %AppData%\glimmer on
// Windows).
func DataDir() (string, error) {
	if d := os.Getenv(DataDirEnv); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "glimmer"), nil
}

// NotFoundError says that no tokenizer was found for a model, and where
// ForModel looked.
type NotFoundError struct {
	Model  string
	Looked []string // the paths tried, in order
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no CLIP tokenizer for %s: need %s (from openai/CLIP) or a tokenizer folder with vocab.json and merges.txt; looked for %s",
		e.Model, GzName, strings.Join(e.Looked, ", "))
}

// ForModel finds and loads the tokenizer for a model. modelPath is a
// diffusers folder or a single checkpoint file; it is not read. The places
// tried, first found wins:
//
//   - a diffusers folder's tokenizer/ subfolder, then GzName inside it;
//   - for a file: a tokenizer/ folder beside it, then GzName beside it;
//   - DataDir()/tokenizer, then DataDir()/GzName.
//
// A tokenizer/ folder counts when it holds vocab.json. A found tokenizer
// that fails to load is an error, not a reason to try the next place.
// Nothing found gives a *NotFoundError naming every path tried.
//
// The pad id comes from the tokenizer config when there is one; a
// GzName vocabulary pads with <|endoftext|> (SD 1.x), so the caller sets
// PadID for an SD 2.x single-file model.
func ForModel(modelPath string) (*Tokenizer, error) {
	st, err := os.Stat(modelPath)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	dir := filepath.Dir(modelPath)
	if st.IsDir() {
		dir = modelPath
	}
	dirs := []string{dir}
	if data, err := DataDir(); err == nil {
		dirs = append(dirs, data)
	}
	var looked []string
	for _, d := range dirs {
		folder := filepath.Join(d, "tokenizer")
		if fileExists(filepath.Join(folder, "vocab.json")) {
			return Load(folder)
		}
		looked = append(looked, folder)
		gz := filepath.Join(d, GzName)
		if fileExists(gz) {
			return LoadBPEGz(gz)
		}
		looked = append(looked, gz)
	}
	return nil, &NotFoundError{Model: modelPath, Looked: looked}
}

// Open loads a tokenizer the user named (--tokenizer): a GzName-style .gz
// file, a tokenizer folder (vocab.json + merges.txt), a diffusers model
// folder with a tokenizer/ subfolder, or a folder holding GzName.
func Open(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if !st.IsDir() {
		return LoadBPEGz(path)
	}
	for _, c := range []struct {
		probe string
		load  func() (*Tokenizer, error)
	}{
		{filepath.Join(path, "vocab.json"), func() (*Tokenizer, error) { return Load(path) }},
		{filepath.Join(path, "tokenizer", "vocab.json"), func() (*Tokenizer, error) { return Load(filepath.Join(path, "tokenizer")) }},
		{filepath.Join(path, GzName), func() (*Tokenizer, error) { return LoadBPEGz(filepath.Join(path, GzName)) }},
	} {
		if fileExists(c.probe) {
			return c.load()
		}
	}
	return nil, fmt.Errorf("tokenizer: %s holds neither vocab.json, tokenizer/vocab.json nor %s", path, GzName)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
