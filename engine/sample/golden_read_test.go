package sample

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"testing"
)

// goldenFile is a minimal reader for the safetensors files in testdata
// (8-byte little-endian header length, JSON header, raw little-endian data).
// Only F32 tensors are read.
type goldenFile struct {
	meta    map[string]string
	tensors map[string][]float32
	shapes  map[string][]int
}

func readGolden(t testing.TB, path string) *goldenFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 {
		t.Fatalf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		t.Fatalf("%s: bad header length", path)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data := b[8+n:]
	g := &goldenFile{meta: map[string]string{}, tensors: map[string][]float32{}, shapes: map[string][]int{}}
	for k, raw := range hdr {
		if k == "__metadata__" {
			if err := json.Unmarshal(raw, &g.meta); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var e struct {
			DType   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		if e.DType != "F32" {
			continue
		}
		if e.Offsets[0] < 0 || e.Offsets[0] > e.Offsets[1] || e.Offsets[1] > int64(len(data)) {
			t.Fatalf("%s: %s: bad offsets", path, k)
		}
		g.shapes[k] = e.Shape
		raw := data[e.Offsets[0]:e.Offsets[1]]
		v := make([]float32, len(raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		g.tensors[k] = v
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
