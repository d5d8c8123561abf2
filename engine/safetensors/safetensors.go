// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length N, N bytes of JSON describing every tensor
// (dtype, shape, byte range in the data section) plus an optional
// "__metadata__" string map, then the data section.
//
// Open validates the whole header before any tensor data is touched: the
// length against the file size and a 100 MB bound, the JSON, every dtype,
// every shape (no negative extents, no size overflow), every byte range
// (inside the data section, equal to numel × dtype size, no two tensors
// overlapping). The file is then memory-mapped where the platform allows
// (unix), so opening a 4 GB checkpoint costs no 4 GB of memory; elsewhere
// each tensor is read with ReadAt when asked for.
//
// Every error names the file and what is wrong with it.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"glimmer/engine/internal/mmap"
	"glimmer/engine/internal/regular"
)

// MaxHeaderLen bounds the JSON header (the format's own limit, 100 MB).
const MaxHeaderLen = 100 << 20

// maxExtent bounds one extent of a shape. A real extent never comes near
// it; the bound keeps a zero-element tensor from carrying absurd extents
// into callers' arithmetic.
const maxExtent = 1 << 40

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	DType DType
	Shape []int
	// Offsets is the tensor's [begin, end) byte range within the data
	// section (which starts 8+header-length bytes into the file).
	Offsets [2]int64
}

// Numel is the number of elements, the product of the extents.
func (t TensorInfo) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Bytes is the tensor's size in bytes.
func (t TensorInfo) Bytes() int64 { return t.Offsets[1] - t.Offsets[0] }

// File is an open safetensors file. Its methods are safe for concurrent
// use; Close must not race with them.
type File struct {
	path     string
	f        *os.File
	size     int64
	dataOff  int64 // file offset of the data section
	names    []string
	tensors  map[string]TensorInfo
	metadata map[string]string
	mapped   []byte // whole file, or nil when reading with ReadAt
}

// Error is what Open and the readers return: the file's base name, and
// what is wrong. The full path is kept for callers that want it.
type Error struct {
	Path string
	Msg  string
	Err  error // underlying error, if any
}

func (e *Error) Error() string { return filepath.Base(e.Path) + ": " + e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// useMmap lets tests exercise the ReadAt path on unix too.
var useMmap = true

// Open opens and validates a safetensors file. It reads only the header;
// tensor data is read (or paged in from the memory map) when asked for.
func Open(path string) (*File, error) {
	if err := regular.Check(path); err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Msg: describeOpenError(err), Err: err}
	}
	sf, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

func describeOpenError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func open(path string, f *os.File) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	if st.IsDir() {
		return nil, errorf(path, "is a directory, not a safetensors file")
	}
	size := st.Size()
	if size < 8 {
		return nil, errorf(path, "file is %d bytes, too short for a safetensors header", size)
	}
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, &Error{Path: path, Msg: "reading header length: " + err.Error(), Err: err}
	}
	sf, err := parseHeader(path, size, lenBuf[:], func(n int64) ([]byte, error) {
		buf := make([]byte, n)
		_, err := f.ReadAt(buf, 8)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	})
	if err != nil {
		return nil, err
	}
	sf.f = f
	if useMmap {
		if m, err := mmap.Map(f, size); err == nil {
			sf.mapped = m
		}
	}
	return sf, nil
}

// ParseHeader validates a header without a file: b holds the first bytes of
// a file of fileSize bytes (at least 8+header length of them). It is what
// Open runs, exposed for fuzzing and tools that hold the bytes already.
func ParseHeader(name string, b []byte, fileSize int64) (names []string, tensors map[string]TensorInfo, metadata map[string]string, err error) {
	if int64(len(b)) < 8 || fileSize < 8 {
		return nil, nil, nil, errorf(name, "file is %d bytes, too short for a safetensors header", min(int64(len(b)), fileSize))
	}
	sf, err := parseHeader(name, fileSize, b[:8], func(n int64) ([]byte, error) {
		if int64(len(b))-8 < n {
			return nil, io.ErrUnexpectedEOF
		}
		return b[8 : 8+n], nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return sf.names, sf.tensors, sf.metadata, nil
}

func parseHeader(path string, size int64, lenBytes []byte, read func(int64) ([]byte, error)) (*File, error) {
	hlen := binary.LittleEndian.Uint64(lenBytes)
	// A few formats that users rename by mistake are named rather than
	// reported as a nonsense header length; only a header that fails
	// anyway is sniffed, so no valid file is misread.
	if what := sniff(lenBytes); what != "" && (hlen > uint64(size-8) || hlen > MaxHeaderLen) {
		return nil, errorf(path, "not a safetensors file: it is %s", what)
	}
	if hlen > uint64(size-8) {
		return nil, errorf(path, "header length %d exceeds file size %d", hlen, size)
	}
	if hlen > MaxHeaderLen {
		return nil, errorf(path, "header length %d exceeds the %d-byte limit", hlen, MaxHeaderLen)
	}
	if hlen < 2 {
		return nil, errorf(path, "header length %d is too short for a JSON object", hlen)
	}
	hdr, err := read(int64(hlen))
	if err != nil {
		return nil, &Error{Path: path, Msg: "reading header: " + err.Error(), Err: err}
	}
	if hdr[0] != '{' {
		if what := sniff(lenBytes); what != "" {
			return nil, errorf(path, "not a safetensors file: it is %s", what)
		}
		return nil, errorf(path, "not a safetensors file: the header does not start with '{' (first bytes %s)", quoteBytes(lenBytes))
	}
	dataLen := size - 8 - int64(hlen)
	sf := &File{path: path, size: size, dataOff: 8 + int64(hlen), tensors: map[string]TensorInfo{}}

	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{'
		return nil, errorf(path, "header is not valid JSON: %v", err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errorf(path, "header is not valid JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errorf(path, "header is not valid JSON: key %v is not a string", tok)
		}
		if seen[name] {
			return nil, errorf(path, "header names %q twice", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errorf(path, "header is not valid JSON at %q: %v", name, err)
		}
		if name == "__metadata__" {
			md := map[string]string{}
			if err := json.Unmarshal(raw, &md); err != nil {
				return nil, errorf(path, "__metadata__ must map strings to strings: %v", shortJSONError(err))
			}
			sf.metadata = md
			continue
		}
		ti, err := parseEntry(name, raw, dataLen)
		if err != nil {
			return nil, errorf(path, "tensor %q: %v", name, err)
		}
		sf.tensors[name] = ti
		sf.names = append(sf.names, name)
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, errorf(path, "header is not valid JSON: %v", err)
	}
	// Only padding may follow the object.
	rest := hdr[dec.InputOffset():]
	if len(bytes.Trim(rest, " \t\r\n\x00")) != 0 {
		return nil, errorf(path, "header has %d unexpected bytes after its JSON object", len(rest))
	}
	if err := checkOverlaps(sf.tensors); err != nil {
		return nil, errorf(path, "%v", err)
	}
	sort.Strings(sf.names)
	return sf, nil
}

func parseEntry(name string, raw json.RawMessage, dataLen int64) (TensorInfo, error) {
	var e struct {
		DType       *string        `json:"dtype"`
		Shape       *[]json.Number `json:"shape"`
		DataOffsets *[]json.Number `json:"data_offsets"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&e); err != nil {
		return TensorInfo{}, fmt.Errorf("bad entry: %v", shortJSONError(err))
	}
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return TensorInfo{}, fmt.Errorf("entry needs dtype, shape and data_offsets")
	}
	dt := DType(*e.DType)
	if !dt.Known() {
		return TensorInfo{}, fmt.Errorf("unknown dtype %q", *e.DType)
	}
	ti := TensorInfo{DType: dt, Shape: make([]int, len(*e.Shape))}
	// numel × size must fit the data section; checking the running
	// product against it also rules out integer overflow.
	nbytes := uint64(dt.Size())
	for i, n := range *e.Shape {
		v, err := parseNonNeg(n)
		if err != nil {
			return TensorInfo{}, fmt.Errorf("shape %v: extent %d: %v", *e.Shape, i, err)
		}
		if v > maxExtent {
			return TensorInfo{}, fmt.Errorf("shape %v: extent %d is too large", *e.Shape, i)
		}
		ti.Shape[i] = int(v)
		hi, lo := bits.Mul64(nbytes, uint64(v))
		if hi != 0 {
			nbytes = math.MaxUint64
		} else {
			nbytes = lo
		}
	}
	if bits.UintSize == 32 {
		for _, v := range ti.Shape {
			if v < 0 || v > math.MaxInt32 {
				return TensorInfo{}, fmt.Errorf("shape %v is too large for this platform", *e.Shape)
			}
		}
	}
	if len(*e.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets must be [begin, end], got %d numbers", len(*e.DataOffsets))
	}
	b, err := parseNonNeg((*e.DataOffsets)[0])
	if err != nil {
		return TensorInfo{}, fmt.Errorf("data_offsets begin: %v", err)
	}
	end, err := parseNonNeg((*e.DataOffsets)[1])
	if err != nil {
		return TensorInfo{}, fmt.Errorf("data_offsets end: %v", err)
	}
	if end < b {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] end before begin", b, end)
	}
	if end > dataLen {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data section (file truncated?)", b, end, dataLen)
	}
	if uint64(end-b) != nbytes {
		if nbytes > uint64(dataLen) {
			return TensorInfo{}, fmt.Errorf("shape %v of %s needs more bytes than the whole %d-byte data section", ti.Shape, dt, dataLen)
		}
		return TensorInfo{}, fmt.Errorf("shape %v of %s needs %d bytes, data_offsets [%d, %d] hold %d", ti.Shape, dt, nbytes, b, end, end-b)
	}
	ti.Offsets = [2]int64{b, end}
	return ti, nil
}

func parseNonNeg(n json.Number) (int64, error) {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("%s is out of range", n)
		}
		return 0, fmt.Errorf("%s is not an integer", n)
	}
	if v < 0 {
		return 0, fmt.Errorf("%d is negative", v)
	}
	return v, nil
}

func checkOverlaps(ts map[string]TensorInfo) error {
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(ts))
	for n, t := range ts {
		if t.Offsets[1] > t.Offsets[0] { // empty tensors overlap nothing
			spans = append(spans, span{n, t.Offsets[0], t.Offsets[1]})
		}
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].name < spans[j].name
	})
	for i := 1; i < len(spans); i++ {
		p, s := spans[i-1], spans[i]
		if s.begin < p.end {
			return fmt.Errorf("tensors %q [%d, %d] and %q [%d, %d] overlap", p.name, p.begin, p.end, s.name, s.begin, s.end)
		}
	}
	return nil
}

func shortJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s is a JSON %s", te.Field, te.Value)
		}
		return fmt.Sprintf("found a JSON %s", te.Value)
	}
	return err.Error()
}

// sniff names a few formats that users rename by mistake, from the first
// 8 bytes.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "a PNG image"
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "a JPEG image"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "a zip archive (a PyTorch .ckpt/.pt checkpoint?)"
	case bytes.HasPrefix(b, []byte("GGUF")):
		return "a GGUF file"
	case len(b) >= 2 && b[0] == 0x80 && b[1] <= 5:
		return "a Python pickle (a legacy PyTorch checkpoint?)"
	case bytes.HasPrefix(b, []byte("version ")):
		return "a text file (a Git LFS pointer instead of the model data?)"
	}
	return ""
}

func quoteBytes(b []byte) string { return strconv.QuoteToASCII(string(b)) }

// Path is the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Names lists the tensors, sorted, without "__metadata__".
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Len is the number of tensors.
func (f *File) Len() int { return len(f.names) }

// Info describes a tensor; ok is false when the file has no such tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	if ok {
		t.Shape = append([]int(nil), t.Shape...)
	}
	return t, ok
}

// Metadata returns the "__metadata__" map (nil when absent). The map is
// shared: do not modify it.
func (f *File) Metadata() map[string]string { return f.metadata }

// Mapped reports whether tensor data comes from a memory map.
func (f *File) Mapped() bool { return f.mapped != nil }

// Raw returns a tensor's bytes as stored (little-endian). With a memory
// map the slice aliases the file: it is read-only, must not be modified,
// and is valid only until Close. Without one it is a fresh copy.
func (f *File) Raw(name string) ([]byte, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, errorf(f.path, "no tensor %q", name)
	}
	return f.ReadRange(name, 0, t.Bytes())
}

// ReadRange returns bytes [lo, hi) of a tensor's data, with Raw's
// aliasing rules. It lets a caller take one slice of a fused tensor (an
// attention in_proj holding q, k and v) without reading the rest.
func (f *File) ReadRange(name string, lo, hi int64) ([]byte, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, errorf(f.path, "no tensor %q", name)
	}
	if lo < 0 || hi < lo || hi > t.Bytes() {
		return nil, errorf(f.path, "tensor %q: byte range [%d, %d) outside its %d bytes", name, lo, hi, t.Bytes())
	}
	if f.f == nil {
		return nil, errorf(f.path, "file is closed")
	}
	start := f.dataOff + t.Offsets[0] + lo
	n := hi - lo
	if f.mapped != nil {
		return f.mapped[start : start+n : start+n], nil
	}
	buf := make([]byte, n)
	if _, err := f.f.ReadAt(buf, start); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, &Error{Path: f.path, Msg: fmt.Sprintf("reading tensor %q: %v", name, err), Err: err}
	}
	return buf, nil
}

// Float32 returns a float tensor's values as a new []float32 the caller
// owns: F32 copied, F16 and BF16 widened exactly, F64 rounded.
func (f *File) Float32(name string) ([]float32, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, errorf(f.path, "no tensor %q", name)
	}
	if !t.DType.IsFloat() {
		return nil, errorf(f.path, "tensor %q is %s, not a float type", name, t.DType)
	}
	raw, err := f.Raw(name)
	if err != nil {
		return nil, err
	}
	out, err := ToFloat32(t.DType, raw)
	if err != nil {
		return nil, errorf(f.path, "tensor %q: %v", name, err)
	}
	return out, nil
}

// Int64 returns an integer tensor's values (I8 to I64, U8 to U32, BOOL)
// as a new []int64. U64 values above MaxInt64 are an error.
func (f *File) Int64(name string) ([]int64, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, errorf(f.path, "no tensor %q", name)
	}
	raw, err := f.Raw(name)
	if err != nil {
		return nil, err
	}
	n := int(t.Numel())
	out := make([]int64, n)
	le := binary.LittleEndian
	switch t.DType {
	case BOOL, U8:
		for i := range out {
			out[i] = int64(raw[i])
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(raw[i]))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(raw[2*i:])))
		}
	case U16:
		for i := range out {
			out[i] = int64(le.Uint16(raw[2*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(raw[4*i:])))
		}
	case U32:
		for i := range out {
			out[i] = int64(le.Uint32(raw[4*i:]))
		}
	case I64:
		for i := range out {
			out[i] = int64(le.Uint64(raw[8*i:]))
		}
	case U64:
		for i := range out {
			v := le.Uint64(raw[8*i:])
			if v > math.MaxInt64 {
				return nil, errorf(f.path, "tensor %q: element %d (%d) does not fit an int64", name, i, v)
			}
			out[i] = int64(v)
		}
	default:
		return nil, errorf(f.path, "tensor %q is %s, not an integer type", name, t.DType)
	}
	return out, nil
}

// Close unmaps and closes the file. Slices from Raw that alias the map
// must not be used afterwards.
func (f *File) Close() error {
	var err error
	if f.mapped != nil {
		err = mmap.Unmap(f.mapped)
		f.mapped = nil
	}
	if f.f != nil {
		if cerr := f.f.Close(); err == nil {
			err = cerr
		}
		f.f = nil
	}
	return err
}
