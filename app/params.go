package app

import (
	"fmt"
	"strconv"
	"strings"
)

// Params are the settings that made an image: what generate takes and
// what a PNG's "parameters" text records, in AUTOMATIC1111's format so
// other tools read it back.
type Params struct {
	Prompt   string
	Negative string
	Steps    int
	Sampler  string // ddim, euler, euler_a, dpmpp_2m
	Schedule string // default, karras
	CFG      float64
	Seed     int64
	Width    int
	Height   int
	Model    string // the model's file or folder name, without extension
	ClipSkip int    // 1 = the last layer (A1111 records only values > 1)
	// LoraHashes is A1111's "Lora hashes": "name: hash, ..." for the
	// LoRAs of the prompt's <lora:name:weight> tags ("" without LoRAs).
	LoraHashes string
}

// DefaultParams are the settings used when none are given.
func DefaultParams() Params {
	return Params{Steps: 20, Sampler: "euler_a", Schedule: "default", CFG: 7, Seed: -1,
		Width: 512, Height: 512, ClipSkip: 1}
}

// The A1111 names of the samplers.
var a1111Sampler = map[string]string{
	"ddim": "DDIM", "euler": "Euler", "euler_a": "Euler a", "dpmpp_2m": "DPM++ 2M",
}

// Format renders p as A1111's parameters text: the prompt, a
// "Negative prompt:" line when there is one, then the settings line.
func (p Params) Format() string {
	var sb strings.Builder
	sb.WriteString(p.Prompt)
	if p.Negative != "" {
		sb.WriteString("\nNegative prompt: " + p.Negative)
	}
	sampler := a1111Sampler[p.Sampler]
	if sampler == "" {
		sampler = p.Sampler
	}
	fields := []string{
		"Steps: " + strconv.Itoa(p.Steps),
		"Sampler: " + sampler,
	}
	if p.Schedule == "karras" {
		fields = append(fields, "Schedule type: Karras")
	}
	fields = append(fields,
		"CFG scale: "+strconv.FormatFloat(p.CFG, 'g', -1, 64),
		"Seed: "+strconv.FormatInt(p.Seed, 10),
		fmt.Sprintf("Size: %dx%d", p.Width, p.Height))
	if p.Model != "" {
		fields = append(fields, "Model: "+quoteField(p.Model))
	}
	if p.ClipSkip > 1 {
		fields = append(fields, "Clip skip: "+strconv.Itoa(p.ClipSkip))
	}
	if p.LoraHashes != "" {
		fields = append(fields, "Lora hashes: "+quoteField(p.LoraHashes))
	}
	fields = append(fields, "Version: Glimmer")
	sb.WriteString("\n" + strings.Join(fields, ", "))
	return sb.String()
}

// quoteField quotes a value that holds the field separators, as A1111.
func quoteField(v string) string {
	if strings.ContainsAny(v, ",:\"\n") {
		return strconv.Quote(v)
	}
	return v
}

// ParseParams reads A1111 parameters text. The last line that starts with
// "Steps: " holds the settings; the lines before it are the prompt and,
// from the line that starts with "Negative prompt: ", the negative
// prompt. Settings it does not know are ignored; known ones with bad
// values are errors.
func ParseParams(text string) (Params, error) {
	p := DefaultParams()
	p.Seed = -1
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	settings := ""
	if n := len(lines); n > 0 && strings.HasPrefix(strings.TrimSpace(lines[n-1]), "Steps: ") {
		settings = strings.TrimSpace(lines[n-1])
		lines = lines[:n-1]
	}
	var prompt, negative []string
	inNeg := false
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "Negative prompt: "); ok && !inNeg {
			inNeg = true
			l = rest
		}
		if inNeg {
			negative = append(negative, l)
		} else {
			prompt = append(prompt, l)
		}
	}
	p.Prompt = strings.TrimSpace(strings.Join(prompt, "\n"))
	p.Negative = strings.TrimSpace(strings.Join(negative, "\n"))
	if settings == "" {
		return p, nil
	}
	kv, err := splitSettings(settings)
	if err != nil {
		return p, err
	}
	for _, f := range kv {
		k, v := f[0], f[1]
		var err error
		switch k {
		case "Steps":
			p.Steps, err = strconv.Atoi(v)
		case "Sampler":
			p.Sampler, p.Schedule = samplerFromA1111(v, p.Schedule)
		case "Schedule type":
			if strings.EqualFold(v, "karras") {
				p.Schedule = "karras"
			}
		case "CFG scale":
			p.CFG, err = strconv.ParseFloat(v, 64)
		case "Seed":
			p.Seed, err = strconv.ParseInt(v, 10, 64)
		case "Size":
			w, h, ok := strings.Cut(v, "x")
			if !ok {
				err = fmt.Errorf("want WxH")
				break
			}
			if p.Width, err = strconv.Atoi(w); err == nil {
				p.Height, err = strconv.Atoi(h)
			}
		case "Model":
			p.Model = v
		case "Clip skip":
			p.ClipSkip, err = strconv.Atoi(v)
		case "Lora hashes":
			p.LoraHashes = v
		}
		if err != nil {
			return p, fmt.Errorf("parameters: bad %s %q", k, v)
		}
	}
	return p, nil
}

// samplerFromA1111 maps "Euler a", "DPM++ 2M Karras" (older A1111 named the
// schedule in the sampler) and our own names.
func samplerFromA1111(v, schedule string) (string, string) {
	if base, ok := strings.CutSuffix(v, " Karras"); ok {
		v, schedule = base, "karras"
	}
	for ours, theirs := range a1111Sampler {
		if strings.EqualFold(v, theirs) || v == ours {
			return ours, schedule
		}
	}
	return v, schedule
}

// splitSettings splits "Key: value, Key: "quoted, value", ..." into pairs.
func splitSettings(s string) ([][2]string, error) {
	var out [][2]string
	for len(s) > 0 {
		k, rest, ok := strings.Cut(s, ": ")
		if !ok {
			break
		}
		k = strings.TrimSpace(k)
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("parameters: unterminated quote in %q", k)
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
			rest = strings.TrimPrefix(strings.TrimLeft(rest, " "), ",")
		} else {
			v, rest, _ = strings.Cut(rest, ",")
		}
		out = append(out, [2]string{k, strings.TrimSpace(v)})
		s = strings.TrimLeft(rest, " ")
	}
	return out, nil
}
