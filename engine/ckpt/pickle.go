package ckpt

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"glimmer/engine/safetensors"
)

// This file is a pickle *reader* that evaluates nothing. Python's pickle
// format is a small stack machine whose GLOBAL and REDUCE opcodes import
// and call arbitrary functions; that is how a malicious checkpoint runs
// code. Here GLOBAL only *recognises* a short allow-list of names (the
// ones torch.save writes for a state dict) and REDUCE only builds Go
// values for those; any other name stops the load with an error that says
// what the file asked for.

// Python values, as this reader represents them.
type (
	pyNone   struct{}
	pyBigInt struct{} // an integer wider than 64 bits; never needed for tensors
	pyTuple  []any
	pyList   struct{ items []any }
	pyDict   struct {
		keys, vals []any
	}
	// pyGlobal is an allow-listed name that GLOBAL pushed.
	pyGlobal struct {
		name string
		kind globalKind
		dt   safetensors.DType // storage types only
	}
	// pyOpaque stands for an inert object (training bookkeeping such as a
	// Lightning callback's state) that a checkpoint carries beside the
	// weights. It is never looked into.
	pyOpaque struct{ class string }
	// storage is a persistent_load result: one blob of the archive.
	storage struct {
		dt    safetensors.DType
		key   string
		numel int64
	}
	// tensor is a view into a storage, as _rebuild_tensor_v2 describes it.
	tensor struct {
		st     *storage
		offset int64 // in elements
		size   []int64
		stride []int64
	}
)

type globalKind int

const (
	gOrderedDict globalKind = iota + 1
	gRebuildTensorV2
	gRebuildTensor
	gRebuildParameter
	gRebuildParameterWithState
	gRebuildFromTypeV2
	gTensorType // torch.Tensor, torch.nn.parameter.Parameter: type markers only
	gStorage    // torch.FloatStorage etc.
	gInert      // known harmless bookkeeping: becomes pyOpaque
)

// allowed is every global a supported checkpoint may name. Nothing here is
// ever imported or called: the names are only recognised.
var allowed = map[string]pyGlobal{
	"collections.OrderedDict":                    {kind: gOrderedDict},
	"torch._utils._rebuild_tensor_v2":            {kind: gRebuildTensorV2},
	"torch._utils._rebuild_tensor":               {kind: gRebuildTensor},
	"torch._utils._rebuild_parameter":            {kind: gRebuildParameter},
	"torch._utils._rebuild_parameter_with_state": {kind: gRebuildParameterWithState},
	"torch._tensor._rebuild_from_type_v2":        {kind: gRebuildFromTypeV2},
	"torch.Tensor":                               {kind: gTensorType},
	"torch.nn.parameter.Parameter":               {kind: gTensorType},
	"torch.DoubleStorage":                        {kind: gStorage, dt: safetensors.F64},
	"torch.FloatStorage":                         {kind: gStorage, dt: safetensors.F32},
	"torch.HalfStorage":                          {kind: gStorage, dt: safetensors.F16},
	"torch.BFloat16Storage":                      {kind: gStorage, dt: safetensors.BF16},
	"torch.LongStorage":                          {kind: gStorage, dt: safetensors.I64},
	"torch.IntStorage":                           {kind: gStorage, dt: safetensors.I32},
	"torch.ShortStorage":                         {kind: gStorage, dt: safetensors.I16},
	"torch.CharStorage":                          {kind: gStorage, dt: safetensors.I8},
	"torch.ByteStorage":                          {kind: gStorage, dt: safetensors.U8},
	"torch.BoolStorage":                          {kind: gStorage, dt: safetensors.BOOL},
	"pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint": {kind: gInert},
	"numpy.core.multiarray.scalar":                                 {kind: gInert},
	"numpy.dtype":                                                  {kind: gInert},
	"_codecs.encode":                                               {kind: gInert},
}

// pickleError is an error in the pickle stream; refusal marks a name the
// allow-list refused.
type pickleError struct {
	msg     string
	refusal bool
}

func (e *pickleError) Error() string { return e.msg }

func perr(format string, args ...any) error { return &pickleError{msg: fmt.Sprintf(format, args...)} }

// maxDepth bounds container nesting when results are walked.
const maxDepth = 100

// maxPushes bounds the values a pickle may make (push) and keep in its
// memo.
const maxPushes = 1 << 20

type unpickler struct {
	data   []byte
	pos    int
	stack  []any
	marks  []int
	memo   map[uint32]any
	persid func(pid any) (any, error)
	pushes int
}

// unpickle runs a pickle stream and returns its result. persid resolves
// BINPERSID ids (torch's storages).
func unpickle(data []byte, persid func(any) (any, error)) (any, error) {
	u := &unpickler{data: data, memo: map[uint32]any{}, persid: persid}
	return u.run()
}

func (u *unpickler) take(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, perr("pickle truncated at byte %d (needs %d more bytes)", u.pos, n)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) u8() (int, error) {
	b, err := u.take(1)
	if err != nil {
		return 0, err
	}
	return int(b[0]), nil
}

func (u *unpickler) u32() (uint32, error) {
	b, err := u.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (u *unpickler) u64len() (int, error) {
	b, err := u.take(8)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(b)
	if v > uint64(len(u.data)) {
		return 0, perr("pickle truncated at byte %d (a length of %d)", u.pos, v)
	}
	return int(v), nil
}

func (u *unpickler) line() (string, error) {
	i := strings.IndexByte(string(u.data[u.pos:min(len(u.data), u.pos+1024)]), '\n')
	if i < 0 {
		return "", perr("pickle truncated at byte %d (a GLOBAL name without an end of line)", u.pos)
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

// push puts v on the stack. Every opcode that makes or copies a value
// pushes it, so maxPushes bounds the values a pickle makes, and the memory
// they take: a state dict's pickle makes about ten per tensor (SD 1.5's
// 1,131 tensors: under 20,000; a training checkpoint with optimiser state
// a few times that), while a few hundred MB of DUP opcodes would
// otherwise make gigabytes of stack. run stops at the next opcode.
func (u *unpickler) push(v any) {
	u.pushes++
	u.stack = append(u.stack, v)
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, perr("pickle stack underflow at byte %d", u.pos-1)
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, perr("pickle stack underflow at byte %d", u.pos-1)
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark pops everything above the last MARK, and the mark.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, perr("pickle opcode at byte %d needs a MARK", u.pos-1)
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

// opNames names opcodes for errors.
var opNames = map[byte]string{
	'I': "INT", 'L': "LONG", 'F': "FLOAT", 'S': "STRING", 'V': "UNICODE", 'p': "PUT", 'g': "GET",
	'P': "PERSID", 'i': "INST", 'o': "OBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
	0x92: "NEWOBJ_EX", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

func (u *unpickler) run() (any, error) {
	for {
		if u.pushes > maxPushes || len(u.memo) > maxPushes {
			return nil, perr("pickle makes or keeps more than %d values by byte %d; a state dict's makes about ten per tensor", maxPushes, u.pos)
		}
		if u.pos >= len(u.data) {
			return nil, perr("pickle ends at byte %d without STOP", u.pos)
		}
		at := u.pos
		op := u.data[u.pos]
		u.pos++
		switch op {
		case 0x80: // PROTO
			v, err := u.u8()
			if err != nil {
				return nil, err
			}
			if v > 5 {
				return nil, perr("pickle protocol %d is not supported", v)
			}
		case 0x95: // FRAME: a length hint; the bytes follow inline
			if _, err := u.u64len(); err != nil {
				return nil, err
			}
		case '.': // STOP
			if len(u.stack) != 1 || len(u.marks) != 0 {
				return nil, perr("pickle STOP at byte %d leaves %d values on the stack", at, len(u.stack))
			}
			return u.stack[0], nil
		case '(': // MARK
			u.marks = append(u.marks, len(u.stack))
		case '0': // POP
			if _, err := u.pop(); err != nil {
				return nil, err
			}
		case '1': // POP_MARK
			if _, err := u.popMark(); err != nil {
				return nil, err
			}
		case '2': // DUP
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 'N':
			u.push(pyNone{})
		case 0x88:
			u.push(true)
		case 0x89:
			u.push(false)
		case '}':
			u.push(&pyDict{})
		case ']':
			u.push(&pyList{})
		case ')':
			u.push(pyTuple{})
		case 0x8f: // EMPTY_SET: kept as a list; sets never hold weights
			u.push(&pyList{})
		case 'K': // BININT1
			v, err := u.u8()
			if err != nil {
				return nil, err
			}
			u.push(int64(v))
		case 'M': // BININT2
			b, err := u.take(2)
			if err != nil {
				return nil, err
			}
			u.push(int64(binary.LittleEndian.Uint16(b)))
		case 'J': // BININT
			v, err := u.u32()
			if err != nil {
				return nil, err
			}
			u.push(int64(int32(v)))
		case 0x8a, 0x8b: // LONG1, LONG4
			var n int
			var err error
			if op == 0x8a {
				n, err = u.u8()
			} else {
				var v uint32
				v, err = u.u32()
				n = int(v)
				if v > uint32(len(u.data)) {
					n = -1
				}
			}
			if err != nil {
				return nil, err
			}
			b, err := u.take(n)
			if err != nil {
				return nil, err
			}
			u.push(decodeLong(b))
		case 'G': // BINFLOAT, big-endian
			b, err := u.take(8)
			if err != nil {
				return nil, err
			}
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		case 'X', 0x8c, 0x8d, 'T', 'U', 'B', 'C', 0x8e: // strings and bytes
			var n int
			var err error
			switch op {
			case 'X', 'T', 'B':
				var v uint32
				v, err = u.u32()
				n = int(v)
				if v > uint32(len(u.data)) {
					n = -1
				}
			case 0x8c, 'U', 'C':
				n, err = u.u8()
			default: // BINUNICODE8, BINBYTES8
				n, err = u.u64len()
			}
			if err != nil {
				return nil, err
			}
			b, err := u.take(n)
			if err != nil {
				return nil, err
			}
			if op == 'B' || op == 'C' || op == 0x8e {
				u.push(append([]byte(nil), b...))
			} else {
				u.push(string(b))
			}
		case 't': // TUPLE
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(pyTuple(items))
		case 0x85, 0x86, 0x87: // TUPLE1..3
			n := int(op - 0x84)
			t := make(pyTuple, n)
			for i := n - 1; i >= 0; i-- {
				v, err := u.pop()
				if err != nil {
					return nil, err
				}
				t[i] = v
			}
			u.push(t)
		case 'l': // LIST
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(&pyList{items: items})
		case 'd': // DICT
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			d := &pyDict{}
			if err := d.setPairs(items); err != nil {
				return nil, err
			}
			u.push(d)
		case 'a': // APPEND
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			if err := u.appendTo([]any{v}); err != nil {
				return nil, err
			}
		case 'e', 0x90: // APPENDS, ADDITEMS
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if err := u.appendTo(items); err != nil {
				return nil, err
			}
		case 0x91: // FROZENSET
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(&pyList{items: items})
		case 's': // SETITEM
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			k, err := u.pop()
			if err != nil {
				return nil, err
			}
			if err := u.setItems([]any{k, v}); err != nil {
				return nil, err
			}
		case 'u': // SETITEMS
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if err := u.setItems(items); err != nil {
				return nil, err
			}
		case 'q', 'r': // BINPUT, LONG_BINPUT
			var idx uint32
			if op == 'q' {
				v, err := u.u8()
				if err != nil {
					return nil, err
				}
				idx = uint32(v)
			} else {
				v, err := u.u32()
				if err != nil {
					return nil, err
				}
				idx = v
			}
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.memo[idx] = v
		case 0x94: // MEMOIZE
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.memo[uint32(len(u.memo))] = v
		case 'h', 'j': // BINGET, LONG_BINGET
			var idx uint32
			if op == 'h' {
				v, err := u.u8()
				if err != nil {
					return nil, err
				}
				idx = uint32(v)
			} else {
				v, err := u.u32()
				if err != nil {
					return nil, err
				}
				idx = v
			}
			v, ok := u.memo[idx]
			if !ok {
				return nil, perr("pickle at byte %d reads memo %d, which was never stored", at, idx)
			}
			u.push(v)
		case 'c': // GLOBAL "module\nname\n"
			mod, err := u.line()
			if err != nil {
				return nil, err
			}
			name, err := u.line()
			if err != nil {
				return nil, err
			}
			g, err := lookupGlobal(mod, name)
			if err != nil {
				return nil, err
			}
			u.push(g)
		case 0x93: // STACK_GLOBAL
			nv, err := u.pop()
			if err != nil {
				return nil, err
			}
			mv, err := u.pop()
			if err != nil {
				return nil, err
			}
			mod, ok1 := mv.(string)
			name, ok2 := nv.(string)
			if !ok1 || !ok2 {
				return nil, perr("pickle STACK_GLOBAL at byte %d wants two strings", at)
			}
			g, err := lookupGlobal(mod, name)
			if err != nil {
				return nil, err
			}
			u.push(g)
		case 'R': // REDUCE
			args, err := u.pop()
			if err != nil {
				return nil, err
			}
			fn, err := u.pop()
			if err != nil {
				return nil, err
			}
			v, err := reduce(fn, args)
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 0x81: // NEWOBJ cls.__new__(cls, *args)
			if _, err := u.pop(); err != nil {
				return nil, err
			}
			cls, err := u.pop()
			if err != nil {
				return nil, err
			}
			g, ok := cls.(pyGlobal)
			if !ok || g.kind != gInert {
				return nil, perr("pickle at byte %d creates an object of %s; only inert bookkeeping objects are allowed", at, describe(cls))
			}
			u.push(pyOpaque{class: g.name})
		case 'b': // BUILD: obj.__setstate__(state); state is dropped
			if _, err := u.pop(); err != nil {
				return nil, err
			}
			obj, err := u.top()
			if err != nil {
				return nil, err
			}
			switch obj.(type) {
			case *pyDict, pyOpaque, *tensor:
			default:
				return nil, perr("pickle at byte %d sets the state of %s", at, describe(obj))
			}
		case 'Q': // BINPERSID
			pid, err := u.pop()
			if err != nil {
				return nil, err
			}
			if u.persid == nil {
				return nil, perr("pickle at byte %d refers to external data, but none is available", at)
			}
			v, err := u.persid(pid)
			if err != nil {
				return nil, err
			}
			u.push(v)
		default:
			if name, ok := opNames[op]; ok {
				return nil, perr("pickle opcode %s at byte %d is not supported", name, at)
			}
			return nil, perr("pickle has an unknown opcode 0x%02x at byte %d", op, at)
		}
	}
}

func decodeLong(b []byte) any {
	if len(b) > 8 {
		return pyBigInt{}
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if len(b) > 0 && len(b) < 8 && b[len(b)-1]&0x80 != 0 { // sign-extend
		v |= ^uint64(0) << (8 * len(b))
	}
	return int64(v)
}

func (u *unpickler) appendTo(items []any) error {
	obj, err := u.top()
	if err != nil {
		return err
	}
	l, ok := obj.(*pyList)
	if !ok {
		return perr("pickle at byte %d appends to %s, not a list", u.pos-1, describe(obj))
	}
	l.items = append(l.items, items...)
	return nil
}

func (u *unpickler) setItems(kv []any) error {
	obj, err := u.top()
	if err != nil {
		return err
	}
	d, ok := obj.(*pyDict)
	if !ok {
		return perr("pickle at byte %d sets items of %s, not a dict", u.pos-1, describe(obj))
	}
	return d.setPairs(kv)
}

func (d *pyDict) setPairs(kv []any) error {
	if len(kv)%2 != 0 {
		return perr("pickle gives a dict an odd number (%d) of keys and values", len(kv))
	}
	for i := 0; i < len(kv); i += 2 {
		d.set(kv[i], kv[i+1])
	}
	return nil
}

// set keeps insertion order; a repeated string key replaces the value, as
// in Python. (Linear search is avoided for string keys by the caller's
// flattening, which reports duplicates; here the last value wins.)
func (d *pyDict) set(k, v any) {
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

// get returns the value of a string key (the last one set).
func (d *pyDict) get(key string) (any, bool) {
	for i := len(d.keys) - 1; i >= 0; i-- {
		if s, ok := d.keys[i].(string); ok && s == key {
			return d.vals[i], true
		}
	}
	return nil, false
}

func lookupGlobal(mod, name string) (pyGlobal, error) {
	full := mod + "." + name
	g, ok := allowed[full]
	if !ok {
		return pyGlobal{}, &pickleError{refusal: true,
			msg: fmt.Sprintf("pickle asks for %s, which a checkpoint never needs; refusing to load", printable(full))}
	}
	g.name = full
	return g, nil
}

// printable keeps a name from the file safe for a one-line message.
func printable(s string) string {
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '-' || r == '…' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

func describe(v any) string {
	switch v := v.(type) {
	case pyGlobal:
		return v.name
	case pyOpaque:
		return "a " + v.class
	case nil, pyNone:
		return "None"
	case *pyDict:
		return "a dict"
	case *pyList:
		return "a list"
	case pyTuple:
		return "a tuple"
	case string:
		return "a string"
	case []byte:
		return "bytes"
	case int64, pyBigInt:
		return "an int"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	case *storage:
		return "a storage"
	case *tensor:
		return "a tensor"
	}
	return fmt.Sprintf("%T", v)
}

// describeValue is describe, with an int's value: never the whole of a
// value from the file, which may be nested millions deep.
func describeValue(v any) string {
	if n, ok := v.(int64); ok {
		return strconv.FormatInt(n, 10)
	}
	return describe(v)
}

// dims writes a tensor's size or stride for a message as %v would, its
// first eight entries at most.
func dims(d []int64) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, n := range d {
		if i == 8 {
			fmt.Fprintf(&sb, " … %d in all", len(d))
			break
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(strconv.FormatInt(n, 10))
	}
	sb.WriteByte(']')
	return sb.String()
}

// reduce applies an allow-listed callable. It never runs anything: each
// case builds the Go value the Python call would have produced.
func reduce(fn, argv any) (any, error) {
	g, ok := fn.(pyGlobal)
	if !ok {
		return nil, perr("pickle calls %s, which is not a function", describe(fn))
	}
	args, ok := argv.(pyTuple)
	if !ok {
		return nil, perr("pickle calls %s with %s instead of an argument tuple", g.name, describe(argv))
	}
	switch g.kind {
	case gOrderedDict:
		d := &pyDict{}
		if len(args) == 1 { // OrderedDict([(k, v), ...])
			if l, ok := args[0].(*pyList); ok {
				for _, it := range l.items {
					p, ok := it.(pyTuple)
					if !ok || len(p) != 2 {
						return nil, perr("pickle builds an OrderedDict from %s, not (key, value) pairs", describe(it))
					}
					d.set(p[0], p[1])
				}
				return d, nil
			}
		}
		if len(args) != 0 {
			return nil, perr("pickle calls collections.OrderedDict with %d arguments", len(args))
		}
		return d, nil
	case gRebuildTensorV2, gRebuildTensor:
		// (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
		if len(args) < 4 {
			return nil, perr("pickle calls %s with %d arguments, want at least 4", g.name, len(args))
		}
		st, ok := args[0].(*storage)
		if !ok {
			return nil, perr("pickle rebuilds a tensor from %s, not a storage", describe(args[0]))
		}
		off, ok := args[1].(int64)
		if !ok || off < 0 {
			return nil, perr("pickle rebuilds a tensor at storage offset %s", describeValue(args[1]))
		}
		size, err := intTuple(args[2], "size")
		if err != nil {
			return nil, err
		}
		stride, err := intTuple(args[3], "stride")
		if err != nil {
			return nil, err
		}
		if len(size) != len(stride) {
			return nil, perr("pickle rebuilds a tensor of size %s with stride %s", dims(size), dims(stride))
		}
		return &tensor{st: st, offset: off, size: size, stride: stride}, nil
	case gRebuildParameter, gRebuildParameterWithState:
		// (data, requires_grad, backward_hooks[, state])
		if len(args) < 1 {
			return nil, perr("pickle calls %s with no arguments", g.name)
		}
		if _, ok := args[0].(*tensor); !ok {
			return nil, perr("pickle makes a parameter of %s, not a tensor", describe(args[0]))
		}
		return args[0], nil
	case gRebuildFromTypeV2:
		// (func, new_type, args, state): func(*args), retyped
		if len(args) < 3 {
			return nil, perr("pickle calls %s with %d arguments, want 4", g.name, len(args))
		}
		if t, ok := args[1].(pyGlobal); !ok || t.kind != gTensorType {
			return nil, perr("pickle rebuilds a tensor as %s", describe(args[1]))
		}
		inner, ok := args[0].(pyGlobal)
		if !ok || inner.kind == gRebuildFromTypeV2 {
			return nil, perr("pickle rebuilds a tensor with %s", describe(args[0]))
		}
		return reduce(inner, args[2])
	case gInert:
		return pyOpaque{class: g.name}, nil
	}
	return nil, perr("pickle calls %s, which is not callable here", g.name)
}

func intTuple(v any, what string) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, perr("pickle gives a tensor %s of %s, not a tuple", what, describe(v))
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, perr("pickle gives a tensor %s holding %s, not a count", what, describeValue(x))
		}
		out[i] = n
	}
	return out, nil
}
