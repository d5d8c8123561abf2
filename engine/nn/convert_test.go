package nn

import "testing"

// TestTransposedBytes checks the host transpose against the definition,
// element by element, for F16- and F32-sized elements, at sizes that
// leave partial 32x32 blocks and at one large enough (≥ 2¹⁸ elements) to
// be split over the host's cores.
func TestTransposedBytes(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {3, 70}, {37, 33}, {701, 523}} {
		rows, cols := sz[0], sz[1]
		for _, size := range []int{2, 4} {
			src := make([]byte, rows*cols*size)
			for i := range src {
				src[i] = byte(i*7 + i/251)
			}
			got := transposedBytes(src, rows, cols, size)
			if len(got) != len(src) {
				t.Fatalf("%dx%d, %d-byte elements: %d bytes, want %d", rows, cols, size, len(got), len(src))
			}
			for r := range rows {
				for c := range cols {
					for b := range size {
						if w, g := src[(r*cols+c)*size+b], got[(c*rows+r)*size+b]; w != g {
							t.Fatalf("%dx%d, %d-byte elements: byte %d of [%d, %d] is %d in the transpose, %d at [%d, %d]", rows, cols, size, b, c, r, g, w, r, c)
						}
					}
				}
			}
		}
	}
}
