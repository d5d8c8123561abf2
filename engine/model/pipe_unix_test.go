//go:build unix

package model_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"glimmer/engine/model"
)

// A named pipe given as the model, or lying in a diffusers folder as a
// weights file (.safetensors, or .bin, which is sniffed), fails at once with one line naming it; opening it would
// block until some writer came.
func TestNamedPipe(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "model.safetensors")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := folder(t, func(d string) {
		w := filepath.Join(d, "vae", "diffusion_pytorch_model.safetensors")
		if err := removeAndMkfifo(w); err != nil {
			t.Fatal(err)
		}
	})
	// A .bin weights file is sniffed (safetensors or torch) by opening
	// it, which a pipe would block too.
	sniffed := folder(t, func(d string) {
		if err := syscall.Unlink(filepath.Join(d, "vae", "diffusion_pytorch_model.safetensors")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(d, "vae", "diffusion_pytorch_model.bin"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	for path, want := range map[string]string{
		pipe:    pipe + ": a named pipe, not a file",
		dir:     "vae/diffusion_pytorch_model.safetensors: a named pipe, not a file",
		sniffed: "diffusion_pytorch_model.bin: a named pipe, not a file",
	} {
		done := make(chan error, 1)
		go func() {
			m, err := model.Open(path, model.Options{})
			if err == nil {
				m.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", path, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Open still blocked after 10 s", path)
		}
	}
}

func removeAndMkfifo(path string) error {
	if err := syscall.Unlink(path); err != nil {
		return err
	}
	return syscall.Mkfifo(path, 0o644)
}
