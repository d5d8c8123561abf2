package assets

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Starter is Glimmer's own small model, a diffusers folder: SD 1.x's
// architecture scaled down and trained by `glimmer train --mode full` on
// the procedural shapes dataset (README: the command and its time). It
// makes 64x64 pictures of coloured shapes on plain backgrounds, and is
// what `glimmer generate` and the window use when no model is chosen.
//
//go:embed starter
var Starter embed.FS

// StarterSize is the starter model's picture size in pixels.
const StarterSize = 64

// StarterDir returns a folder holding the starter model, writing it once
// under the user's cache folder (a new folder per model version, named by
// its contents' hash, moved into place whole so a crash never leaves half
// a model).
func StarterDir() (string, error) {
	sum, files, err := starterFiles()
	if err != nil {
		return "", err
	}
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	dir := filepath.Join(root, "glimmer", "starter-"+sum[:12])
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("starter model: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".starter-*")
	if err != nil {
		return "", fmt.Errorf("starter model: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, name := range files {
		data, err := Starter.ReadFile("starter/" + name)
		if err != nil {
			return "", fmt.Errorf("starter model: %w", err)
		}
		path := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", fmt.Errorf("starter model: %w", err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return "", fmt.Errorf("starter model: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process may have written the same version meanwhile.
		if st, serr := os.Stat(dir); serr == nil && st.IsDir() {
			return dir, nil
		}
		return "", fmt.Errorf("starter model: %w", err)
	}
	return dir, nil
}

// starterFiles lists the embedded files (relative to starter/) and hashes
// their names and contents.
func starterFiles() (string, []string, error) {
	var files []string
	err := fs.WalkDir(Starter, "starter", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path[len("starter/"):])
		}
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("starter model: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, name := range files {
		data, err := Starter.ReadFile("starter/" + name)
		if err != nil {
			return "", nil, fmt.Errorf("starter model: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), files, nil
}
