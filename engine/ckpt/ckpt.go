// Package ckpt reads PyTorch checkpoints (.ckpt, .pt, .pth, .bin) saved by
// torch.save since PyTorch 1.6: a zip archive holding data.pkl (a pickle
// of the state dict) and one entry per tensor storage, data/<key>.
//
// The pickle is read by a small interpreter that imports and calls
// nothing (see pickle.go): it only recognises the names torch.save writes
// for a state dict, and refuses a file that asks for anything else, such
// as os.system, with an error that says what was asked for. Tensor data
// stays in the archive until asked for: stored (uncompressed) entries are
// memory-mapped on unix or read with ReadAt, compressed ones are inflated
// on demand (torch.save never compresses; other tools may). The sizes the
// zip directory claims are checked against what the file's bytes can
// hold, and a pickle may make only so many values, so a small hostile
// file can neither make the reader allocate without bound nor keep it
// inflating for hours.
//
// Only contiguous, little-endian tensors are supported. The pre-1.6
// "legacy" format (a bare pickle followed by raw storages) is refused
// with a message.
package ckpt

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"glimmer/engine/internal/mmap"
	"glimmer/engine/internal/regular"
	"glimmer/engine/safetensors"
)

// maxPickle bounds data.pkl. A state dict's pickle is a few hundred KB;
// the weights live in the other entries.
const maxPickle = 256 << 20

// TensorInfo describes one tensor of a checkpoint.
type TensorInfo struct {
	DType safetensors.DType
	Shape []int
	// Entry is the archive entry holding the tensor's storage, Offset the
	// tensor's first byte in that entry.
	Entry  string
	Offset int64
	Bytes  int64
}

// Numel is the number of elements.
func (t TensorInfo) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

type entry struct {
	zf   *zip.File
	once sync.Once
	off  int64 // file offset of a stored entry's data, -1 if compressed
	err  error

	// A compressed entry is inflated by one reader kept open between
	// reads, so tensors read in the order they lie cost one pass; a read
	// behind it starts again from the entry's start. inflated counts every
	// byte inflated, which maxInflate bounds.
	mu       sync.Mutex
	rc       io.ReadCloser
	pos      int64
	inflated int64
}

// maxDeflateRatio is the most deflate can expand its input (RFC 1951: a
// 258-byte match per 2 bits, about 1032:1). A compressed entry that claims
// more than this times its compressed size, plus a little, lies about its
// size.
const maxDeflateRatio = 1032

// maxInflate bounds what a compressed entry may be inflated in all, over
// every read: this many times its size, plus inflateSlack. Reads in the
// order the tensors lie inflate it once; a hostile archive whose tensors
// all sit behind a long run of padding, read out of order, would inflate
// the padding once per tensor (hours) and is refused instead.
const maxInflate = 4

// inflateSlack is a variable so that tests can reach the bound cheaply.
var inflateSlack int64 = 64 << 20

// File is an open checkpoint. Its methods are safe for concurrent use;
// Close must not race with them.
type File struct {
	path    string
	f       *os.File
	size    int64
	mapped  []byte
	names   []string
	tensors map[string]TensorInfo
	entries map[string]*entry
}

// Error names the file and what is wrong with it.
type Error struct {
	Path string
	Msg  string
	Err  error
}

func (e *Error) Error() string { return filepath.Base(e.Path) + ": " + e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Refused reports whether err is a checkpoint refused because its pickle
// asked for something outside the allow-list (rather than being damaged).
func Refused(err error) bool {
	var pe *pickleError
	return errors.As(err, &pe) && pe.refusal
}

func errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// useMmap lets tests exercise the ReadAt path on unix too.
var useMmap = true

// Open reads a checkpoint's index: the zip directory and the pickle. No
// tensor data is read.
func Open(path string) (*File, error) {
	if err := regular.Check(path); err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		msg := err.Error()
		var pe *os.PathError
		if errors.Is(err, os.ErrNotExist) {
			msg = "no such file"
		} else if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, &Error{Path: path, Msg: msg, Err: err}
	}
	cf, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return cf, nil
}

func open(path string, f *os.File) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	if st.IsDir() {
		return nil, errorf(path, "is a directory, not a checkpoint file")
	}
	size := st.Size()
	var magic [9]byte
	n, _ := f.ReadAt(magic[:], 0)
	if err := checkMagic(magic[:n]); err != nil {
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, errorf(path, "not a readable zip archive: %v", err)
	}
	cf := &File{path: path, f: f, size: size, tensors: map[string]TensorInfo{}, entries: map[string]*entry{}}
	var pkl *zip.File
	for _, zf := range zr.File {
		if zf.Name == "data.pkl" || strings.HasSuffix(zf.Name, "/data.pkl") && strings.Count(zf.Name, "/") == 1 {
			if pkl != nil {
				return nil, errorf(path, "archive holds two pickles, %s and %s", pkl.Name, zf.Name)
			}
			pkl = zf
		}
	}
	if pkl == nil {
		return nil, errorf(path, "zip archive without data.pkl: not a PyTorch checkpoint")
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	for _, zf := range zr.File {
		if strings.HasPrefix(zf.Name, prefix) {
			cf.entries[strings.TrimPrefix(zf.Name, prefix)] = &entry{zf: zf}
		}
	}
	if e, ok := cf.entries["byteorder"]; ok {
		b, err := readSmall(e.zf, 16)
		if err != nil {
			return nil, errorf(path, "reading %s: %v", e.zf.Name, err)
		}
		if string(b) != "little" {
			return nil, errorf(path, "tensors are stored %q-endian; only little-endian checkpoints are supported", printable(string(b)))
		}
	}
	if pkl.UncompressedSize64 > maxPickle {
		return nil, errorf(path, "%s is %d bytes, more than a state dict needs (limit %d)", pkl.Name, pkl.UncompressedSize64, maxPickle)
	}
	data, err := readSmall(pkl, maxPickle)
	if err != nil {
		return nil, errorf(path, "reading %s: %v", pkl.Name, err)
	}
	storages := map[string]*storage{}
	root, err := unpickle(data, func(pid any) (any, error) { return cf.persistentLoad(pid, storages) })
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	if err := cf.collect(root); err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	if useMmap {
		if m, err := mmap.Map(f, size); err == nil {
			cf.mapped = m
		}
	}
	return cf, nil
}

func checkMagic(b []byte) error {
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return nil
	case len(b) >= 2 && b[0] == 0x80 && b[1] <= 5:
		return errors.New("legacy PyTorch format (saved before PyTorch 1.6); not supported: re-save it with a current PyTorch or convert it to .safetensors")
	case bytes.HasPrefix(b, []byte("\x89PNG")):
		return errors.New("not a PyTorch checkpoint: it is a PNG image")
	case len(b) >= 9 && b[8] == '{' && b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 0:
		return errors.New("not a PyTorch checkpoint: it looks like a safetensors file; name it .safetensors")
	}
	return errors.New("not a PyTorch checkpoint (no zip archive inside)")
}

func readSmall(zf *zip.File, limit int64) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}

// persistentLoad resolves torch's ('storage', storage_type, key, location,
// numel) to the archive entry data/<key>.
func (cf *File) persistentLoad(pid any, storages map[string]*storage) (any, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) < 5 {
		return nil, perr("pickle refers to external data %s; only torch storages are supported", describe(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, perr("pickle refers to external data of kind %s; only torch storages are supported", describe(t[0]))
	}
	g, ok := t[1].(pyGlobal)
	if !ok || g.kind != gStorage {
		return nil, perr("pickle names a storage of type %s", describe(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, perr("pickle names a storage key that is %s, not a string", describe(t[2]))
	}
	numel, ok := t[4].(int64)
	if !ok || numel < 0 {
		return nil, perr("storage %s has a bad element count (%s)", printable(key), describeValue(t[4]))
	}
	if s, ok := storages[key]; ok {
		if s.dt != g.dt || s.numel != numel {
			return nil, perr("storage %s is described twice, differently", printable(key))
		}
		return s, nil
	}
	e, ok := cf.entries["data/"+key]
	if !ok {
		return nil, perr("storage %s has no entry data/%s in the archive (file truncated?)", printable(key), printable(key))
	}
	if err := cf.plausible(e.zf); err != nil {
		return nil, perr("storage %s: %v", printable(key), err)
	}
	hi, lo := bits.Mul64(uint64(numel), uint64(g.dt.Size()))
	if hi != 0 || lo > e.zf.UncompressedSize64 {
		return nil, perr("storage %s claims %d elements of %s, but data/%s holds %d bytes", printable(key), numel, g.dt, printable(key), e.zf.UncompressedSize64)
	}
	s := &storage{dt: g.dt, key: key, numel: numel}
	storages[key] = s
	return s, nil
}

// plausible checks an entry's claimed size against what its bytes in the
// file can hold: all of them stored, or deflate's most from compressed
// ones, so that no read trusts a size the archive's directory made up.
func (cf *File) plausible(zf *zip.File) error {
	switch zf.Method {
	case zip.Store:
		if zf.UncompressedSize64 > uint64(cf.size) {
			return fmt.Errorf("entry %s claims %d bytes, more than the file's %d (truncated?)", printable(zf.Name), zf.UncompressedSize64, cf.size)
		}
	case zip.Deflate:
		if zf.CompressedSize64 > uint64(cf.size) || zf.UncompressedSize64 > maxDeflateRatio*zf.CompressedSize64+1024 {
			return fmt.Errorf("entry %s claims %d bytes from %d compressed, more than deflate can make of them (a damaged or forged archive)",
				printable(zf.Name), zf.UncompressedSize64, zf.CompressedSize64)
		}
	default:
		return fmt.Errorf("entry %s is compressed by method %d; torch.save stores entries uncompressed", printable(zf.Name), zf.Method)
	}
	return nil
}

// collect finds the tensors of the unpickled root. A training checkpoint
// is {"state_dict": {...}, "global_step": ..., ...}: the weights are its
// "state_dict". Otherwise the root itself is the state dict. Nested dicts
// are flattened with dotted names; anything that is not a tensor
// (counters, optimizer bookkeeping) is skipped.
func (cf *File) collect(root any) error {
	d, ok := root.(*pyDict)
	if !ok {
		return fmt.Errorf("pickle holds %s, not a state dict", describe(root))
	}
	if sd, ok := d.get("state_dict"); ok {
		if sdd, ok := sd.(*pyDict); ok {
			d = sdd
		}
	}
	seen := map[*pyDict]bool{}
	var walk func(d *pyDict, prefix string, depth int) error
	walk = func(d *pyDict, prefix string, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("state dict nested more than %d deep", maxDepth)
		}
		if seen[d] {
			return nil
		}
		seen[d] = true
		for i, k := range d.keys {
			ks, ok := k.(string)
			if !ok {
				continue
			}
			name := prefix + ks
			switch v := d.vals[i].(type) {
			case *tensor:
				ti, err := cf.resolve(name, v)
				if err != nil {
					return err
				}
				if _, dup := cf.tensors[name]; dup {
					return fmt.Errorf("tensor %s appears twice", printable(name))
				}
				cf.tensors[name] = ti
				cf.names = append(cf.names, name)
			case *pyDict:
				if err := walk(v, name+".", depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(d, "", 0); err != nil {
		return err
	}
	sort.Strings(cf.names)
	return nil
}

// resolve checks that a tensor is a contiguous view inside its storage and
// locates its bytes.
func (cf *File) resolve(name string, t *tensor) (TensorInfo, error) {
	es := int64(t.st.dt.Size())
	numel := int64(1)
	for _, d := range t.size {
		if d > 1<<40 {
			return TensorInfo{}, fmt.Errorf("tensor %s: size %s is too large", printable(name), dims(t.size))
		}
		hi, lo := bits.Mul64(uint64(numel), uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return TensorInfo{}, fmt.Errorf("tensor %s: size %s is too large", printable(name), dims(t.size))
		}
		numel = int64(lo)
	}
	if numel > t.st.numel || t.offset > t.st.numel-numel {
		return TensorInfo{}, fmt.Errorf("tensor %s: size %s at offset %d does not fit its storage of %d elements", printable(name), dims(t.size), t.offset, t.st.numel)
	}
	// Contiguous (row-major) strides; extents of 1 may have any stride,
	// as in torch's is_contiguous.
	want := int64(1)
	for i := len(t.size) - 1; i >= 0; i-- {
		if t.size[i] != 1 && t.stride[i] != want {
			return TensorInfo{}, fmt.Errorf("tensor %s: size %s with stride %s is not contiguous; only contiguous tensors are supported (save with .contiguous())", printable(name), dims(t.size), dims(t.stride))
		}
		want *= t.size[i]
	}
	shape := make([]int, len(t.size))
	for i, d := range t.size {
		shape[i] = int(d)
	}
	return TensorInfo{DType: t.st.dt, Shape: shape, Entry: "data/" + t.st.key, Offset: t.offset * es, Bytes: numel * es}, nil
}

// Path is the file's path as given to Open.
func (cf *File) Path() string { return cf.path }

// Names lists the tensors, sorted.
func (cf *File) Names() []string { return append([]string(nil), cf.names...) }

// Len is the number of tensors.
func (cf *File) Len() int { return len(cf.names) }

// Info describes a tensor; ok is false when there is no such tensor.
func (cf *File) Info(name string) (TensorInfo, bool) {
	t, ok := cf.tensors[name]
	if ok {
		t.Shape = append([]int(nil), t.Shape...)
	}
	return t, ok
}

// Raw returns a tensor's bytes (little-endian). A slice from a memory map
// is read-only and valid until Close; otherwise it is a fresh copy.
func (cf *File) Raw(name string) ([]byte, error) {
	t, ok := cf.tensors[name]
	if !ok {
		return nil, errorf(cf.path, "no tensor %s", printable(name))
	}
	return cf.ReadRange(name, 0, t.Bytes)
}

// ReadRange returns bytes [lo, hi) of a tensor, with Raw's aliasing rules.
func (cf *File) ReadRange(name string, lo, hi int64) ([]byte, error) {
	t, ok := cf.tensors[name]
	if !ok {
		return nil, errorf(cf.path, "no tensor %s", printable(name))
	}
	if lo < 0 || hi < lo || hi > t.Bytes {
		return nil, errorf(cf.path, "tensor %s: byte range [%d, %d) outside its %d bytes", printable(name), lo, hi, t.Bytes)
	}
	if cf.f == nil {
		return nil, errorf(cf.path, "file is closed")
	}
	e := cf.entries[t.Entry]
	e.once.Do(func() {
		e.off = -1
		if e.zf.Method != zip.Store {
			return
		}
		off, err := e.zf.DataOffset()
		if err != nil {
			e.err = err
			return
		}
		if off < 0 || off > cf.size || int64(e.zf.UncompressedSize64) > cf.size-off {
			e.err = fmt.Errorf("entry %s runs past the end of the file (truncated?)", e.zf.Name)
			return
		}
		e.off = off
	})
	if e.err != nil {
		return nil, &Error{Path: cf.path, Msg: fmt.Sprintf("tensor %s: %v", printable(name), e.err), Err: e.err}
	}
	start, n := t.Offset+lo, hi-lo
	if e.off >= 0 {
		abs := e.off + start
		if cf.mapped != nil {
			return cf.mapped[abs : abs+n : abs+n], nil
		}
		buf := make([]byte, n)
		if _, err := cf.f.ReadAt(buf, abs); err != nil {
			return nil, &Error{Path: cf.path, Msg: fmt.Sprintf("reading tensor %s: %v", printable(name), err), Err: err}
		}
		return buf, nil
	}
	buf, err := e.inflate(start, n)
	if err != nil {
		return nil, &Error{Path: cf.path, Msg: fmt.Sprintf("tensor %s: inflating %s: %v", printable(name), e.zf.Name, err), Err: err}
	}
	return buf, nil
}

// inflate returns bytes [start, start+n) of a compressed entry. The
// buffer grows as bytes arrive, so an entry that ends early fails having
// held only what it had.
func (e *entry) inflate(start, n int64) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rc == nil || start < e.pos {
		if e.rc != nil {
			e.rc.Close()
		}
		rc, err := e.zf.Open()
		if err != nil {
			e.rc = nil
			return nil, err
		}
		e.rc, e.pos = rc, 0
	}
	budget := maxInflate*int64(e.zf.UncompressedSize64) + inflateSlack
	if e.inflated+start+n-e.pos > budget {
		return nil, fmt.Errorf("its tensors are read out of order so often that it would be inflated more than %d times over; re-save the checkpoint with torch.save, which stores tensors uncompressed", maxInflate)
	}
	skipped, err := io.CopyN(io.Discard, e.rc, start-e.pos)
	e.pos += skipped
	e.inflated += skipped
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, e.rc, n)
	e.pos += got
	e.inflated += got
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Float32 returns a float tensor's values as a new []float32.
func (cf *File) Float32(name string) ([]float32, error) {
	t, ok := cf.tensors[name]
	if !ok {
		return nil, errorf(cf.path, "no tensor %s", printable(name))
	}
	if !t.DType.IsFloat() {
		return nil, errorf(cf.path, "tensor %s is %s, not a float type", printable(name), t.DType)
	}
	raw, err := cf.Raw(name)
	if err != nil {
		return nil, err
	}
	return safetensors.ToFloat32(t.DType, raw)
}

// Close releases the file.
func (cf *File) Close() error {
	var err error
	for _, e := range cf.entries {
		e.mu.Lock()
		if e.rc != nil {
			e.rc.Close()
			e.rc = nil
		}
		e.mu.Unlock()
	}
	if cf.mapped != nil {
		err = mmap.Unmap(cf.mapped)
		cf.mapped = nil
	}
	if cf.f != nil {
		if cerr := cf.f.Close(); err == nil {
			err = cerr
		}
		cf.f = nil
	}
	return err
}
