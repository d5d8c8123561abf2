package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"glimmer/engine/lora"
	"glimmer/engine/prompt"
)

// LoRASpec is one LoRA an image is made with: from `--lora FILE:WEIGHT`
// or from a `<lora:NAME:WEIGHT>` tag in the prompt or negative prompt.
type LoRASpec struct {
	Name   string // the tag's name, or the file's name without extension
	Path   string
	Weight float64
	// FromFlag: given on the command line, so not in the prompt; the
	// saved parameters record it as a tag appended to the prompt, as
	// A1111 records the LoRA its settings add.
	FromFlag bool
}

// loraFlags collects repeated --lora flags.
type loraFlags []LoRASpec

func (l *loraFlags) String() string { return "" }

func (l *loraFlags) Set(s string) error {
	path, w, err := ParseLoRAFlag(s)
	if err != nil {
		return err
	}
	*l = append(*l, LoRASpec{Name: fileStem(path), Path: path, Weight: w, FromFlag: true})
	return nil
}

// ParseLoRAFlag reads FILE[:WEIGHT]: the text after the last colon is the
// weight when it is a number, else part of the file name (so
// C:\loras\x.safetensors keeps its drive letter). The weight defaults to 1.
func ParseLoRAFlag(s string) (string, float64, error) {
	path, w := s, 1.0
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if v, err := strconv.ParseFloat(s[i+1:], 64); err == nil {
			path, w = s[:i], v
		}
	}
	if path == "" {
		return "", 0, fmt.Errorf("%q names no file (want FILE or FILE:WEIGHT)", s)
	}
	if w != w || w > 1e6 || w < -1e6 {
		return "", 0, fmt.Errorf("%q: weight %g is not a usable number", s, w)
	}
	return path, w, nil
}

func fileStem(path string) string {
	b := filepath.Base(path)
	if i := strings.LastIndexAny(b, `\`); i >= 0 { // a Windows path on another system
		b = b[i+1:]
	}
	return strings.TrimSuffix(b, filepath.Ext(b))
}

// LoRADirs are the folders a prompt tag's name is looked up in: dir when
// set, then the "loras" folder beside the model (beside the file, or
// beside a diffusers folder).
func LoRADirs(model, dir string) []string {
	var out []string
	if dir != "" {
		out = append(out, dir)
	}
	if model != "" {
		out = append(out, filepath.Join(filepath.Dir(filepath.Clean(model)), "loras"))
	}
	return out
}

// ResolveLoRAs lists the LoRAs of an image: flags first, then the tags of
// p's prompt and negative prompt in order, each tag's NAME found as
// NAME.safetensors in the first of dirs that has it. Tags of other extra
// networks (hypernetworks, ...) are left out of the prompt as A1111 does
// and come back as notes. A bad tag or a name no folder has is an error.
func ResolveLoRAs(p Params, flags []LoRASpec, dirs []string) ([]LoRASpec, []string, error) {
	specs := append([]LoRASpec(nil), flags...)
	var notes []string
	for _, text := range []string{p.Prompt, p.Negative} {
		_, tags, err := prompt.ExtractTags(text)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range tags {
			if t.Kind != "lora" {
				notes = append(notes, fmt.Sprintf("%s ignored: only LoRA tags are supported", t.Text))
				continue
			}
			path, err := findLoRA(t.Name, dirs)
			if err != nil {
				return nil, nil, err
			}
			specs = append(specs, LoRASpec{Name: t.Name, Path: path, Weight: t.Weight})
		}
	}
	return specs, notes, nil
}

func findLoRA(name string, dirs []string) (string, error) {
	if len(dirs) == 0 {
		return "", fmt.Errorf("<lora:%s>: no LoRA folder to look in (set --lora-dir)", name)
	}
	for _, d := range dirs {
		path := filepath.Join(d, name+".safetensors")
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			return path, nil
		}
	}
	return "", fmt.Errorf("<lora:%s>: no %s.safetensors in %s (--lora-dir sets the folder)", name, name, strings.Join(dirs, " or "))
}

// ReadLoRAs reads each spec's file (each path once) for the pipeline.
func ReadLoRAs(specs []LoRASpec) ([]lora.Weighted, error) {
	files := map[string]*lora.File{}
	var out []lora.Weighted
	for _, s := range specs {
		f, ok := files[s.Path]
		if !ok {
			var err error
			if f, err = lora.Read(s.Path); err != nil {
				return nil, err
			}
			files[s.Path] = f
		}
		out = append(out, lora.Weighted{File: f, Path: s.Path, Weight: float32(s.Weight)})
	}
	return out, nil
}

// loraHashes is A1111's "Lora hashes" value: "name: hash, ..." with each
// file's short addnet hash (12 hex digits), each name once.
func loraHashes(specs []LoRASpec) (string, error) {
	var parts []string
	seen := map[string]bool{}
	for _, s := range specs {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		h, err := lora.Hash(s.Path)
		if err != nil {
			return "", err
		}
		parts = append(parts, s.Name+": "+h[:12])
	}
	return strings.Join(parts, ", "), nil
}

// withLoRAs returns p as the saved parameters record it: the LoRAs given
// as flags appended to the prompt as tags (the tags typed in the prompt
// stay as typed) and the LoRAs' hashes.
func withLoRAs(p Params, specs []LoRASpec) (Params, error) {
	if len(specs) == 0 {
		return p, nil
	}
	for _, s := range specs {
		if s.FromFlag {
			p.Prompt += fmt.Sprintf(" <lora:%s:%s>", s.Name, strconv.FormatFloat(s.Weight, 'g', -1, 64))
		}
	}
	h, err := loraHashes(specs)
	if err != nil {
		return p, err
	}
	p.LoraHashes = h
	return p, nil
}

// loraKey identifies a LoRA set, files' sizes and times included, so a
// cached pipeline is reloaded when the set or a file changes.
func loraKey(specs []LoRASpec) string {
	var sb strings.Builder
	for _, s := range specs {
		var size, mod int64
		if st, err := os.Stat(s.Path); err == nil {
			size, mod = st.Size(), st.ModTime().UnixNano()
		}
		fmt.Fprintf(&sb, "%q:%v:%d:%d;", s.Path, s.Weight, size, mod)
	}
	return sb.String()
}

// stripTags is text without its extra-network tags, what the tokenizer
// sees. Tags were checked by ResolveLoRAs; a bad one is left in place.
func stripTags(text string) string {
	t, _, err := prompt.ExtractTags(text)
	if err != nil {
		return text
	}
	return t
}
