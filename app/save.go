package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"glimmer/engine/tmpfile"
)

// WriteNew writes data to path atomically and never over an existing
// file: it writes a temporary file in the same folder, syncs it, and links
// it into place only if path does not exist (a hard link fails on an
// existing name, unlike rename). A full disk or any other failure leaves
// no partial file behind.
// CheckWritable fails, naming path, when path's folder is missing or
// cannot take a new file: checked before long work whose result goes
// there, so that it is not lost at the end. It leaves nothing behind.
func CheckWritable(path string) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s: the folder %s does not exist", path, dir)
	}
	f, err := tmpfile.Create(dir, "."+filepath.Base(path)+".probe*")
	if err != nil {
		return fmt.Errorf("%s: cannot write in %s: %w", path, dir, unwrapPath(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

func WriteNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := tmpfile.Create(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	name := tmp.Name()
	defer os.Remove(name)
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; not overwriting it", path)
		}
		// File systems without hard links: fall back to a checked rename.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("%s already exists; not overwriting it", path)
		}
		if err := os.Rename(name, path); err != nil {
			return fmt.Errorf("%s: %w", path, unwrapPath(err))
		}
	}
	return nil
}

// FreeName returns path, or path with " (2)", " (3)", … before the
// extension when that name is taken.
func FreeName(path string) string {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return path
	}
	ext := filepath.Ext(path)
	stem := strings.TrimSuffix(path, ext)
	for i := 2; ; i++ {
		p := fmt.Sprintf("%s (%d)%s", stem, i, ext)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p
		}
	}
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
