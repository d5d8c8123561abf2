package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
)

// withReadAt runs f with memory maps off, so the ReadAt fallback used on
// Windows is exercised on every platform.
func withReadAt(t *testing.T, f func(t *testing.T)) {
	t.Run("mmap", f)
	t.Run("readat", func(t *testing.T) {
		useMmap = false
		defer func() { useMmap = true }()
		f(t)
	})
}

func le16(v ...uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

func le64(v ...uint64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.safetensors")
	f64 := le64(math.Float64bits(1.5), math.Float64bits(-2.25))
	tensors := []NamedTensor{
		F32Tensor("b.f32", []int{2, 3}, []float32{1, 2, 3, 4, 5, -6.5}),
		F16Tensor("a.f16", []int{3}, []float32{0.5, -1, 65504}),
		{Name: "c.bf16", DType: BF16, Shape: []int{2}, Data: le16(0x3fc0, 0xc000)}, // 1.5, -2
		{Name: "d.f64", DType: F64, Shape: []int{2}, Data: f64},
		I32Tensor("e.i32", []int{2, 2}, []int32{1, -2, 49407, 0}),
		{Name: "f.i64", DType: I64, Shape: []int{1}, Data: le64(uint64(1) << 40)},
		{Name: "g.empty", DType: F32, Shape: []int{0, 768}, Data: nil},
		F32Tensor("h.scalar", []int{}, []float32{7}),
	}
	md := map[string]string{"format": "pt", "note": "ünïcode"}
	if err := Write(path, tensors, md); err != nil {
		t.Fatal(err)
	}
	withReadAt(t, func(t *testing.T) {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Mapped() != useMmap {
			t.Errorf("Mapped() = %v, want %v", f.Mapped(), useMmap)
		}
		want := []string{"a.f16", "b.f32", "c.bf16", "d.f64", "e.i32", "f.i64", "g.empty", "h.scalar"}
		if got := f.Names(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("names %v, want %v", got, want)
		}
		if f.Metadata()["note"] != "ünïcode" || f.Metadata()["format"] != "pt" {
			t.Errorf("metadata %v", f.Metadata())
		}
		// Exact comparisons: every value here is representable in the
		// source and in float32, so conversion must be exact.
		checkF32 := func(name string, want ...float32) {
			t.Helper()
			got, err := f.Float32(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %v, want %v", name, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s: %v, want %v", name, got, want)
				}
			}
		}
		checkF32("a.f16", 0.5, -1, 65504)
		checkF32("b.f32", 1, 2, 3, 4, 5, -6.5)
		checkF32("c.bf16", 1.5, -2)
		checkF32("d.f64", 1.5, -2.25)
		checkF32("g.empty")
		checkF32("h.scalar", 7)
		info, ok := f.Info("b.f32")
		if !ok || info.DType != F32 || len(info.Shape) != 2 || info.Shape[0] != 2 || info.Shape[1] != 3 || info.Bytes() != 24 || info.Numel() != 6 {
			t.Errorf("Info(b.f32) = %+v, %v", info, ok)
		}
		raw, err := f.Raw("a.f16")
		if err != nil || len(raw) != 6 || binary.LittleEndian.Uint16(raw) != 0x3800 {
			t.Errorf("Raw(a.f16) = %x, %v", raw, err)
		}
		part, err := f.ReadRange("b.f32", 4, 8)
		if err != nil || math.Float32frombits(binary.LittleEndian.Uint32(part)) != 2 {
			t.Errorf("ReadRange = %x, %v", part, err)
		}
		if _, err := f.ReadRange("b.f32", 4, 28); err == nil {
			t.Error("ReadRange past the tensor: no error")
		}
		ints, err := f.Int64("e.i32")
		if err != nil || ints[1] != -2 || ints[2] != 49407 {
			t.Errorf("Int64(e.i32) = %v, %v", ints, err)
		}
		if v, err := f.Int64("f.i64"); err != nil || v[0] != 1<<40 {
			t.Errorf("Int64(f.i64) = %v, %v", v, err)
		}
		if _, err := f.Float32("e.i32"); err == nil || !strings.Contains(err.Error(), "not a float type") {
			t.Errorf("Float32 of an I32 tensor: %v", err)
		}
		if _, err := f.Raw("nope"); err == nil || !strings.HasPrefix(err.Error(), "rt.safetensors: no tensor") {
			t.Errorf("Raw(nope): %v", err)
		}
	})
}

func TestWriteRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	one := []NamedTensor{F32Tensor("x", []int{1}, []float32{1})}
	two := []NamedTensor{F32Tensor("x", []int{1}, []float32{2})}
	if err := Write(path, one, nil); err != nil {
		t.Fatal(err)
	}
	err := Write(path, two, nil)
	if err == nil || err.Error() != "x.safetensors: already exists; not overwriting it" {
		t.Fatalf("second Write: %v", err)
	}
	if err := Write(path, two, nil, Overwrite); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Float32("x")
	f.Close()
	if v[0] != 2 {
		t.Errorf("after Overwrite x = %v, want 2", v)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	// Invalid input is refused before anything is written.
	bad := []NamedTensor{{Name: "y", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}
	err = Write(filepath.Join(dir, "y.safetensors"), bad, nil)
	if err == nil || !strings.Contains(err.Error(), "needs 8 bytes, got 4") {
		t.Errorf("short data: %v", err)
	}
	dup := append(one, one...)
	if err := Write(filepath.Join(dir, "z.safetensors"), dup, nil); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate names: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("failed writes left files: %v", ents)
	}
}

// file builds safetensors bytes from a header string and a data section.
func file(header string, data []byte) []byte {
	b := le64(uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestBadHeaders(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00")
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "file is 0 bytes, too short for a safetensors header"},
		{"short", []byte{1, 2, 3}, "file is 3 bytes, too short"},
		{"len2^63", append(le64(1<<63), "{}"...), "header length 9223372036854775808 exceeds file size 10"},
		{"lenMax", append(le64(math.MaxInt64), "{}"...), "header length 9223372036854775807 exceeds file size 10"},
		{"truncated header", append(le64(100), `{"a":`...), "header length 100 exceeds file size 13"},
		{"png", png, "not a safetensors file: it is a PNG image"},
		{"zip", append([]byte("PK\x03\x04"), make([]byte, 40)...), "it is a zip archive"},
		{"not json", file("{abc}", nil), "header is not valid JSON"},
		{"array", file("[1, 2]  ", nil), "the header does not start with '{'"},
		{"tiny", file("{", nil), "too short for a JSON object"},
		{"unterminated", file(`{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}`, make([]byte, 4)), "not valid JSON"},
		{"trailing", file(`{} xyz`, nil), "unexpected bytes after its JSON object"},
		{"unknown dtype", file(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), `tensor "a": unknown dtype "Q4"`},
		{"missing field", file(`{"a":{"dtype":"F32","shape":[1]}}`, nil), "needs dtype, shape and data_offsets"},
		{"negative extent", file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "extent 0: -1 is negative"},
		{"float extent", file(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, make([]byte, 4)), "1.5 is not an integer"},
		{"huge extent", file(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}`, make([]byte, 4)), "out of range"},
		{"overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)), "needs more bytes than the whole 4-byte data section"},
		{"overflow2", file(`{"a":{"dtype":"F64","shape":[1000000000,1000000000,1000000000],"data_offsets":[0,8]}}`, make([]byte, 8)), "needs more bytes than the whole 8-byte data section"},
		{"zero hides huge", file(`{"a":{"dtype":"F32","shape":[0,1099511627777],"data_offsets":[0,0]}}`, nil), "extent 1 is too large"},
		{"wrong size", file(`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, make([]byte, 24)), "shape [2 3] of F32 needs 24 bytes, data_offsets [0, 20] hold 20"},
		{"past end", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), "run past the 4-byte data section (file truncated?)"},
		{"end<begin", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}`, make([]byte, 8)), "end before begin"},
		{"three offsets", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 8)), "must be [begin, end]"},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), `tensors "a" [0, 8] and "b" [4, 12] overlap`},
		{"duplicate", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), `names "a" twice`},
		{"metadata not strings", file(`{"__metadata__":{"a":1}}`, nil), "__metadata__ must map strings to strings"},
		{"entry not object", file(`{"a":[1,2]}`, nil), `tensor "a": bad entry`},
		{"shape not list", file(`{"a":{"dtype":"F32","shape":"x","data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "a": bad entry`},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "model.safetensors")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("no error, want %q", c.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "model.safetensors: ") || !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want it to name model.safetensors and contain %q", msg, c.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans lines", msg)
			}
			// ParseHeader runs the same checks on bytes.
			if _, _, _, err := ParseHeader("model.safetensors", c.data, int64(len(c.data))); err == nil || err.Error() != msg {
				t.Errorf("ParseHeader: %v, Open: %v", err, msg)
			}
		})
	}
}

func TestHeaderLimit(t *testing.T) {
	// A sparse 200 MB file whose header claims 150 MB: within the file,
	// over the format's limit. Sparse, so it costs no disk.
	path := filepath.Join(t.TempDir(), "big.safetensors")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(le64(150 << 20))
	f.Write([]byte("{"))
	if err := f.Truncate(200 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Open(path)
	if err == nil || err.Error() != "big.safetensors: header length 157286400 exceeds the 104857600-byte limit" {
		t.Errorf("got %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing.safetensors"))
	if err == nil || err.Error() != "missing.safetensors: no such file" || !os.IsNotExist(errorsUnwrap(err)) {
		t.Errorf("missing file: %v", err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
}

func errorsUnwrap(err error) error {
	if e, ok := err.(*Error); ok {
		return e.Err
	}
	return nil
}

func TestHalfConversion(t *testing.T) {
	// Reference: the binary16 definition evaluated in float64.
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := (h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(int(sign))
		case e == 0x1f:
			want = math.NaN()
		case e == 0:
			want = sign * m * math.Pow(2, -24)
		default:
			want = sign * (1 + m/1024) * math.Pow(2, float64(e-15))
		}
		got := HalfToFloat32(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("half %#04x: %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("half %#04x: %v, want %v", h, got, want)
		}
		// Exact values round-trip.
		if back := Float32ToHalf(got); back != uint16(h) {
			t.Fatalf("half %#04x → %v → %#04x", h, got, back)
		}
	}
	// Rounding: ties to even, overflow to Inf, underflow to zero.
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{1 + 1.0/2048, 0x3c00}, // tie between 1 and 1+2^-10: even (1)
		{1 + 3.0/2048, 0x3c02}, // tie: even (1+2^-9)
		{1 + 1.0/2048 + 1e-7, 0x3c01},
		{65520, 0x7c00}, // halfway to the next binade: Inf
		{65519, 0x7bff},
		{float32(math.Pow(2, -25)), 0}, // tie with 0 and 2^-24: even (0)
		{float32(math.Pow(2, -25)) * 1.01, 1},
		{float32(math.Pow(2, -26)), 0},
		{-0.0, 0},
	} {
		if got := Float32ToHalf(c.f); got != c.want {
			t.Errorf("Float32ToHalf(%v) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
}

// TestFixture reads a reference file written by Python's safetensors: the
// I32 token ids must equal the ones in the JSON beside it.
func TestFixture(t *testing.T) {
	path := fixtures.Path(t, "fixtures", "sd1-tiny", "refs", "sd1-components.safetensors")
	tokPath := fixtures.Path(t, "fixtures", "sd1-tiny", "refs", "sd1-tokens.json")
	withReadAt(t, func(t *testing.T) {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Len() != 13 {
			t.Errorf("%d tensors, want 13", f.Len())
		}
		info, _ := f.Info("text.ids")
		if info.DType != I32 || len(info.Shape) != 2 || info.Shape[1] != 77 {
			t.Fatalf("text.ids: %+v", info)
		}
		ids, err := f.Int64("text.ids")
		if err != nil {
			t.Fatal(err)
		}
		var tok struct{ IDs [][]int64 }
		b, _ := os.ReadFile(tokPath)
		if err := json.Unmarshal(b, &tok); err != nil {
			t.Fatal(err)
		}
		if len(tok.IDs) != info.Shape[0] {
			t.Fatalf("%d prompts in JSON, %d in tensor", len(tok.IDs), info.Shape[0])
		}
		for i, row := range tok.IDs {
			for j, id := range row {
				if ids[i*77+j] != id {
					t.Fatalf("ids[%d][%d] = %d, JSON says %d", i, j, ids[i*77+j], id)
				}
			}
		}
		x, err := f.Float32("unet.x")
		if err != nil || len(x) != 4*8*8 {
			t.Fatalf("unet.x: %d values, %v", len(x), err)
		}
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 10 {
				t.Fatalf("unet.x holds %v: not a latent from randn", v)
			}
		}
	})
}
