package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func encode(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	for _, size := range []int{64, 96, 128} {
		for seed := uint64(0); seed < 20; seed++ {
			a, ca, _ := SampleSplit(seed, size, All)
			b, cb, _ := SampleSplit(seed, size, All)
			if ca != cb || !bytes.Equal(encode(t, a), encode(t, b)) {
				t.Fatalf("seed %d size %d: two renders differ", seed, size)
			}
		}
	}
	// Different seeds give different samples (not all the same picture).
	_, c0, _ := Sample(1, 64)
	same := 0
	for seed := uint64(2); seed < 12; seed++ {
		if _, c, _ := Sample(seed, 64); c == c0 {
			same++
		}
	}
	if same > 2 {
		t.Errorf("%d of 10 seeds repeat seed 1's caption %q", same, c0)
	}
}

func TestCoverage(t *testing.T) {
	for _, split := range []Split{Train, HeldOutSplit, All} {
		shapes, colours, bgs := map[Shape]int{}, map[string]int{}, map[string]int{}
		counts, positions := map[int]int{}, map[Position]int{}
		for seed := uint64(0); seed < 3000; seed++ {
			s := NewSpec(seed, 64, split)
			shapes[s.Shape]++
			colours[s.Colour]++
			bgs[s.Background]++
			counts[s.Count]++
			positions[s.Position]++
			if s.Colour == s.Background {
				t.Fatalf("seed %d: shape and background both %s", seed, s.Colour)
			}
			if h := HeldOut(s.Colour, s.Background); (split == Train && h) || (split == HeldOutSplit && !h) {
				t.Fatalf("%v seed %d: pair %s/%s held out = %v", split, seed, s.Colour, s.Background, h)
			}
		}
		// Every value is drawn at least a third as often as uniform would.
		check := func(what string, got, kinds int) {
			if got < 3000/kinds/3 {
				t.Errorf("%v: %s drawn %d times of 3000", split, what, got)
			}
		}
		for _, v := range Shapes {
			check(string(v), shapes[v], len(Shapes))
		}
		for _, c := range Colours {
			check("colour "+c, colours[c], len(Colours))
			check("background "+c, bgs[c], len(Colours))
		}
		for c := 1; c <= 3; c++ {
			check(fmt.Sprint("count ", c), counts[c], 3)
		}
		for _, p := range Positions {
			check("position "+string(p), positions[p], len(Positions))
		}
	}
}

// expectedArea is a shape's area in a box of side s, and its perimeter.
func expectedArea(shape Shape, s float64) (area, perimeter float64) {
	switch shape {
	case Circle:
		return math.Pi * s * s / 4, math.Pi * s
	case Triangle:
		return s * s / 2, s + 2*math.Hypot(s/2, s)
	}
	return s * s, 4 * s
}

// TestPixels checks every pixel of many renders: the shape colour inside the
// boxes with a pixel count near the shape's area, the background everywhere
// else (the border ring included), boxes disjoint and off the border.
//
// Tolerance: |pixels − area| ≤ perimeter/4 + 1 (hard edges gain or lose at
// most a fraction of a pixel along the outline), and within 5% of the area
// for sides of 24 pixels or more.
func TestPixels(t *testing.T) {
	worst := map[Shape]float64{}
	minSide := 1 << 30
	for _, size := range []int{64, 128} {
		for seed := uint64(0); seed < 600; seed++ {
			img, _, s := SampleSplit(seed, size, All)
			if len(s.Boxes) != s.Count {
				t.Fatalf("seed %d: %d boxes for count %d", seed, len(s.Boxes), s.Count)
			}
			inner := image.Rect(2, 2, size-2, size-2)
			for i, b := range s.Boxes {
				if b.Dx() != b.Dy() || b.Dx() < 5 || !b.In(inner) {
					t.Fatalf("seed %d: box %v (size %d)", seed, b, size)
				}
				for _, o := range s.Boxes[:i] {
					if b.Inset(-1).Overlaps(o) {
						t.Fatalf("seed %d: boxes %v and %v touch", seed, b, o)
					}
				}
			}
			// The group's centre lies where the caption says.
			var g image.Rectangle
			for _, b := range s.Boxes {
				g = g.Union(b)
			}
			cx, cy := float64(g.Min.X+g.Max.X)/2/float64(size), float64(g.Min.Y+g.Max.Y)/2/float64(size)
			h := map[byte]bool{'l': cx < 0.4, 'c': cx > 0.35 && cx < 0.65, 'r': cx > 0.6}
			v := map[byte]bool{'t': cy < 0.4, 'c': cy > 0.35 && cy < 0.65, 'b': cy > 0.6}
			want := map[Position]string{Centre: "cc", Top: "ct", Bottom: "cb", Left: "lc", Right: "rc",
				TopLeft: "lt", TopRight: "rt", BottomLeft: "lb", BottomRight: "rb"}[s.Position]
			if !h[want[0]] || !v[want[1]] {
				t.Errorf("seed %d size %d: %s group centred at (%.2f, %.2f)", seed, size, s.Position, cx, cy)
			}
			fg, bg := Palette[s.Colour], Palette[s.Background]
			counts := make([]int, len(s.Boxes))
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					c := img.NRGBAAt(x, y)
					box := -1
					for i, b := range s.Boxes {
						if image.Pt(x, y).In(b) {
							box = i
						}
					}
					switch {
					case c == fg && box >= 0:
						counts[box]++
					case c == fg:
						t.Fatalf("seed %d: shape colour at (%d,%d) outside every box", seed, x, y)
					case c != bg:
						t.Fatalf("seed %d: pixel (%d,%d) = %v is neither %s nor %s", seed, x, y, c, s.Colour, s.Background)
					}
				}
			}
			for i, b := range s.Boxes {
				side := float64(b.Dx())
				minSide = min(minSide, b.Dx())
				area, per := expectedArea(s.Shape, side)
				d := math.Abs(float64(counts[i]) - area)
				if d > per/4+1 || (side >= 24 && d > 0.05*area) {
					t.Errorf("seed %d size %d: %s side %v has %d pixels, area %.1f", seed, size, s.Shape, side, counts[i], area)
				}
				worst[s.Shape] = max(worst[s.Shape], d/area)
			}
		}
	}
	t.Logf("largest relative area error: %v; smallest side %d", worst, minSide)
}

// parseCaption is the inverse of the caption template, written independently.
func parseCaption(c string) (Spec, error) {
	var s Spec
	w := strings.Fields(c)
	if len(w) < 7 {
		return s, fmt.Errorf("too short")
	}
	switch w[0] {
	case "a", "an":
		s.Count = 1
	case "two":
		s.Count = 2
	case "three":
		s.Count = 3
	default:
		return s, fmt.Errorf("count word %q", w[0])
	}
	s.Colour = w[1]
	if _, ok := Palette[s.Colour]; !ok {
		return s, fmt.Errorf("colour %q", w[1])
	}
	if w[0] == "a" || w[0] == "an" {
		if (w[0] == "an") != strings.ContainsRune("aeiou", rune(s.Colour[0])) {
			return s, fmt.Errorf("article %q before %q", w[0], s.Colour)
		}
	}
	shape := w[2]
	if s.Count > 1 {
		if !strings.HasSuffix(shape, "s") {
			return s, fmt.Errorf("plural %q", shape)
		}
		shape = strings.TrimSuffix(shape, "s")
	}
	s.Shape = Shape(shape)
	if !slices.Contains(Shapes, s.Shape) {
		return s, fmt.Errorf("shape %q", w[2])
	}
	n := len(w)
	if w[n-1] != "background" || w[n-4] != "on" || (w[n-3] != "a" && w[n-3] != "an") {
		return s, fmt.Errorf("background phrase %q", strings.Join(w[n-4:], " "))
	}
	s.Background = w[n-2]
	if _, ok := Palette[s.Background]; !ok {
		return s, fmt.Errorf("background %q", s.Background)
	}
	if (w[n-3] == "an") != strings.ContainsRune("aeiou", rune(s.Background[0])) {
		return s, fmt.Errorf("article %q before %q", w[n-3], s.Background)
	}
	switch pos := strings.Join(w[3:n-4], " "); pos {
	case "":
		s.Position = Centre
	case "at the top", "at the bottom", "on the left", "on the right":
		s.Position = Position(w[5])
	default:
		if len(w[3:n-4]) != 5 || w[3] != "in" || w[4] != "the" || w[7] != "corner" {
			return s, fmt.Errorf("position %q", pos)
		}
		s.Position = Position(w[5] + " " + w[6])
		if !slices.Contains(Positions, s.Position) {
			return s, fmt.Errorf("position %q", pos)
		}
	}
	return s, nil
}

func TestCaptions(t *testing.T) {
	// The examples, in the template.
	if c := Caption(Spec{Shape: Circle, Colour: "red", Background: "blue", Count: 1, Position: Centre}); c != "a red circle on a blue background" {
		t.Errorf("got %q", c)
	}
	if c := Caption(Spec{Shape: Square, Colour: "yellow", Background: "black", Count: 2, Position: Top}); c != "two yellow squares at the top on a black background" {
		t.Errorf("got %q", c)
	}
	if c := Caption(Spec{Shape: Triangle, Colour: "white", Background: "orange", Count: 3, Position: BottomLeft}); c != "three white triangles in the bottom left corner on an orange background" {
		t.Errorf("got %q", c)
	}
	for seed := uint64(0); seed < 2000; seed++ {
		_, c, s := SampleSplit(seed, 64, All)
		p, err := parseCaption(c)
		if err != nil {
			t.Fatalf("seed %d: %q: %v", seed, c, err)
		}
		if p.Shape != s.Shape || p.Colour != s.Colour || p.Background != s.Background || p.Count != s.Count || p.Position != s.Position {
			t.Fatalf("seed %d: %q parses to %+v, spec %+v", seed, c, p, s)
		}
	}
}

func TestHeldOut(t *testing.T) {
	all, held, train := Pairs(All), Pairs(HeldOutSplit), Pairs(Train)
	if len(all) != 56 || len(held)+len(train) != len(all) {
		t.Fatalf("pairs: all %d, held-out %d, train %d", len(all), len(held), len(train))
	}
	if frac := float64(len(held)) / float64(len(all)); frac < 0.10 {
		t.Errorf("held-out fraction %.3f < 10%%", frac)
	}
	want := [][2]string{{"red", "yellow"}, {"green", "orange"}, {"blue", "purple"}, {"yellow", "white"},
		{"orange", "black"}, {"purple", "red"}, {"white", "green"}, {"black", "blue"}}
	for _, p := range want {
		if !HeldOut(p[0], p[1]) || !slices.Contains(held, p) {
			t.Errorf("%v not held out", p)
		}
	}
	// Every colour still trains as a shape colour and as a background.
	for _, c := range Colours {
		var asShape, asBg bool
		for _, p := range train {
			asShape = asShape || p[0] == c
			asBg = asBg || p[1] == c
		}
		if !asShape || !asBg {
			t.Errorf("%s missing from training (shape %v, background %v)", c, asShape, asBg)
		}
	}
	t.Logf("held out %d of %d pairs (%.1f%%): %v", len(held), len(all), 100*float64(len(held))/float64(len(all)), held)
}

func noisy(img *image.NRGBA, sigma float64, r *rand.Rand) *image.NRGBA {
	out := image.NewNRGBA(img.Rect)
	copy(out.Pix, img.Pix)
	for i := range out.Pix {
		if i%4 == 3 {
			continue
		}
		v := float64(out.Pix[i]) + r.NormFloat64()*sigma
		out.Pix[i] = uint8(math.Round(min(255, max(0, v))))
	}
	return out
}

func TestDetect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 1000
	var clean, noise int
	for seed := uint64(0); seed < n; seed++ {
		size := 64
		if seed%4 == 0 {
			size = 128
		}
		img, _, s := SampleSplit(seed, size, All)
		if c, b := Detect(img); c == s.Colour && b == s.Background {
			clean++
		}
		if c, b := Detect(noisy(img, 10, r)); c == s.Colour && b == s.Background {
			noise++
		}
	}
	t.Logf("Detect: clean %d/%d, noisy (sigma 10/255) %d/%d", clean, n, noise, n)
	if clean != n {
		t.Errorf("clean renders: %d of %d detected", clean, n)
	}
	if noise < n*95/100 {
		t.Errorf("noisy renders: %d of %d detected, want >= 95%%", noise, n)
	}
	if c, b := Detect(image.NewNRGBA(image.Rect(0, 0, 8, 8))); c != "" || b != "black" {
		t.Errorf("blank transparent image: %q on %q", c, b)
	}
}

func TestWriteFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := WriteFolder(dir, 12, 64, 7, Train); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 24 {
		t.Fatalf("%d files, want 24", len(ents))
	}
	for i := 0; i < 12; i++ {
		base := filepath.Join(dir, fmt.Sprintf("%05d", i))
		txt, err := os.ReadFile(base + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		img, caption, s := Sample(ItemSeed(7, i), 64)
		if string(txt) != caption {
			t.Errorf("item %d caption %q, want %q", i, txt, caption)
		}
		if HeldOut(s.Colour, s.Background) {
			t.Errorf("item %d: held-out pair in the train split", i)
		}
		data, err := os.ReadFile(base + ".png")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, encode(t, img)) {
			t.Errorf("item %d: PNG differs from Sample", i)
		}
	}
	// A second run never overwrites: it fails on the first existing name
	// and leaves the files (and no temporaries) as they were.
	if err := os.WriteFile(filepath.Join(dir, "00000.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = WriteFolder(dir, 12, 64, 99, All)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second run: err %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "00000.txt")); string(b) != "mine" {
		t.Errorf("00000.txt overwritten: %q", b)
	}
	// Only the .png of an item is taken: its caption is written, the image refused.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "00001.png"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFolder(other, 3, 64, 1, Train); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(filepath.Join(other, "00001.png")); string(b) != "x" {
		t.Errorf("00001.png overwritten")
	}
	for _, d := range []string{dir, other} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	}
	if err := WriteFolder(t.TempDir(), 1, 32, 1, Train); err == nil {
		t.Error("size 32 accepted")
	}
}
