package app

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"unicode/utf8"
)

// PNG text chunks: Go's image/png neither writes nor returns them, so the
// chunk stream is edited directly. A chunk is length (4 bytes, big-endian),
// type (4), data, CRC-32 of type and data.

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// EncodePNG encodes img with text chunks (key → value) right after IHDR.
// Latin-1 text goes in tEXt, anything else in iTXt (UTF-8), as PIL and
// AUTOMATIC1111 do.
func EncodePNG(img image.Image, text [][2]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	// Signature (8) + IHDR chunk (4 + 4 + 13 + 4).
	const ihdrEnd = 8 + 25
	var out bytes.Buffer
	out.Write(data[:ihdrEnd])
	for _, kv := range text {
		typ, body := textChunk(kv[0], kv[1])
		writeChunk(&out, typ, body)
	}
	out.Write(data[ihdrEnd:])
	return out.Bytes(), nil
}

func textChunk(key, value string) (string, []byte) {
	if latin1, ok := toLatin1(value); ok {
		return "tEXt", append(append([]byte(key), 0), latin1...)
	}
	// iTXt: keyword, 0, compression flag 0, method 0, language "", 0,
	// translated keyword "", 0, UTF-8 text.
	b := append([]byte(key), 0, 0, 0, 0, 0)
	return "iTXt", append(b, value...)
}

func toLatin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

func writeChunk(w *bytes.Buffer, typ string, body []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(body)))
	w.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(body)
	w.WriteString(typ)
	w.Write(body)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	w.Write(n[:])
}

// errNotPNG says a file does not start with the PNG signature.
var errNotPNG = errors.New("not a PNG file")

// ReadPNGText returns a PNG's text chunks (tEXt, zTXt, iTXt) in file
// order. It reads chunk headers only up to the image data's end and
// checks each chunk's CRC.
func ReadPNGText(r io.Reader) ([][2]string, error) {
	sig := make([]byte, 8)
	if _, err := io.ReadFull(r, sig); err != nil || !bytes.Equal(sig, pngSignature) {
		return nil, errNotPNG
	}
	var out [][2]string
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("truncated PNG (no IEND chunk)")
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		typ := string(hdr[4:])
		if n > 1<<30 {
			return nil, fmt.Errorf("PNG chunk %q claims %d bytes", typ, n)
		}
		isText := typ == "tEXt" || typ == "zTXt" || typ == "iTXt"
		if !isText {
			if _, err := io.CopyN(io.Discard, r, int64(n)+4); err != nil {
				return nil, fmt.Errorf("truncated PNG chunk %q", typ)
			}
			if typ == "IEND" {
				return out, nil
			}
			continue
		}
		body := make([]byte, n+4)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("truncated PNG chunk %q", typ)
		}
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:])
		crc.Write(body[:n])
		if crc.Sum32() != binary.BigEndian.Uint32(body[n:]) {
			return nil, fmt.Errorf("PNG chunk %q has a bad checksum", typ)
		}
		kv, err := parseTextChunk(typ, body[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, kv)
	}
}

func parseTextChunk(typ string, b []byte) ([2]string, error) {
	key, rest, ok := bytes.Cut(b, []byte{0})
	if !ok {
		return [2]string{}, fmt.Errorf("PNG %s chunk has no keyword terminator", typ)
	}
	switch typ {
	case "tEXt":
		return [2]string{string(key), latin1String(rest)}, nil
	case "zTXt":
		if len(rest) < 1 {
			return [2]string{}, fmt.Errorf("PNG zTXt chunk is empty")
		}
		text, err := inflate(rest[1:])
		if err != nil {
			return [2]string{}, fmt.Errorf("PNG zTXt chunk %q: %v", key, err)
		}
		return [2]string{string(key), latin1String(text)}, nil
	}
	// iTXt
	if len(rest) < 2 {
		return [2]string{}, fmt.Errorf("PNG iTXt chunk %q is truncated", key)
	}
	compressed := rest[0] == 1
	rest = rest[2:]
	_, rest, ok1 := bytes.Cut(rest, []byte{0}) // language tag
	_, rest, ok2 := bytes.Cut(rest, []byte{0}) // translated keyword
	if !ok1 || !ok2 {
		return [2]string{}, fmt.Errorf("PNG iTXt chunk %q is truncated", key)
	}
	if compressed {
		var err error
		if rest, err = inflate(rest); err != nil {
			return [2]string{}, fmt.Errorf("PNG iTXt chunk %q: %v", key, err)
		}
	}
	if !utf8.Valid(rest) {
		return [2]string{}, fmt.Errorf("PNG iTXt chunk %q is not UTF-8", key)
	}
	return [2]string{string(key), string(rest)}, nil
}

func latin1String(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// inflate decompresses at most 16 MiB, so a hostile chunk cannot exhaust
// memory.
func inflate(b []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, 16<<20+1))
	if err != nil {
		return nil, err
	}
	if len(out) > 16<<20 {
		return nil, errors.New("text over 16 MiB")
	}
	return out, nil
}
