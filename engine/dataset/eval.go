package dataset

import (
	"fmt"
	"image"
)

// Probe is one request of the prompt-following evaluation: a caption
// drawn from Spec and the seed to generate it with.
type Probe struct {
	Spec   Spec // Shape, Colour, Background, Count and Position (no Boxes)
	Prompt string
	Seed   uint64
}

// Probes lists the evaluation's requests for a split: every (shape colour,
// background) pair of the split, seeds times, each a single shape at the
// centre ("a red circle on a blue background") with the shape kind
// cycling through Shapes, pair i's k-th request with seed 1000·i + k.
func Probes(split Split, seeds int) []Probe {
	var out []Probe
	for i, pair := range Pairs(split) {
		for k := range seeds {
			spec := Spec{Shape: Shapes[(i+k)%len(Shapes)], Colour: pair[0], Background: pair[1],
				Count: 1, Position: Centre}
			out = append(out, Probe{Spec: spec, Prompt: Caption(spec), Seed: uint64(1000*i + k)})
		}
	}
	return out
}

// Outcome is what Detect saw in a probe's picture.
type Outcome struct {
	Probe
	Colour, Background string // detected shape and background colours
}

// Hit reports whether the picture shows the asked-for shape colour and
// background colour.
func (o Outcome) Hit() bool {
	return o.Colour == o.Spec.Colour && o.Background == o.Spec.Background
}

// Score is the share of outcomes that are hits.
type Score struct {
	Hits, Total int
	Misses      []Outcome
}

// Percent is the hit rate in percent (0 for no outcomes).
func (s Score) Percent() float64 {
	if s.Total == 0 {
		return 0
	}
	return 100 * float64(s.Hits) / float64(s.Total)
}

func (s Score) String() string {
	return fmt.Sprintf("%d/%d (%.1f%%)", s.Hits, s.Total, s.Percent())
}

// Evaluate asks generate for every probe (see Probes) and scores each
// picture with Detect. It stops at generate's first error.
func Evaluate(probes []Probe, generate func(p Probe) (image.Image, error)) (Score, error) {
	var s Score
	for _, p := range probes {
		img, err := generate(p)
		if err != nil {
			return s, err
		}
		o := Outcome{Probe: p}
		o.Colour, o.Background = Detect(img)
		s.Total++
		if o.Hit() {
			s.Hits++
		} else {
			s.Misses = append(s.Misses, o)
		}
	}
	return s, nil
}
