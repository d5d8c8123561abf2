package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func init() {
	infoKinds = append(infoKinds, infoKind{name: "PNG", claims: isPNGPath, describe: describePNG})
}

func isPNGPath(path string) bool { return strings.EqualFold(filepath.Ext(path), ".png") }

// ReadParams reads the generation parameters a PNG carries (A1111's
// "parameters" text chunk, which Glimmer writes).
func ReadParams(path string) (Params, error) {
	f, err := os.Open(path)
	if err != nil {
		return Params{}, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	chunks, err := ReadPNGText(f)
	if err != nil {
		return Params{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, kv := range chunks {
		if kv[0] == "parameters" {
			p, err := ParseParams(kv[1])
			if err != nil {
				return Params{}, fmt.Errorf("%s: %w", path, err)
			}
			return p, nil
		}
	}
	return Params{}, fmt.Errorf("%s: %w", path, errNoParams)
}

var errNoParams = errors.New("no generation parameters in this PNG")

// describePNG prints the parameters text as stored, then the settings
// Glimmer reads from it.
func describePNG(env *Env, path string, _ infoOptions) error {
	p, err := ReadParams(path)
	if err != nil {
		return err
	}
	w := env.Stdout
	// Text from the file, which may hold terminal escapes.
	fmt.Fprintf(w, "prompt     %s\n", oneLine(p.Prompt))
	if p.Negative != "" {
		fmt.Fprintf(w, "negative   %s\n", oneLine(p.Negative))
	}
	fmt.Fprintf(w, "steps      %d\nsampler    %s (%s schedule)\ncfg        %g\nseed       %d\nsize       %dx%d\n",
		p.Steps, oneLine(p.Sampler), oneLine(p.Schedule), p.CFG, p.Seed, p.Width, p.Height)
	if p.Model != "" {
		fmt.Fprintf(w, "model      %s\n", oneLine(p.Model))
	}
	if p.ClipSkip > 1 {
		fmt.Fprintf(w, "clip skip  %d\n", p.ClipSkip)
	}
	return nil
}
