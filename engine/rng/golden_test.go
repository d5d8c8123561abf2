package rng

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"glimmer/engine/safetensors"
)

// goldenFile holds the F32 tensors and metadata of a safetensors file in
// testdata.
type goldenFile struct {
	meta    map[string]string
	tensors map[string][]float32
}

func readGolden(t testing.TB, path string) *goldenFile {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := &goldenFile{meta: f.Metadata(), tensors: map[string][]float32{}}
	for _, k := range f.Names() {
		info, _ := f.Info(k)
		if info.DType != safetensors.F32 {
			continue
		}
		if g.tensors[k], err = f.Float32(k); err != nil {
			t.Fatal(err)
		}
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
