package rng

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// goldenFile is a minimal reader for the safetensors files in testdata
// (8-byte little-endian header length, JSON header, raw little-endian data).
// Only F32 tensors are read.
type goldenFile struct {
	meta    map[string]string
	tensors map[string][]float32
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
	g := &goldenFile{meta: map[string]string{}, tensors: map[string][]float32{}}
	for k, raw := range hdr {
		if k == "__metadata__" {
			if err := json.Unmarshal(raw, &g.meta); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var e struct {
			DType   string   `json:"dtype"`
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

func seedOf(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRandnMatchesTorch compares with torch.randn output recorded from
// PyTorch 2.11 on an AVX-512 Xeon (testdata/torch_randn.safetensors, written
// by engine/sample/testdata/mkgolden.py). Tolerance: none, every bit must
// match; that is the point of this package.
func TestRandnMatchesTorch(t *testing.T) {
	g := readGolden(t, "testdata/torch_randn.safetensors")
	n := 0
	for key, want := range g.tensors {
		if !strings.HasPrefix(key, "randn.seed") {
			continue
		}
		var seed uint64
		var size int
		f := strings.Split(strings.TrimPrefix(key, "randn.seed"), ".n")
		seed = seedOf(t, f[0])
		size, _ = strconv.Atoi(f[1])
		got := New(seed).Randn(size)
		if i := sameBits(got, want); i >= 0 {
			t.Errorf("%s: first difference at %d: got %v want %v", key, i, got[i], want[i])
		}
		n++
	}
	if n < 80 {
		t.Fatalf("only %d randn tensors checked", n)
	}
}

func TestRandnLargeMatchesTorch(t *testing.T) {
	g := readGolden(t, "testdata/torch_randn.safetensors")
	for _, c := range []struct {
		seed uint64
		n    int
	}{{42, 16384}, {0, 24576}, {5, 32771}} {
		got := New(c.seed).Randn(c.n)
		key := fmt.Sprintf("seed%d.n%d", c.seed, c.n)
		if i := sameBits(got[:64], g.get(t, "head."+key)); i >= 0 {
			t.Errorf("%s head differs at %d", key, i)
		}
		if i := sameBits(got[c.n-64:], g.get(t, "tail."+key)); i >= 0 {
			t.Errorf("%s tail differs at %d", key, c.n-64+i)
		}
		if h, want := sha256F32(got), g.meta["sha256."+key]; h != want {
			t.Errorf("%s: sha256 %s, torch %s", key, h, want)
		}
	}
}

func TestRandnStreamMatchesTorch(t *testing.T) {
	g := readGolden(t, "testdata/torch_randn.safetensors")
	for _, seed := range []uint64{0, 42, 123456789} {
		key := fmt.Sprintf("stream.seed%d", seed)
		var sizes []int
		if err := json.Unmarshal([]byte(g.meta[key+".sizes"]), &sizes); err != nil {
			t.Fatal(err)
		}
		gen := New(seed)
		var got []float32
		for _, n := range sizes {
			got = append(got, gen.Randn(n)...)
		}
		if i := sameBits(got, g.get(t, key)); i >= 0 {
			t.Errorf("%s (sizes %v): first difference at %d", key, sizes, i)
		}
	}
}
