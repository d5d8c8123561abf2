package dataset

import (
	"errors"
	"image"
	"testing"

	"glimmer/engine/internal/splitmix"
)

// render draws a probe as the dataset would (a box laid out from its seed).
func render(p Probe) image.Image {
	s := p.Spec
	r := rng{splitmix.Source{State: p.Seed}}
	s.Boxes = layout(&r, s.Count, s.Position, 64)
	return Render(s, 64)
}

func TestProbes(t *testing.T) {
	for _, tc := range []struct {
		split Split
		pairs int
	}{{Train, 48}, {HeldOutSplit, 8}, {All, 56}} {
		ps := Probes(tc.split, 3)
		if len(ps) != 3*tc.pairs {
			t.Fatalf("%v: %d probes, want %d", tc.split, len(ps), 3*tc.pairs)
		}
		seeds := map[uint64]bool{}
		shapes := map[Shape]int{}
		for _, p := range ps {
			if held := HeldOut(p.Spec.Colour, p.Spec.Background); tc.split != All && held != (tc.split == HeldOutSplit) {
				t.Errorf("%v: probe %q is in the wrong split", tc.split, p.Prompt)
			}
			if p.Prompt != Caption(p.Spec) || p.Spec.Count != 1 || p.Spec.Position != Centre {
				t.Errorf("probe %+v: want one centred shape with its caption", p)
			}
			if seeds[p.Seed] {
				t.Errorf("seed %d used twice", p.Seed)
			}
			seeds[p.Seed] = true
			shapes[p.Spec.Shape]++
		}
		if len(shapes) != len(Shapes) {
			t.Errorf("%v: shapes %v, want all of %v", tc.split, shapes, Shapes)
		}
	}
	if ps := Probes(Train, 1); ps[0].Prompt != "a red circle on a green background" {
		t.Errorf("first probe %q", ps[0].Prompt)
	}
}

func TestEvaluate(t *testing.T) {
	// Faithful pictures all score; pictures with the colours swapped none.
	s, err := Evaluate(Probes(All, 2), func(p Probe) (image.Image, error) { return render(p), nil })
	if err != nil || s.Hits != 112 || s.Total != 112 || len(s.Misses) != 0 {
		t.Fatalf("faithful pictures: %v, %v", s, err)
	}
	s, err = Evaluate(Probes(Train, 1), func(p Probe) (image.Image, error) {
		p.Spec.Colour, p.Spec.Background = p.Spec.Background, p.Spec.Colour
		return render(p), nil
	})
	if err != nil || s.Hits != 0 || s.Total != 48 || len(s.Misses) != 48 {
		t.Fatalf("swapped colours: %v, %v", s, err)
	}
	if m := s.Misses[0]; m.Colour != m.Spec.Background || m.Background != m.Spec.Colour || m.Hit() {
		t.Errorf("miss %+v: want the swapped colours detected", m)
	}
	if s.String() != "0/48 (0.0%)" {
		t.Errorf("String() = %q", s.String())
	}
	boom := errors.New("boom")
	calls := 0
	if _, err := Evaluate(Probes(Train, 1), func(Probe) (image.Image, error) { calls++; return nil, boom }); !errors.Is(err, boom) || calls != 1 {
		t.Errorf("a failing generator: err %v after %d calls, want boom after 1", err, calls)
	}
}
