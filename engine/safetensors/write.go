package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"glimmer/engine/tmpfile"
)

// NamedTensor is one tensor to write: its bytes are little-endian elements
// of DType, row-major, numel × DType.Size() of them.
type NamedTensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// F32Tensor packs float32 values as an F32 tensor.
func F32Tensor(name string, shape []int, v []float32) NamedTensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return NamedTensor{Name: name, DType: F32, Shape: shape, Data: b}
}

// F16Tensor rounds float32 values to binary16 (ties to even) as an F16
// tensor.
func F16Tensor(name string, shape []int, v []float32) NamedTensor {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], Float32ToHalf(x))
	}
	return NamedTensor{Name: name, DType: F16, Shape: shape, Data: b}
}

// I32Tensor packs int32 values as an I32 tensor.
func I32Tensor(name string, shape []int, v []int32) NamedTensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return NamedTensor{Name: name, DType: I32, Shape: shape, Data: b}
}

// WriteOption changes how Write treats an existing file.
type WriteOption int

// Overwrite lets Write replace an existing file (atomically, by rename).
const Overwrite WriteOption = 1

// Write stores tensors (in the given order) and string metadata as a
// safetensors file. It writes a temporary file in the same folder, syncs
// it, and only then moves it to path, so a crash never leaves a half
// file under path. An existing file is an error unless Overwrite is given.
func Write(path string, tensors []NamedTensor, metadata map[string]string, opts ...WriteOption) error {
	overwrite := false
	for _, o := range opts {
		if o == Overwrite {
			overwrite = true
		}
	}
	hdr, err := buildHeader(tensors, metadata)
	if err != nil {
		return errorf(path, "%v", err)
	}
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return errorf(path, "already exists; not overwriting it")
		}
	}
	dir := filepath.Dir(path)
	tmp, err := tmpfile.Create(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return &Error{Path: path, Msg: "creating a temporary file: " + describeOpenError(err), Err: err}
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	werr := func(err error) error { return &Error{Path: path, Msg: "writing: " + err.Error(), Err: err} }
	if _, err := tmp.Write(lenBuf[:]); err != nil {
		return werr(err)
	}
	if _, err := tmp.Write(hdr); err != nil {
		return werr(err)
	}
	for _, t := range tensors {
		if _, err := tmp.Write(t.Data); err != nil {
			return werr(err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return werr(err)
	}
	if err := tmp.Close(); err != nil {
		return werr(err)
	}
	if overwrite {
		if err := os.Rename(tmpName, path); err != nil {
			return werr(err)
		}
	} else {
		// A hard link fails if path appeared meanwhile, unlike rename.
		if err := os.Link(tmpName, path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return errorf(path, "already exists; not overwriting it")
			}
			// Some file systems have no hard links: check, then rename.
			if _, serr := os.Lstat(path); serr == nil {
				return errorf(path, "already exists; not overwriting it")
			}
			if err := os.Rename(tmpName, path); err != nil {
				return werr(err)
			}
		}
		os.Remove(tmpName)
	}
	ok = true
	return nil
}

// buildHeader lays the tensors out back to back and returns the JSON
// header, padded with spaces to a multiple of 8 bytes so the data section
// starts aligned.
func buildHeader(tensors []NamedTensor, metadata map[string]string) ([]byte, error) {
	type entry struct {
		DType       DType   `json:"dtype"`
		Shape       []int   `json:"shape"`
		DataOffsets []int64 `json:"data_offsets"`
	}
	h := map[string]any{}
	if len(metadata) > 0 {
		h["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		if t.Name == "__metadata__" {
			return nil, fmt.Errorf("a tensor cannot be named __metadata__")
		}
		if _, dup := h[t.Name]; dup {
			return nil, fmt.Errorf("tensor %q given twice", t.Name)
		}
		if !t.DType.Known() {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		n := int64(t.DType.Size())
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative extent in shape %v", t.Name, t.Shape)
			}
			n *= int64(d)
		}
		if n != int64(len(t.Data)) {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, got %d", t.Name, t.Shape, t.DType, n, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		h[t.Name] = entry{t.DType, shape, []int64{off, off + n}}
		off += n
	}
	b, err := json.Marshal(h) // map keys come out sorted
	if err != nil {
		return nil, err
	}
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	return b, nil
}
