package ckpt

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/safetensors"
)

func withReadAt(t *testing.T, f func(t *testing.T)) {
	t.Run("mmap", f)
	t.Run("readat", func(t *testing.T) {
		useMmap = false
		defer func() { useMmap = true }()
		f(t)
	})
}

// TestRealCheckpoint reads published TAESD weights saved by torch.save
// (fp16, protocol 2 pickle). Every tensor's bytes are compared with the
// archive entry read independently through archive/zip.
func TestRealCheckpoint(t *testing.T) {
	path := fixtures.Path(t, "refdata", "taesd", "taef2_decoder.pth")
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	entry := map[string][]byte{}
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		entry[strings.TrimPrefix(zf.Name, "taef2_decoder/")] = b
	}
	withReadAt(t, func(t *testing.T) {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Len() != 79 {
			t.Errorf("%d tensors, want 79", f.Len())
		}
		for _, c := range []struct {
			name, entry string
			shape       []int
		}{
			{"1.weight", "data/0", []int{64, 32, 3, 3}},
			{"1.bias", "data/1", []int{64}},
			{"3.conv.0.weight", "data/2", []int{64, 64, 3, 3}},
			{"19.weight", "data/77", []int{3, 64, 3, 3}},
			{"19.bias", "data/78", []int{3}},
		} {
			info, ok := f.Info(c.name)
			if !ok || info.DType != safetensors.F16 || info.Entry != c.entry || !equalInts(info.Shape, c.shape) {
				t.Errorf("%s: %+v, want F16 %v in %s", c.name, info, c.shape, c.entry)
			}
		}
		for _, name := range f.Names() {
			info, _ := f.Info(name)
			raw, err := f.Raw(name)
			if err != nil {
				t.Fatal(err)
			}
			want := entry[info.Entry][info.Offset : info.Offset+info.Bytes]
			if !bytes.Equal(raw, want) {
				t.Fatalf("%s: bytes differ from %s", name, info.Entry)
			}
			v, err := f.Float32(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("%s holds %v", name, x)
				}
			}
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWriteRoundTrip(t *testing.T) {
	tensors := []safetensors.NamedTensor{
		safetensors.F16Tensor("model.w", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		safetensors.F32Tensor("model.b", []int{3}, []float32{-1, 0.5, 1e30}),
		safetensors.I32Tensor("ids", []int{2}, []int32{49406, 7}),
		{Name: "bf", DType: safetensors.BF16, Shape: []int{1}, Data: []byte{0xc0, 0x3f}},
		safetensors.F32Tensor("scalar", []int{}, []float32{3}),
		safetensors.F32Tensor("big", []int{300, 70000 / 300}, make([]float32, 300*(70000/300))),
	}
	for _, opts := range []WriteOptions{{}, {StateDict: true}, {Deflate: true}} {
		path := filepath.Join(t.TempDir(), "m.ckpt")
		if err := Write(path, tensors, opts); err != nil {
			t.Fatal(err)
		}
		withReadAt(t, func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Len() != len(tensors) {
				t.Fatalf("%+v: names %v", opts, f.Names())
			}
			for _, want := range tensors {
				info, ok := f.Info(want.Name)
				if !ok || info.DType != want.DType || !equalInts(info.Shape, want.Shape) {
					t.Fatalf("%+v: %s: %+v", opts, want.Name, info)
				}
				raw, err := f.Raw(want.Name)
				if err != nil || !bytes.Equal(raw, want.Data) {
					t.Fatalf("%+v: %s: bytes differ (%v)", opts, want.Name, err)
				}
			}
			v, _ := f.Float32("bf")
			if v[0] != 1.5 {
				t.Errorf("bf = %v", v)
			}
			part, err := f.ReadRange("model.b", 4, 8)
			if err != nil || math.Float32frombits(binary.LittleEndian.Uint32(part)) != 0.5 {
				t.Errorf("ReadRange: %x %v", part, err)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "x.ckpt")
	os.WriteFile(path, nil, 0o644)
	if err := Write(path, tensors, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("overwrite: %v", err)
	}
}

// p assembles a pickle from opcodes and operands.
type p []byte

func (b p) op(ops ...byte) p { return append(b, ops...) }
func (b p) str(s string) p {
	b = append(b, 'X', byte(len(s)), byte(len(s)>>8), 0, 0)
	return append(b, s...)
}
func (b p) short(s string) p { return append(append(b, 0x8c, byte(len(s))), s...) }
func (b p) global(mod, name string) p {
	return append(b, "c"+mod+"\n"+name+"\n"...)
}
func (b p) k(v byte) p { return append(b, 'K', v) }

// tensorPickle is {"w": _rebuild_tensor_v2(storage(key "0", numel), offset,
// size, stride, False, OrderedDict())} with the given geometry.
func tensorPickle(storageType string, numel byte, offset byte, size, stride []byte) []byte {
	b := p{0x80, 2}.op('}').str("w").global("torch._utils", "_rebuild_tensor_v2").op('(', '(').
		str("storage").global("torch", storageType).str("0").str("cpu").k(numel).op('t', 'Q').k(offset).op('(')
	for _, s := range size {
		b = b.k(s)
	}
	b = b.op('t', '(')
	for _, s := range stride {
		b = b.k(s)
	}
	b = b.op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R', 's', '.')
	return b
}

// archive writes a torch-style zip with the given entries.
func archive(t *testing.T, name string, entries map[string][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range []string{"archive/data.pkl", "archive/byteorder", "archive/data/0", "other"} {
		if b, ok := entries[n]; ok {
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
			w.Write(b)
		}
	}
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMaliciousAndBroken(t *testing.T) {
	ok16 := make([]byte, 12) // 6 halves
	cases := []struct {
		name    string
		pkl     []byte
		entries map[string][]byte // extra entries; data/0 defaults to ok16
		want    string
		refused bool
	}{
		{"os.system", p{0x80, 2}.global("os", "system").str("echo pwned").op(0x85, 'R', '.'),
			nil, "model.ckpt: pickle asks for os.system, which a checkpoint never needs; refusing to load", true},
		{"posix.system", p{0x80, 2}.global("posix", "system").str("id").op(0x85, 'R', '.'),
			nil, "model.ckpt: pickle asks for posix.system, which a checkpoint never needs; refusing to load", true},
		{"builtins.eval via STACK_GLOBAL", p{0x80, 4}.short("builtins").short("eval").op(0x93).short("1+1").op(0x85, 'R', '.'),
			nil, "model.ckpt: pickle asks for builtins.eval, which a checkpoint never needs; refusing to load", true},
		{"subprocess", p{0x80, 2}.global("subprocess", "Popen").op(']').str("sh").op('a', 0x85, 'R', '.'),
			nil, "pickle asks for subprocess.Popen", true},
		{"inside a state dict", p{0x80, 2}.op('}').str("w").global("os", "system").str("x").op(0x85, 'R', 's', '.'),
			nil, "pickle asks for os.system", true},
		{"getattr", p{0x80, 2}.global("builtins", "getattr").op('.'),
			nil, "pickle asks for builtins.getattr", true},
		{"odd name", p{0x80, 2}.global("os\x1b[31m", "system").op('.'),
			nil, `pickle asks for "os\x1b[31m.system"`, true},
		{"INST", p{0x80, 2}.op('(').op([]byte("ios\nsystem\n")...).op('.'),
			nil, "pickle opcode INST at byte 3 is not supported", false},
		{"REDUCE on a string", p{0x80, 2}.str("os.system").op(')', 'R', '.'),
			nil, "pickle calls a string, which is not a function", false},
		{"NEWOBJ storage", p{0x80, 2}.global("torch", "FloatStorage").op(')', 0x81, '.'),
			nil, "creates an object of torch.FloatStorage", false},
		{"call storage type", p{0x80, 2}.global("torch", "FloatStorage").op(')', 'R', '.'),
			nil, "pickle calls torch.FloatStorage, which is not callable here", false},
		{"truncated", tensorPickle("HalfStorage", 6, 0, []byte{2, 3}, []byte{3, 1})[:60],
			nil, "pickle truncated at byte", false},
		{"no STOP", p{0x80, 2}.op('}'), nil, "without STOP", false},
		{"underflow", p{0x80, 2}.op('s', '.'), nil, "stack underflow", false},
		{"bad memo", p{0x80, 2}.op('h', 9, '.'), nil, "reads memo 9, which was never stored", false},
		{"huge string", p{0x80, 2}.op('X', 0xff, 0xff, 0xff, 0x7f, '.'), nil, "pickle truncated", false},
		{"not a dict", p{0x80, 2}.k(1).op('.'), nil, "pickle holds an int, not a state dict", false},
		{"non-contiguous", tensorPickle("HalfStorage", 6, 0, []byte{2, 3}, []byte{1, 2}),
			nil, "model.ckpt: tensor w: size [2 3] with stride [1 2] is not contiguous", false},
		{"past storage", tensorPickle("HalfStorage", 6, 2, []byte{2, 3}, []byte{3, 1}),
			nil, "tensor w: size [2 3] at offset 2 does not fit its storage of 6 elements", false},
		{"storage bigger than entry", tensorPickle("FloatStorage", 6, 0, []byte{2, 3}, []byte{3, 1}),
			nil, "storage 0 claims 6 elements of F32, but data/0 holds 12 bytes", false},
		{"missing entry", tensorPickle("HalfStorage", 6, 0, []byte{2, 3}, []byte{3, 1}),
			map[string][]byte{"archive/data/0": nil}, "storage 0 has no entry data/0 in the archive", false},
		{"big-endian", tensorPickle("HalfStorage", 6, 0, []byte{2, 3}, []byte{3, 1}),
			map[string][]byte{"archive/byteorder": []byte("big")}, `stored "big"-endian`, false},
		{"no pickle", nil, map[string][]byte{"archive/data.pkl": nil, "other": []byte("x")}, "zip archive without data.pkl", false},
		// Values nested 200,000 deep where a count belongs: the message
		// says what they are without formatting them (which overflowed
		// the stack).
		{"nested element count", p{0x80, 2}.op('}').str("w").op('(').str("storage").global("torch", "HalfStorage").
			str("0").str("cpu").k(6).op(bytes.Repeat([]byte{0x85}, 200000)...).op('t', 'Q', 's', '.'),
			nil, "storage 0 has a bad element count (a tuple)", false},
		{"nested size", p{0x80, 2}.op('}').str("w").global("torch._utils", "_rebuild_tensor_v2").op('(', '(').
			str("storage").global("torch", "HalfStorage").str("0").str("cpu").k(6).op('t', 'Q').k(0).
			k(2).op(bytes.Repeat([]byte{0x85}, 200000)...).op(0x85).op('(').k(1).op('t', 0x89).
			global("collections", "OrderedDict").op(')', 'R', 't', 'R', 's', '.'),
			nil, "pickle gives a tensor size holding a tuple, not a count", false},
		// DUP by the million: a few MB of pickle would make gigabytes of
		// stack.
		{"values by the million", append(p{0x80, 2, 'N'}, append(bytes.Repeat([]byte{'2'}, maxPushes+1), '.')...),
			nil, "pickle makes or keeps more than 1048576 values", false},
		{"memo by the million", append(p{0x80, 2, 'N'}, append(memoFlood(maxPushes+1), '.')...),
			nil, "pickle makes or keeps more than 1048576 values", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ents := map[string][]byte{"archive/data.pkl": c.pkl, "archive/data/0": ok16}
			for k, v := range c.entries {
				if v == nil {
					delete(ents, k)
				} else {
					ents[k] = v
				}
			}
			path := archive(t, "model.ckpt", ents)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), "model.ckpt: ") || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") || len(err.Error()) > 300 {
				t.Errorf("error %.400q, want one short line naming model.ckpt with %q", err, c.want)
			}
			if Refused(err) != c.refused {
				t.Errorf("Refused = %v, want %v", Refused(err), c.refused)
			}
		})
	}
	// The well-formed version of the pickle above loads.
	path := archive(t, "good.ckpt", map[string][]byte{"archive/data.pkl": tensorPickle("HalfStorage", 6, 0, []byte{2, 3}, []byte{3, 1}), "archive/data/0": ok16})
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestNotACheckpoint(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"legacy.ckpt", []byte{0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9}, "legacy PyTorch format (saved before PyTorch 1.6)"},
		{"image.ckpt", []byte("\x89PNG\r\n\x1a\n...."), "not a PyTorch checkpoint: it is a PNG image"},
		{"st.ckpt", append([]byte{2, 0, 0, 0, 0, 0, 0, 0}, "{}"...), "looks like a safetensors file"},
		{"text.ckpt", []byte("hello world"), "not a PyTorch checkpoint (no zip archive inside)"},
		{"empty.ckpt", nil, "not a PyTorch checkpoint"},
		{"cut.ckpt", []byte("PK\x03\x04\x14\x00\x00\x00"), "not a readable zip archive"},
	} {
		path := filepath.Join(dir, c.name)
		os.WriteFile(path, c.data, 0o644)
		_, err := Open(path)
		if err == nil || !strings.HasPrefix(err.Error(), c.name+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "nope.ckpt")); err == nil || err.Error() != "nope.ckpt: no such file" {
		t.Errorf("missing: %v", err)
	}
}

// A truncated archive (the download stopped) fails at Open, or at the
// latest when the cut-off tensor is read; never with a panic.
func TestTruncatedArchive(t *testing.T) {
	tensors := []safetensors.NamedTensor{safetensors.F32Tensor("a", []int{1000}, make([]float32, 1000))}
	path := filepath.Join(t.TempDir(), "t.ckpt")
	if err := Write(path, tensors, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(path)
	for _, n := range []int{len(full) - 1, len(full) - 200, len(full) / 2, 100} {
		cut := filepath.Join(t.TempDir(), "cut.ckpt")
		os.WriteFile(cut, full[:n], 0o644)
		f, err := Open(cut)
		if err == nil {
			_, err = f.Raw("a")
			f.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), "cut.ckpt: ") {
			t.Errorf("cut at %d of %d: %v", n, len(full), err)
		}
	}
}

// memoFlood is n LONG_BINPUTs of the stack's top, each to a new index.
func memoFlood(n int) []byte {
	b := make([]byte, 0, 5*n)
	for i := range n {
		b = append(b, 'r', byte(i), byte(i>>8), byte(i>>16), byte(i>>24))
	}
	return b
}

// sharedPickle is {"a": storage[pad], "b": storage[pad+1]}: two one-element
// F16 tensors of one storage of pad+2 elements (pad < 2^31), behind pad
// elements of padding.
func sharedPickle(pad int) []byte {
	n := make([]byte, 4)
	binary.LittleEndian.PutUint32(n, uint32(pad+2))
	b := p{0x80, 2}.op('}')
	for i, name := range []string{"a", "b"} {
		at := make([]byte, 4)
		binary.LittleEndian.PutUint32(at, uint32(pad+i))
		b = b.str(name).global("torch._utils", "_rebuild_tensor_v2").op('(', '(').
			str("storage").global("torch", "HalfStorage").str("0").str("cpu").op('J').op(n...).op('t', 'Q').
			op('J').op(at...).op('(').k(1).op('t', '(').k(1).op('t', 0x89).
			global("collections", "OrderedDict").op(')', 'R', 't', 'R', 's')
	}
	return b.op('.')
}

// deflated writes a checkpoint whose data/0 is compressed, with the sizes
// its zip directory gives for it: the true ones where claim is 0.
func deflated(t *testing.T, pkl, data []byte, claim uint64) string {
	t.Helper()
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(data)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	w.Write(pkl)
	size := uint64(len(data))
	if claim != 0 {
		size = claim
	}
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "archive/data/0", Method: zip.Deflate,
		CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(z.Len()), UncompressedSize64: size})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(z.Bytes())
	zw.Close()
	path := filepath.Join(t.TempDir(), "model.ckpt")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCompressedEntries: a compressed storage is read right in any order,
// in one pass when read in the order its tensors lie; a directory that
// claims more than deflate can make of the bytes is refused at Open
// (before any read trusts it: a 10 MB file claiming a 1 TB tensor made
// the reader ask for 1 TB); and tensors read out of order behind long
// padding, which re-inflate it every time, stop with a message once it
// has been inflated maxInflate times over (a hostile file hung loading).
func TestCompressedEntries(t *testing.T) {
	const pad = 1 << 20 // halves: 2 MiB of zeros before a and b
	data := make([]byte, 2*pad+4)
	binary.LittleEndian.PutUint16(data[2*pad:], 0x3c00)   // a = 1
	binary.LittleEndian.PutUint16(data[2*pad+2:], 0xc000) // b = -2
	pkl := sharedPickle(pad)
	want := map[string]float32{"a": 1, "b": -2}
	read := func(f *File, name string) error {
		v, err := f.Float32(name)
		if err == nil && (len(v) != 1 || v[0] != want[name]) {
			t.Fatalf("%s = %v, want [%v]", name, v, want[name])
		}
		return err
	}

	path := deflated(t, pkl, data, 0)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if err := read(f, name); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.entries["data/0"].inflated; got != int64(len(data)) {
		t.Errorf("a then b inflated %d bytes, want one pass (%d)", got, len(data))
	}
	// b then a: a lies behind the reader, which starts again.
	for _, name := range []string{"b", "a", "a"} {
		if err := read(f, name); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	// The bound: with no slack, a 2 MiB entry may be inflated 8 MiB in
	// all; a after b inflates it whole each time.
	defer func(s int64) { inflateSlack = s }(inflateSlack)
	inflateSlack = 0
	if f, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reads := 0
	for ; reads < 20 && err == nil; reads++ {
		err = read(f, []string{"b", "a"}[reads%2])
	}
	if err == nil || !strings.Contains(err.Error(), "model.ckpt: tensor") || !strings.Contains(err.Error(), "read out of order so often") {
		t.Fatalf("after %d reads: %v; want the out-of-order bound's message", reads, err)
	}
	// Reads 1 (b), 2, 4, 6 and 8 (a) inflate it whole, the odd ones after
	// the first only move on to b: the fifth whole inflation is refused.
	if reads != 2*maxInflate {
		t.Errorf("refused at read %d, want %d (the %d-th whole inflation)", reads, 2*maxInflate, maxInflate+1)
	}

	// 4 MB of deflated zeros claimed as 1 TiB.
	lie := deflated(t, pkl, data, 1<<40)
	if _, err := Open(lie); err == nil || !strings.Contains(err.Error(), "claims 1099511627776 bytes from") {
		t.Errorf("an entry claiming 1 TiB: %v, want it refused at Open", err)
	}
}
