// Package dataset renders Glimmer's procedural captioned dataset: flat
// coloured shapes on plain backgrounds with template captions such as
// "a red circle on a blue background" or
// "two yellow squares at the top on a black background". It is the training
// data of the built-in starter model and the yardstick of its evaluation
// (Detect scores whether a generated image shows the asked-for colours).
//
// # What an image holds
//
//   - one to three shapes of one kind (circle, square, triangle) and one
//     colour, never overlapping (their bounding squares are at least two
//     pixels apart);
//   - a plain background of another palette colour (never the shape's);
//   - a position: the centre, an edge (top, bottom, left, right) or a
//     corner; groups of two or three lie in a row (a column on the left and
//     right edges);
//   - size jitter: each image's shape side is 65-100% of the largest side
//     that fits its position and count (at most 42% of the image), but no
//     less than 12% of the image where that fits.
//
// Every shape lies inside its square box (Spec.Boxes): a circle is the
// inscribed disc (radius side/2), a square fills the box, a triangle is
// isosceles with its apex at the top middle and its base on the bottom edge
// (area side²/2). Boxes keep two pixels from the image edge, so the outermost
// pixel ring is pure background.
//
// Edges are hard, not anti-aliased: a pixel takes the shape colour when its
// centre lies inside the shape, so an image holds exactly two colours, both
// exact palette values. That keeps Detect and the pixel-count tests exact.
//
// # Palette (sRGB, 8 bits per channel)
//
//	red    #DC1E1E (220, 30, 30)
//	green  #1EAA32 ( 30,170, 50)
//	blue   #1E3CDC ( 30, 60,220)
//	yellow #FFE119 (255,225, 25)
//	orange #FF8C00 (255,140,  0)
//	purple #8C28B4 (140, 40,180)
//	white  #FFFFFF (255,255,255)
//	black  #000000 (  0,  0,  0)
//
// The closest pair (yellow, orange) is 88 apart in RGB, so nearest-colour
// classification survives noise of a few tens of levels.
//
// # Captions
//
//	<count> <colour> <shape>[s] [<position phrase>] on a[n] <background> background
//
// count is "a"/"an", "two" or "three"; the position phrase is omitted for the
// centre and otherwise one of "at the top", "at the bottom", "on the left",
// "on the right", "in the top left corner", "in the top right corner",
// "in the bottom left corner", "in the bottom right corner".
//
// # Held-out split
//
// Of the 56 (shape colour, background colour) pairs, 8 (14.3%) are held out
// of training: with the colours in Colours order, colour i on the background
// of colour (i+3) mod 8 — red on yellow, green on orange, blue on purple,
// yellow on white, orange on black, purple on red, white on green, black on
// blue. Every colour is held out exactly once as a shape colour and once as
// a background, so each still appears in training in both roles. The split is
// by colour pair, for every shape, count and position.
//
// # Determinism
//
// A sample is a pure function of (seed, size, split), drawn from a splitmix64
// stream owned by this package, so it does not change with Go releases.
package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"glimmer/engine/internal/splitmix"
	"glimmer/engine/tmpfile"
)

// MinSize is the smallest image side Sample renders.
const MinSize = 64

// Shape is a shape kind.
type Shape string

// The shapes.
const (
	Circle   Shape = "circle"
	Square   Shape = "square"
	Triangle Shape = "triangle"
)

// Shapes lists every shape kind.
var Shapes = []Shape{Circle, Square, Triangle}

// Colours lists the palette names in a fixed order (the held-out rule and the
// sampler index into it).
var Colours = []string{"red", "green", "blue", "yellow", "orange", "purple", "white", "black"}

// Palette maps a colour name to its sRGB value (see the package doc).
var Palette = map[string]color.NRGBA{
	"red":    {220, 30, 30, 255},
	"green":  {30, 170, 50, 255},
	"blue":   {30, 60, 220, 255},
	"yellow": {255, 225, 25, 255},
	"orange": {255, 140, 0, 255},
	"purple": {140, 40, 180, 255},
	"white":  {255, 255, 255, 255},
	"black":  {0, 0, 0, 255},
}

// Position is where the shapes sit in the image.
type Position string

// The positions.
const (
	Centre      Position = "centre"
	Top         Position = "top"
	Bottom      Position = "bottom"
	Left        Position = "left"
	Right       Position = "right"
	TopLeft     Position = "top left"
	TopRight    Position = "top right"
	BottomLeft  Position = "bottom left"
	BottomRight Position = "bottom right"
)

// Positions lists every position.
var Positions = []Position{Centre, Top, Bottom, Left, Right, TopLeft, TopRight, BottomLeft, BottomRight}

// Phrase is the caption phrase of a position ("" for the centre).
func (p Position) Phrase() string {
	switch p {
	case Centre:
		return ""
	case Top, Bottom:
		return "at the " + string(p)
	case Left, Right:
		return "on the " + string(p)
	default:
		return "in the " + string(p) + " corner"
	}
}

// region is the part of the image, as fractions of the side, that a
// position's group of shapes lies in: x0, y0, x1, y1.
func (p Position) region() [4]float64 {
	const m, lo, hi = 0.04, 0.44, 0.56 // edge margin; edge bands end at lo / start at hi
	const c0, c1 = 0.48, 0.52          // corners reach just past the middle
	switch p {
	case Top:
		return [4]float64{m, m, 1 - m, lo}
	case Bottom:
		return [4]float64{m, hi, 1 - m, 1 - m}
	case Left:
		return [4]float64{m, m, lo, 1 - m}
	case Right:
		return [4]float64{hi, m, 1 - m, 1 - m}
	case TopLeft:
		return [4]float64{m, m, c1, c1}
	case TopRight:
		return [4]float64{c0, m, 1 - m, c1}
	case BottomLeft:
		return [4]float64{m, c0, c1, 1 - m}
	case BottomRight:
		return [4]float64{c0, c0, 1 - m, 1 - m}
	default: // Centre
		return [4]float64{0.2, 0.2, 0.8, 0.8}
	}
}

// Spec describes one sample.
type Spec struct {
	Shape      Shape
	Colour     string // shape colour, a Palette name
	Background string // background colour, a Palette name, never Colour
	Count      int    // 1..3
	Position   Position
	// Boxes holds each shape's bounding square in pixels, Count of them,
	// pairwise disjoint; the shape is drawn inside as the package doc says.
	Boxes []image.Rectangle
}

// Split selects which colour pairs a sampler draws from.
type Split int

const (
	// Train draws only pairs that are not held out.
	Train Split = iota
	// HeldOutSplit draws only held-out pairs (for evaluation).
	HeldOutSplit
	// All draws every pair.
	All
)

func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case HeldOutSplit:
		return "held-out"
	case All:
		return "all"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

func colourIndex(name string) int {
	for i, c := range Colours {
		if c == name {
			return i
		}
	}
	return -1
}

// HeldOut reports whether the (shape colour, background colour) pair is held
// out of training: colour i on colour (i+3) mod 8, in Colours order.
func HeldOut(shapeColour, background string) bool {
	i, j := colourIndex(shapeColour), colourIndex(background)
	if i < 0 || j < 0 {
		return false
	}
	return j == (i+3)%len(Colours)
}

// Pairs lists the (shape colour, background) pairs of a split in a fixed
// order; shape colour and background always differ.
func Pairs(split Split) [][2]string {
	var out [][2]string
	for _, c := range Colours {
		for _, b := range Colours {
			if c == b {
				continue
			}
			h := HeldOut(c, b)
			if split == All || (split == HeldOutSplit) == h {
				out = append(out, [2]string{c, b})
			}
		}
	}
	return out
}

// rng is a splitmix64 stream with the draws the sampler needs.
type rng struct{ splitmix.Source }

func (r *rng) next() uint64 { return r.Next() }

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// float returns a uniform value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// ItemSeed is the seed of item i of a dataset with the given seed (what
// WriteFolder passes to SampleSplit for file i).
func ItemSeed(seed uint64, i int) uint64 {
	r := rng{splitmix.Source{State: seed ^ (uint64(i)+1)*0xd1b54a32d192ed03}}
	return r.next()
}

// Sample renders the sample of a seed from the training split (held-out
// colour pairs never appear): Sample(seed, size) == SampleSplit(seed, size, Train).
func Sample(seed uint64, size int) (*image.NRGBA, string, Spec) {
	return SampleSplit(seed, size, Train)
}

// SampleSplit renders a size×size sample of a seed, its colour pair drawn
// from split. It panics if size < MinSize (a programmer error).
func SampleSplit(seed uint64, size int, split Split) (*image.NRGBA, string, Spec) {
	spec := NewSpec(seed, size, split)
	return Render(spec, size), Caption(spec), spec
}

// NewSpec draws a sample's description: everything Sample renders.
func NewSpec(seed uint64, size int, split Split) Spec {
	if size < MinSize {
		panic(fmt.Sprintf("dataset: size %d below the minimum %d", size, MinSize))
	}
	if split < Train || split > All {
		panic(fmt.Sprintf("dataset: unknown split %d", int(split)))
	}
	r := rng{splitmix.Source{State: seed}}
	pairs := Pairs(split)
	pair := pairs[r.intn(len(pairs))]
	s := Spec{
		Shape:      Shapes[r.intn(len(Shapes))],
		Colour:     pair[0],
		Background: pair[1],
		Count:      1 + r.intn(3),
		Position:   Positions[r.intn(len(Positions))],
	}
	s.Boxes = layout(&r, s.Count, s.Position, size)
	return s
}

// layout places count equal squares in a row (a column for Left and Right)
// inside the position's region, two pixels or more apart.
func layout(r *rng, count int, pos Position, size int) []image.Rectangle {
	f := pos.region()
	S := float64(size)
	x0, y0 := int(math.Round(f[0]*S)), int(math.Round(f[1]*S))
	x1, y1 := int(math.Round(f[2]*S)), int(math.Round(f[3]*S))
	vertical := pos == Left || pos == Right
	along, cross := x1-x0, y1-y0
	if vertical {
		along, cross = cross, along
	}
	// Largest side that fits, gaps of a quarter side between shapes.
	fit := math.Min(float64(cross), float64(along)/(float64(count)+0.25*float64(count-1)))
	fit = math.Min(fit, 0.42*S)
	side := int(fit * (0.65 + 0.35*r.float()))
	side = max(side, min(int(fit), int(0.12*S))) // small groups: no smaller than 12% of the image
	gapOf := func(s int) int { return max(2, s/4) }
	for side > 4 && count*side+(count-1)*gapOf(side) > along {
		side--
	}
	gap := gapOf(side)
	length := count*side + (count-1)*gap
	// Centre the group in the region, jittered by at most a tenth of the
	// image (so an edge group does not drift into a corner).
	jitter := func(slack int) int {
		half := float64(slack) / 2
		return int(math.Round(half + (2*r.float()-1)*math.Min(half, 0.1*S)))
	}
	oa, oc := jitter(along-length), jitter(cross-side)
	boxes := make([]image.Rectangle, count)
	for i := range boxes {
		a := oa + i*(side+gap)
		bx, by := x0+a, y0+oc
		if vertical {
			bx, by = x0+oc, y0+a
		}
		boxes[i] = image.Rect(bx, by, bx+side, by+side)
	}
	return boxes
}

// Inside reports whether the point (x, y), in pixel units, lies in a shape
// drawn in box b. Render paints pixel (px, py) when Inside(px+0.5, py+0.5).
func Inside(shape Shape, b image.Rectangle, x, y float64) bool {
	x0, y0 := float64(b.Min.X), float64(b.Min.Y)
	s := float64(b.Dx())
	if x < x0 || y < y0 || x > x0+s || y > y0+s {
		return false
	}
	cx := x0 + s/2
	switch shape {
	case Circle:
		dx, dy := x-cx, y-(y0+s/2)
		return dx*dx+dy*dy <= s*s/4
	case Triangle:
		return math.Abs(x-cx) <= (y-y0)/2
	default: // Square
		return true
	}
}

// Render draws a spec at size×size.
func Render(spec Spec, size int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	bg, fg := Palette[spec.Background], Palette[spec.Colour]
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = bg.R, bg.G, bg.B, bg.A
	}
	for _, b := range spec.Boxes {
		for py := b.Min.Y; py < b.Max.Y; py++ {
			for px := b.Min.X; px < b.Max.X; px++ {
				if Inside(spec.Shape, b, float64(px)+0.5, float64(py)+0.5) {
					img.SetNRGBA(px, py, fg)
				}
			}
		}
	}
	return img
}

var countWords = []string{"", "a", "two", "three"}

// Caption is the template caption of a spec.
func Caption(spec Spec) string {
	var b strings.Builder
	if spec.Count == 1 {
		b.WriteString(article(spec.Colour))
	} else {
		b.WriteString(countWords[spec.Count])
	}
	b.WriteString(" " + spec.Colour + " " + string(spec.Shape))
	if spec.Count > 1 {
		b.WriteString("s")
	}
	if p := spec.Position.Phrase(); p != "" {
		b.WriteString(" " + p)
	}
	b.WriteString(" on " + article(spec.Background) + " " + spec.Background + " background")
	return b.String()
}

// article is "an" before a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// Nearest is the palette colour nearest to c (squared RGB distance, ties to
// the earlier colour in Colours).
func Nearest(c color.Color) string {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return nearestRGB(int(n.R), int(n.G), int(n.B))
}

func nearestRGB(r, g, b int) string {
	best, bestD := "", math.MaxInt
	for _, name := range Colours {
		p := Palette[name]
		dr, dg, db := r-int(p.R), g-int(p.G), b-int(p.B)
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// Detect classifies an image without its spec: background is the palette
// colour most of the outermost pixel ring is nearest to; shapeColour the
// palette colour, other than the background, that most pixels of the whole
// image are nearest to ("" if every pixel is nearest the background). It is
// the scorer of generated images ("does it show the asked-for colours").
func Detect(img image.Image) (shapeColour, background string) {
	b := img.Bounds()
	if b.Empty() {
		return "", ""
	}
	classes := make([]int, b.Dx()*b.Dy()) // palette index per pixel, row-major
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			n := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			classes[(y-b.Min.Y)*b.Dx()+(x-b.Min.X)] = colourIndex(nearestRGB(int(n.R), int(n.G), int(n.B)))
		}
	}
	var border, all [8]int
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			k := classes[y*b.Dx()+x]
			all[k]++
			if x == 0 || y == 0 || x == b.Dx()-1 || y == b.Dy()-1 {
				border[k]++
			}
		}
	}
	bi := argmax(border[:], -1)
	background = Colours[bi]
	if si := argmax(all[:], bi); si >= 0 && all[si] > 0 {
		shapeColour = Colours[si]
	}
	return shapeColour, background
}

// argmax is the index of the largest count other than skip (-1 if none).
func argmax(counts []int, skip int) int {
	best := -1
	for i, c := range counts {
		if i != skip && (best < 0 || c > counts[best]) {
			best = i
		}
	}
	return best
}

// WriteFolder writes n samples of split, size×size, as dir/NNNNN.png with
// its caption in dir/NNNNN.txt (one line, no trailing newline), item i drawn
// from ItemSeed(seed, i). It creates dir if needed. Each file is written to a
// temporary file in dir and then linked into place, so a reader never sees a
// partial file and an existing file is never overwritten: WriteFolder stops
// with an error wrapping fs.ErrExist at the first name already taken. The
// caption is written before its image, so every image a crash leaves has
// its caption.
func WriteFolder(dir string, n int, size int, seed uint64, split Split) error {
	if size < MinSize {
		return fmt.Errorf("dataset: image size %d below the minimum %d", size, MinSize)
	}
	if n < 0 || n > 100000 {
		return fmt.Errorf("dataset: count %d out of range 0..100000", n)
	}
	if split < Train || split > All {
		return fmt.Errorf("dataset: unknown split %d", int(split))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	for i := 0; i < n; i++ {
		img, caption, _ := SampleSplit(ItemSeed(seed, i), size, split)
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return fmt.Errorf("dataset: encoding item %d: %w", i, err)
		}
		base := filepath.Join(dir, fmt.Sprintf("%05d", i))
		if err := writeNew(base+".txt", []byte(caption)); err != nil {
			return err
		}
		if err := writeNew(base+".png", buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// writeNew writes data to path atomically, failing if path exists.
func writeNew(path string, data []byte) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("dataset: %s: %w", path, fs.ErrExist)
	}
	f, err := tmpfile.Create(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful link the name is just dropped
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dataset: writing %s: %w", path, err)
	}
	// A hard link fails if path exists, which rename would overwrite.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("dataset: %s: %w", path, fs.ErrExist)
		}
		// No hard links here (some file systems): check, then rename.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("dataset: %s: %w", path, fs.ErrExist)
		}
		if rerr := os.Rename(tmp, path); rerr != nil {
			return fmt.Errorf("dataset: %w", rerr)
		}
	}
	return nil
}
