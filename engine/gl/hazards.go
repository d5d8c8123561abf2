package gl

import (
	"regexp"
	"slices"
	"strconv"

	gl "github.com/go-gl/gl/v4.3-core/gl"
)

// Shader writes to storage buffers are incoherent in OpenGL: a dispatch
// that reads what an earlier one wrote, or writes what an earlier one
// still reads, needs a glMemoryBarrier between them, and the barrier also
// keeps the GPU from overlapping the two. Most of the U-Net's dispatches
// depend on the one before, but not all: the self-attention's q, k and v
// projections read the same normalised tokens and write three buffers,
// and a Winograd convolution's filter transform needs nothing its input
// transform writes. So rather than a barrier after every dispatch, the
// backend tracks which buffers the dispatches since the last barrier
// read and wrote, and places a barrier only before a dispatch that would
// read or overwrite one of those writes, or overwrite one of those reads.
//
// Which bindings a shader writes comes from its source: a binding all of
// whose declarations are readonly is read, every other one written
// (declarations in #if blocks the defines leave out count too, which
// only adds barriers). GLIMMER_GL_BARRIERS=all puts the barrier back
// after every dispatch.

// barrierBits makes shader writes visible to later shaders' storage
// buffer accesses and to buffer reads and writes from the host.
const barrierBits = gl.SHADER_STORAGE_BARRIER_BIT | gl.BUFFER_UPDATE_BARRIER_BIT

// hazards are the buffer ranges read and written since the last
// barrier. GL thread only.
type hazards struct {
	reads, writes []span
	barriers      int // barriers placed (tests)
}

// span is the bytes [lo, hi) of GL buffer id: a tensor's whole buffer,
// or a Sub's range of its root's (nn.Pool's arena holds many tensors, and
// one of them touches no other).
type span struct {
	id     uint32
	lo, hi int
}

func spanOf(s *buffer) span {
	id, start := s.name()
	return span{id, start, start + s.bytes}
}

// touches reports whether any of ss overlaps x.
func touches(ss []span, x span) bool {
	return slices.ContainsFunc(ss, func(s span) bool { return s.id == x.id && s.lo < x.hi && x.lo < s.hi })
}

// before places a barrier ahead of a dispatch of p over bufs where it
// depends on the dispatches since the last barrier, then records the
// dispatch's accesses. With all it does nothing: the barrier after every
// dispatch already orders them.
func (h *hazards) before(p *program, bufs []*buffer, all bool) {
	if all {
		return
	}
	need := false
	for i, s := range bufs {
		x := spanOf(s)
		if touches(h.writes, x) || !p.reads(i) && touches(h.reads, x) {
			need = true
			break
		}
	}
	if need {
		h.barrier()
	}
	for i, s := range bufs {
		if p.reads(i) {
			h.reads = append(h.reads, spanOf(s))
		} else {
			h.writes = append(h.writes, spanOf(s))
		}
	}
}

// host places a barrier ahead of a host read or write of a buffer when
// any dispatch since the last barrier may touch memory the host will.
func (h *hazards) host() {
	if len(h.writes) > 0 || len(h.reads) > 0 {
		h.barrier()
	}
}

func (h *hazards) barrier() {
	gl.MemoryBarrier(barrierBits)
	h.reads, h.writes = h.reads[:0], h.writes[:0]
	h.barriers++
}

// reads reports whether the dispatch only reads binding i.
func (p *program) reads(i int) bool { return i < len(p.readOnly) && p.readOnly[i] }

// bufferDecl matches a storage buffer's declaration: its layout
// arguments and the qualifiers between them and "buffer".
var bufferDecl = regexp.MustCompile(`layout\s*\(([^)]*)\)\s*((?:[a-z]+\s+)*)buffer\b`)

var (
	bindingArg   = regexp.MustCompile(`binding\s*=\s*(\w+)`)
	readonlyQual = regexp.MustCompile(`\breadonly\b`)
)

// readOnlyBindings lists, for a shader's source and its defines, which
// bindings are declared readonly everywhere. A written binding named by
// a macro the defines do not give makes every binding count as written.
func readOnlyBindings(src string, d defines) []bool {
	written := map[int]bool{}
	for _, m := range bufferDecl.FindAllStringSubmatch(src, -1) {
		ro := readonlyQual.MatchString(m[2])
		n := -1
		if a := bindingArg.FindStringSubmatch(m[1]); a != nil {
			if v, err := strconv.Atoi(a[1]); err == nil {
				n = v
			} else if v, ok := d[a[1]]; ok {
				n = v
			}
		}
		switch {
		case n >= 0:
			written[n] = written[n] || !ro
		case !ro:
			return nil // written somewhere unknown
		}
		// An unresolved readonly declaration (a binding macro in a block
		// the defines leave out) marks nothing read-only.
	}
	out := []bool{}
	for n, w := range written {
		for len(out) <= n {
			out = append(out, false)
		}
		out[n] = !w
	}
	return out
}
