package app

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParamsRoundTrip(t *testing.T) {
	p := Params{Prompt: "a red circle, (blue:1.2)\nsecond line", Negative: "blurry, low quality",
		Steps: 12, Sampler: "dpmpp_2m", Schedule: "karras", CFG: 7.5, Seed: 4294967295,
		Width: 64, Height: 96, Model: "sd1-tiny, v2", ClipSkip: 2}
	text := p.Format()
	// The settings line as AUTOMATIC1111 writes it.
	want := "Steps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 4294967295, Size: 64x96, Model: \"sd1-tiny, v2\", Clip skip: 2, Version: Glimmer"
	if got := text[strings.LastIndex(text, "\n")+1:]; got != want {
		t.Fatalf("settings line\n got %q\nwant %q", got, want)
	}
	back, err := ParseParams(text)
	if err != nil {
		t.Fatal(err)
	}
	if back != p {
		t.Fatalf("round trip\n got %+v\nwant %+v", back, p)
	}
}

func TestParseA1111Variants(t *testing.T) {
	// An older A1111 line: schedule inside the sampler name, no negative.
	p, err := ParseParams("a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model hash: abc, Model: v1-5")
	if err != nil {
		t.Fatal(err)
	}
	if p.Prompt != "a cat" || p.Negative != "" || p.Sampler != "dpmpp_2m" || p.Schedule != "karras" ||
		p.Steps != 20 || p.CFG != 7 || p.Seed != 42 || p.Width != 512 || p.Height != 768 || p.Model != "v1-5" {
		t.Fatalf("parsed %+v", p)
	}
	if _, err := ParseParams("x\nSteps: many, Sampler: Euler"); err == nil {
		t.Fatal("a bad Steps value must be an error")
	}
}

func TestPNGTextRoundTrip(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	img.Set(1, 1, color.NRGBA{200, 10, 30, 255})
	chunks := [][2]string{{"parameters", "latin-1 only: café"}, {"Comment", "unicode: 猫 🐈"}}
	data, err := EncodePNG(img, chunks)
	if err != nil {
		t.Fatal(err)
	}
	// Still a valid PNG with the same pixels.
	dec, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if dec.At(1, 1) != img.At(1, 1) {
		t.Fatalf("pixel changed: %v", dec.At(1, 1))
	}
	got, err := ReadPNGText(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != chunks[0] || got[1] != chunks[1] {
		t.Fatalf("text chunks %q, want %q", got, chunks)
	}
	// A flipped byte inside a text chunk fails its CRC.
	bad := bytes.Clone(data)
	i := bytes.Index(bad, []byte("latin-1 only")) // stored as Latin-1 in tEXt
	bad[i] ^= 1
	if _, err := ReadPNGText(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupt chunk: err %v", err)
	}
	if _, err := ReadPNGText(strings.NewReader("GIF89a...")); err != errNotPNG {
		t.Fatalf("not a PNG: err %v", err)
	}
	if _, err := ReadPNGText(bytes.NewReader(data[:40])); err == nil {
		t.Fatal("truncated PNG must be an error")
	}
}

func TestWriteNewNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.png")
	if err := WriteNew(p, []byte("first")); err != nil {
		t.Fatal(err)
	}
	err := WriteNew(p, []byte("second"))
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second write: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "first" {
		t.Fatalf("file now holds %q", b)
	}
	if n := FreeName(p); n != filepath.Join(dir, "out (2).png") {
		t.Fatalf("FreeName = %s", n)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if err := WriteNew(filepath.Join(dir, "missing", "x.png"), []byte("x")); err == nil {
		t.Fatal("writing into a missing folder must fail")
	}
}

func TestInfoOnPNG(t *testing.T) {
	dir := t.TempDir()
	p := Params{Prompt: "a green triangle", Negative: "blur", Steps: 9, Sampler: "euler_a", Schedule: "default",
		CFG: 6.5, Seed: 77, Width: 64, Height: 128, Model: "tiny", ClipSkip: 1}
	data, err := EncodePNG(image.NewNRGBA(image.Rect(0, 0, 2, 2)), [][2]string{{"parameters", p.Format()}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.png")
	os.WriteFile(path, data, 0o644)
	code, out, stderr := run(t, "info", path)
	if code != 0 || !strings.Contains(out, "prompt     a green triangle") || !strings.Contains(out, "seed       77") ||
		!strings.Contains(out, "size       64x128") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// Terminal escapes in the text (a recolouring, a window title) come
	// out as \xNN.
	evil := p
	evil.Prompt, evil.Model = "a \x1b[31mred\x1b]0;pwned\a cat", "m\x1b[2J"
	data, err = EncodePNG(image.NewNRGBA(image.Rect(0, 0, 2, 2)), [][2]string{{"parameters", evil.Format()}})
	if err != nil {
		t.Fatal(err)
	}
	escaped := filepath.Join(dir, "escaped.png")
	os.WriteFile(escaped, data, 0o644)
	if code, out, _ := run(t, "info", escaped); code != 0 || strings.ContainsAny(out, "\x1b\a") ||
		!strings.Contains(out, `prompt     a \x1b[31mred\x1b]0;pwned\x07 cat`) || !strings.Contains(out, `model      m\x1b[2J`) {
		t.Errorf("escapes: exit %d, stdout %q", code, out)
	}
	plain, _ := EncodePNG(image.NewNRGBA(image.Rect(0, 0, 2, 2)), nil)
	bare := filepath.Join(dir, "bare.png")
	os.WriteFile(bare, plain, 0o644)
	if code, _, stderr := run(t, "info", bare); code != 1 || !strings.Contains(stderr, "no generation parameters") {
		t.Fatalf("bare PNG: exit %d, %q", code, stderr)
	}
	fake := filepath.Join(dir, "fake.png")
	os.WriteFile(fake, []byte("GIF89a"), 0o644)
	if code, _, stderr := run(t, "info", fake); code != 1 || !strings.Contains(stderr, "fake.png: not a PNG") {
		t.Fatalf("fake PNG: exit %d, %q", code, stderr)
	}
}
