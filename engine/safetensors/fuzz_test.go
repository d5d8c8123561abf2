package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzHeader feeds arbitrary bytes to the header parser. It must never
// panic, and whatever it accepts must be safe to read: every tensor inside
// the data section, sized numel × dtype size, none overlapping. The seed
// corpus (testdata/fuzz/FuzzHeader) holds a valid file and the bad headers
// of TestBadHeaders; it runs as a normal test without -fuzz.
func FuzzHeader(f *testing.F) {
	f.Add(file(`{"__metadata__":{"k":"v"},"a":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		names, tensors, _, err := ParseHeader("fuzz.safetensors", data, int64(len(data)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.safetensors: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		hlen := int64(binary.LittleEndian.Uint64(data))
		dataLen := int64(len(data)) - 8 - hlen
		type span struct{ b, e int64 }
		var spans []span
		for _, n := range names {
			ti := tensors[n]
			if ti.Offsets[0] < 0 || ti.Offsets[1] < ti.Offsets[0] || ti.Offsets[1] > dataLen {
				t.Fatalf("%q: offsets %v outside data of %d bytes", n, ti.Offsets, dataLen)
			}
			if ti.Numel()*int64(ti.DType.Size()) != ti.Bytes() {
				t.Fatalf("%q: %v × %d ≠ %d bytes", n, ti.Shape, ti.DType.Size(), ti.Bytes())
			}
			for _, s := range spans {
				if ti.Offsets[0] < s.e && s.b < ti.Offsets[1] {
					t.Fatalf("%q overlaps another tensor", n)
				}
			}
			if ti.Bytes() > 0 {
				spans = append(spans, span{ti.Offsets[0], ti.Offsets[1]})
			}
		}
		// The same bytes through Open and the readers.
		path := filepath.Join(t.TempDir(), "fuzz.safetensors")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sf, err := Open(path)
		if err != nil {
			t.Fatalf("ParseHeader accepted, Open refused: %v", err)
		}
		defer sf.Close()
		for _, n := range names {
			if _, err := sf.Raw(n); err != nil {
				t.Fatal(err)
			}
			if tensors[n].DType.IsFloat() {
				if _, err := sf.Float32(n); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
