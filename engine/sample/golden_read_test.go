package sample

import (
	"math"
	"testing"

	"glimmer/engine/safetensors"
)

// goldenFile holds the F32 tensors and metadata of a safetensors file in
// testdata.
type goldenFile struct {
	meta    map[string]string
	tensors map[string][]float32
	shapes  map[string][]int
}

func readGolden(t testing.TB, path string) *goldenFile {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := &goldenFile{meta: f.Metadata(), tensors: map[string][]float32{}, shapes: map[string][]int{}}
	for _, k := range f.Names() {
		info, _ := f.Info(k)
		if info.DType != safetensors.F32 {
			continue
		}
		if g.tensors[k], err = f.Float32(k); err != nil {
			t.Fatal(err)
		}
		g.shapes[k] = info.Shape
	}
	return g
}

func (g *goldenFile) get(t testing.TB, key string) []float32 {
	t.Helper()
	v, ok := g.tensors[key]
	if !ok {
		t.Fatalf("golden tensor %q missing", key)
	}
	return v
}

// sameBits reports the first index where a and b differ bitwise, or -1.
func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}
