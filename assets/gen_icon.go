//go:build ignore

// gen_icon draws icon.png: a rounded square with a violet-to-blue
// gradient and a four-pointed sparkle, anti-aliased by 4x4 supersampling.
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

const size = 256

func main() {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 4
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					px := (float64(x) + (float64(sx)+0.5)/ss) / size
					py := (float64(y) + (float64(sy)+0.5)/ss) / size
					cr, cg, cb, ca := shade(px, py)
					r += cr * ca
					g += cg * ca
					b += cb * ca
					a += ca
				}
			}
			n := float64(ss * ss)
			if a > 0 {
				r, g, b = r/a, g/a, b/a
			}
			img.SetNRGBA(x, y, color.NRGBA{to8(r), to8(g), to8(b), to8(a / n)})
		}
	}
	f, err := os.Create("icon.png")
	if err != nil {
		log.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

// shade is the colour at (x, y) in [0,1]², with alpha.
func shade(x, y float64) (r, g, b, a float64) {
	if !inRoundedSquare(x, y, 0.04, 0.2) {
		return 0, 0, 0, 0
	}
	// Background: violet (top left) to deep blue (bottom right), with a
	// soft glow behind the sparkle.
	t := (x + y) / 2
	r = lerp(0.42, 0.08, t)
	g = lerp(0.20, 0.16, t)
	b = lerp(0.78, 0.48, t)
	d := math.Hypot(x-0.5, y-0.5)
	glow := math.Exp(-d * d / 0.03)
	r, g, b = lerp(r, 1, 0.45*glow), lerp(g, 0.85, 0.45*glow), lerp(b, 0.6, 0.45*glow)
	// The sparkles: a big one in the middle, two small ones.
	for _, s := range []struct{ cx, cy, rad float64 }{{0.5, 0.5, 0.36}, {0.76, 0.25, 0.11}, {0.25, 0.74, 0.08}} {
		if inSparkle(x-s.cx, y-s.cy, s.rad) {
			return 1, 0.97, 0.86, 1
		}
	}
	return r, g, b, 1
}

// inSparkle: a four-pointed star, |x|^p + |y|^p <= rad^p with p < 1.
func inSparkle(x, y, rad float64) bool {
	const p = 0.5
	return math.Pow(math.Abs(x)/rad, p)+math.Pow(math.Abs(y)/rad, p) <= 1
}

func inRoundedSquare(x, y, margin, radius float64) bool {
	lo, hi := margin+radius, 1-margin-radius
	dx := math.Max(0, math.Max(lo-x, x-hi))
	dy := math.Max(0, math.Max(lo-y, y-hi))
	return x >= margin && x <= 1-margin && y >= margin && y <= 1-margin && math.Hypot(dx, dy) <= radius
}

func lerp(a, b, t float64) float64 { return a + (b-a)*t }

func to8(v float64) uint8 { return uint8(math.Round(math.Min(1, math.Max(0, v)) * 255)) }
