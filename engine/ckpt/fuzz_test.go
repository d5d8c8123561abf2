package ckpt

import (
	"strings"
	"testing"
)

// FuzzPickle runs arbitrary bytes through the pickle reader and the state
// dict walk. Nothing may panic; whatever loads must describe tensors that
// fit their storages. Storages are faked (the fuzzer has no archive): each
// persistent id becomes a storage of the numel it claims. The checked-in
// seed corpus (testdata/fuzz/FuzzPickle) holds the real TAESD pickle, one
// from Write, and the malicious ones of TestMaliciousAndBroken.
func FuzzPickle(f *testing.F) {
	f.Add(tensorPickle("HalfStorage", 6, 0, []byte{2, 3}, []byte{3, 1}))
	f.Add([]byte(p{0x80, 2}.global("os", "system").str("echo pwned").op(0x85, 'R', '.')))
	f.Fuzz(func(t *testing.T, data []byte) {
		persid := func(pid any) (any, error) {
			tup, ok := pid.(pyTuple)
			if !ok || len(tup) < 5 {
				return nil, perr("bad pid")
			}
			g, ok := tup[1].(pyGlobal)
			key, ok2 := tup[2].(string)
			n, ok3 := tup[4].(int64)
			if !ok || g.kind != gStorage || !ok2 || !ok3 || n < 0 {
				return nil, perr("bad pid")
			}
			return &storage{dt: g.dt, key: key, numel: n}, nil
		}
		root, err := unpickle(data, persid)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		cf := &File{tensors: map[string]TensorInfo{}}
		if err := cf.collect(root); err != nil {
			return
		}
		for _, n := range cf.names {
			ti := cf.tensors[n]
			if ti.Offset < 0 || ti.Bytes < 0 || ti.Numel()*int64(ti.DType.Size()) != ti.Bytes {
				t.Fatalf("%q: %+v", n, ti)
			}
		}
	})
}
