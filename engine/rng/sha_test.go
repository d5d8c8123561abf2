package rng

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
)

func sha256F32(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
