package model

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"glimmer/engine/ckpt"
	"glimmer/engine/internal/regular"
	"glimmer/engine/safetensors"
)

// source is one open weights file, whatever its format.
type source interface {
	Path() string
	Names() []string
	// info returns a stored tensor's dtype and shape.
	info(name string) (safetensors.DType, []int, bool)
	ReadRange(name string, lo, hi int64) ([]byte, error)
	Close() error
}

type stSource struct{ *safetensors.File }

func (s stSource) info(name string) (safetensors.DType, []int, bool) {
	t, ok := s.Info(name)
	return t.DType, t.Shape, ok
}

type ckptSource struct{ *ckpt.File }

func (s ckptSource) info(name string) (safetensors.DType, []int, bool) {
	t, ok := s.Info(name)
	return t.DType, t.Shape, ok
}

// openFile opens a weights file by its extension, or by its first bytes
// when the extension says nothing (.bin files of either kind exist).
func openFile(path string) (source, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".safetensors", ".sft":
		f, err := safetensors.Open(path)
		if err != nil {
			return nil, err
		}
		return stSource{f}, nil
	case ".ckpt", ".pt", ".pth":
		f, err := ckpt.Open(path)
		if err != nil {
			return nil, err
		}
		return ckptSource{f}, nil
	}
	// The sniff opens the file itself: a pipe would block it.
	if err := regular.Check(path); err != nil {
		return nil, fmt.Errorf("%s: %v", base(path), err)
	}
	head := make([]byte, 4)
	if f, err := os.Open(path); err == nil {
		n, _ := f.Read(head)
		head = head[:n]
		f.Close()
	}
	if bytes.HasPrefix(head, []byte("PK")) || bytes.HasPrefix(head, []byte{0x80}) {
		f, err := ckpt.Open(path)
		if err != nil {
			return nil, err
		}
		return ckptSource{f}, nil
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	return stSource{f}, nil
}

// multiSource joins the shards of a sharded component
// (*.safetensors.index.json) into one source.
type multiSource struct {
	path  string // the index file
	files []source
	owner map[string]source
	names []string
}

func (m *multiSource) Path() string    { return m.path }
func (m *multiSource) Names() []string { return m.names }
func (m *multiSource) info(name string) (safetensors.DType, []int, bool) {
	s, ok := m.owner[name]
	if !ok {
		return "", nil, false
	}
	return s.info(name)
}
func (m *multiSource) ReadRange(name string, lo, hi int64) ([]byte, error) {
	s, ok := m.owner[name]
	if !ok {
		return nil, errors.New(filepath.Base(m.path) + ": no tensor " + name)
	}
	return s.ReadRange(name, lo, hi)
}
func (m *multiSource) Close() error {
	var err error
	for _, f := range m.files {
		if e := f.Close(); err == nil {
			err = e
		}
	}
	return err
}
