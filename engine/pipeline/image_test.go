package pipeline

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestToImage converts a 3x203x181 image (two or more bands of rows,
// split unevenly, on a machine of two or more cores) whose values cover
// every 8-bit level's rounding boundary, ±4 float32 ulps around it, and
// the edge cases, and checks every pixel against diffusers' rule in
// float64: clamp(v/2 + 1/2) times 255 in float32, rounded half to even
// (numpy), NaN as 0, alpha 255.
func TestToImage(t *testing.T) {
	const w, h = 181, 203
	plane := w * h
	r := rand.New(rand.NewPCG(1, 2))
	chw := make([]float32, 3*plane)
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 2, -2, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-45, -1e-45}
	n := 0
	for i := range chw {
		switch {
		case i < len(special):
			chw[i] = special[i]
		case i%2 == 0: // near the boundary between levels k and k+1 (ties included)
			k := n % 255
			n++
			y := float32((float64(k) + 0.5) / 255) // v/2 + 1/2 at the boundary
			bits := int32(math.Float32bits(y)) + int32(r.IntN(9)) - 4
			chw[i] = (math.Float32frombits(uint32(bits)) - 0.5) * 2
		default:
			chw[i] = float32(r.Float64()*3 - 1.5)
		}
	}
	chw[12] = (float32(200.5/255) - 0.5) * 2 // 255·(v/2 + 1/2) is exactly 200.5
	img := ToImage(chw, w, h)
	if got := img.Pix[4*12]; got != 200 {
		t.Fatalf("a tie at 200.5 became %d, want 200 (half to even)", got)
	}
	for y := range h {
		for x := range w {
			for c := range 4 {
				want := uint8(255)
				if c < 3 {
					v := chw[c*plane+y*w+x]
					if !math.IsNaN(float64(v)) {
						u := math.Min(1, math.Max(0, float64(v*0.5+0.5)))
						want = uint8(math.RoundToEven(float64(float32(u) * 255)))
					} else {
						want = 0
					}
				}
				if got := img.Pix[y*img.Stride+4*x+c]; got != want {
					t.Fatalf("pixel (%d, %d) channel %d from %g: %d, want %d", x, y, c, chw[c*plane+y*w+x], got, want)
				}
			}
		}
	}
}
