package ckpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"glimmer/engine/safetensors"
	"glimmer/engine/tmpfile"
)

// WriteOptions shape the archive Write produces.
type WriteOptions struct {
	// StateDict wraps the tensors as a training checkpoint does:
	// {"state_dict": {...}, "global_step": 0}.
	StateDict bool
	// Deflate compresses the storages (torch never does; other tools
	// that re-zip a checkpoint may).
	Deflate bool
}

var storageNames = map[safetensors.DType]string{
	safetensors.F64: "DoubleStorage", safetensors.F32: "FloatStorage", safetensors.F16: "HalfStorage",
	safetensors.BF16: "BFloat16Storage", safetensors.I64: "LongStorage", safetensors.I32: "IntStorage",
	safetensors.I16: "ShortStorage", safetensors.I8: "CharStorage", safetensors.U8: "ByteStorage",
	safetensors.BOOL: "BoolStorage",
}

// Write saves tensors in torch.save's zip format (what torch.load reads),
// one storage per tensor, for tests and conversion tools. It refuses to
// overwrite an existing file and writes through a temporary file.
func Write(path string, tensors []safetensors.NamedTensor, opts WriteOptions) error {
	if _, err := os.Lstat(path); err == nil {
		return errorf(path, "already exists; not overwriting it")
	}
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if stem == "" || strings.ContainsAny(stem, "/\\") {
		stem = "archive"
	}
	var pk pickler
	pk.proto()
	if opts.StateDict {
		pk.op('}')
		pk.str("state_dict")
	}
	pk.global("collections", "OrderedDict")
	pk.op(')', 'R')
	if len(tensors) > 0 {
		pk.op('(')
	}
	for i, t := range tensors {
		sn, ok := storageNames[t.DType]
		if !ok {
			return errorf(path, "tensor %q: dtype %s has no torch storage type", t.Name, t.DType)
		}
		numel := 1
		for _, d := range t.Shape {
			numel *= d
		}
		if numel*t.DType.Size() != len(t.Data) {
			return errorf(path, "tensor %q: shape %v of %s needs %d bytes, got %d", t.Name, t.Shape, t.DType, numel*t.DType.Size(), len(t.Data))
		}
		pk.str(t.Name)
		pk.global("torch._utils", "_rebuild_tensor_v2")
		pk.op('(', '(')
		pk.str("storage")
		pk.global("torch", sn)
		pk.str(strconv.Itoa(i))
		pk.str("cpu")
		pk.int(int64(numel))
		pk.op('t', 'Q') // TUPLE, BINPERSID
		pk.int(0)       // storage offset
		pk.op('(')
		for _, d := range t.Shape {
			pk.int(int64(d))
		}
		pk.op('t', '(')
		stride := 1
		strides := make([]int64, len(t.Shape))
		for j := len(t.Shape) - 1; j >= 0; j-- {
			strides[j] = int64(stride)
			stride *= t.Shape[j]
		}
		for _, s := range strides {
			pk.int(s)
		}
		pk.op('t', 0x89) // TUPLE, False (requires_grad)
		pk.global("collections", "OrderedDict")
		pk.op(')', 'R', 't', 'R') // backward_hooks; close args; _rebuild_tensor_v2(...)
	}
	if len(tensors) > 0 {
		pk.op('u')
	}
	if opts.StateDict {
		pk.op('s') // root["state_dict"] = the OrderedDict
		pk.str("global_step")
		pk.int(0)
		pk.op('s')
	}
	pk.op('.')
	data := pk.b.Bytes()

	tmp, err := tmpfile.Create(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return &Error{Path: path, Msg: "creating a temporary file: " + err.Error(), Err: err}
	}
	tmpName := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		return &Error{Path: path, Msg: "writing: " + err.Error(), Err: err}
	}
	zw := zip.NewWriter(tmp)
	add := func(name string, b []byte, method uint16) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: stem + "/" + name, Method: method})
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	if err := add("data.pkl", data, zip.Store); err != nil {
		return fail(err)
	}
	if err := add("byteorder", []byte("little"), zip.Store); err != nil {
		return fail(err)
	}
	method := zip.Store
	if opts.Deflate {
		method = zip.Deflate
	}
	for i, t := range tensors {
		if err := add("data/"+strconv.Itoa(i), t.Data, method); err != nil {
			return fail(err)
		}
	}
	if err := add("version", []byte("3\n"), zip.Store); err != nil {
		return fail(err)
	}
	if err := zw.Close(); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if _, serr := os.Lstat(path); serr == nil {
			os.Remove(tmpName)
			return errorf(path, "already exists; not overwriting it")
		}
		if err := os.Rename(tmpName, path); err != nil {
			os.Remove(tmpName)
			return &Error{Path: path, Msg: "writing: " + err.Error(), Err: err}
		}
		return nil
	}
	os.Remove(tmpName)
	return nil
}

// pickler emits the protocol-2 opcodes Write needs.
type pickler struct{ b bytes.Buffer }

func (p *pickler) proto() { p.b.Write([]byte{0x80, 2}) }

func (p *pickler) op(ops ...byte) { p.b.Write(ops) }

func (p *pickler) str(s string) {
	p.b.WriteByte('X')
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	p.b.Write(n[:])
	p.b.WriteString(s)
}

func (p *pickler) global(mod, name string) {
	fmt.Fprintf(&p.b, "c%s\n%s\n", mod, name)
}

func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v < 256:
		p.b.Write([]byte{'K', byte(v)})
	case v >= 0 && v < 65536:
		p.b.Write([]byte{'M', byte(v), byte(v >> 8)})
	case v >= -1<<31 && v < 1<<31:
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(int32(v)))
		p.b.WriteByte('J')
		p.b.Write(n[:])
	default:
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(v))
		p.b.Write([]byte{0x8a, 8})
		p.b.Write(n[:])
	}
}
