package gl

/*
#include <stddef.h>

// glBufferStorage (OpenGL 4.4, GL_ARB_buffer_storage) is not in go-gl's
// 4.3 core profile: the backend looks it up and calls it through here.
typedef void (*glimmer_buffer_storage_fn)(unsigned int target, ptrdiff_t size, const void *data, unsigned int flags);

static void glimmer_buffer_storage(void *fn, unsigned int target, ptrdiff_t size, const void *data, unsigned int flags) {
	((glimmer_buffer_storage_fn)fn)(target, size, data, flags);
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	gl "github.com/go-gl/gl/v4.3-core/gl"

	"glimmer/engine"
)

// glBufferStorage's flags (OpenGL 4.4; not in go-gl's 4.3 profile).
const (
	glMapReadBit       = 0x0001
	glMapPersistentBit = 0x0040
	glClientStorageBit = 0x0200
)

// parked is a tensor's bytes in a buffer object of host memory (client
// storage) that the GPU copies to and from itself.
type parked struct {
	id    uint32
	bytes int
}

func (p *parked) Bytes() int { return p.bytes }

// Park copies t's bytes into a new buffer of host memory, in queue order
// (engine.HostStore): glBufferStorage with GL_CLIENT_STORAGE_BIT, which
// puts it in system memory, and glCopyBufferSubData, which the GPU runs
// at the bus's speed with no host copy. ok is false, with nothing done,
// where the driver lacks glBufferStorage or cannot allocate the buffer,
// and with GLIMMER_GL_PARK=0 (b.park); the caller then keeps a host copy
// of its own (nn.Offload). On the H100 a parked copy took no video memory
// (GL_NVX_gpu_memory_info) and unparked at 52 GB/s: --offload's image
// 1431 -> 1272 ms (docs/perf-notes.md, p15).
func (b *Backend) Park(t *engine.Tensor) (engine.Parked, bool) {
	if b.bufferStorage == nil || !b.park {
		return nil, false
	}
	s := buf(t)
	p := &parked{bytes: s.bytes}
	ok := false
	b.call(func() {
		b.hazards.host()
		gl.GenBuffers(1, &p.id)
		gl.BindBuffer(gl.COPY_WRITE_BUFFER, p.id)
		b.checkGL("park") // an earlier error is not this allocation's
		C.glimmer_buffer_storage(b.bufferStorage, C.uint(gl.COPY_WRITE_BUFFER), C.ptrdiff_t(p.bytes), nil,
			C.uint(glClientStorageBit|glMapReadBit|glMapPersistentBit))
		if gl.GetError() != gl.NO_ERROR {
			gl.DeleteBuffers(1, &p.id)
			return
		}
		id, start := s.name()
		gl.BindBuffer(gl.COPY_READ_BUFFER, id)
		gl.CopyBufferSubData(gl.COPY_READ_BUFFER, gl.COPY_WRITE_BUFFER, start, 0, p.bytes)
		if gl.GetError() != gl.NO_ERROR { // t stays; the caller copies it itself
			gl.DeleteBuffers(1, &p.id)
			return
		}
		ok = true
	})
	if !ok {
		return nil, false
	}
	return p, true
}

// Unpark copies p's bytes into t (of p's size), in queue order.
func (b *Backend) Unpark(t *engine.Tensor, p engine.Parked) {
	s, h := buf(t), p.(*parked)
	if s.bytes != h.bytes {
		panic(fmt.Sprintf("gl: Unpark of %d bytes into %v", h.bytes, t))
	}
	b.enqueue(func() {
		b.hazards.host()
		id, start := s.name()
		gl.BindBuffer(gl.COPY_READ_BUFFER, h.id)
		gl.BindBuffer(gl.COPY_WRITE_BUFFER, id)
		gl.CopyBufferSubData(gl.COPY_READ_BUFFER, gl.COPY_WRITE_BUFFER, 0, start, h.bytes)
		b.checkGL(fmt.Sprintf("unpark %d bytes", h.bytes))
	})
}

// Drop frees p's host memory.
func (b *Backend) Drop(p engine.Parked) {
	h := p.(*parked)
	b.enqueue(func() { gl.DeleteBuffers(1, &h.id) })
}

var _ engine.HostStore = (*Backend)(nil)

// lookupBufferStorage returns glBufferStorage's entry point where the
// context offers it (OpenGL 4.4 or GL_ARB_buffer_storage), else nil. GL
// thread only.
func lookupBufferStorage(ctx platformContext, major, minor int32) unsafe.Pointer {
	if major == 4 && minor < 4 && !hasExtension("GL_ARB_buffer_storage") {
		return nil
	}
	return ctx.procAddress("glBufferStorage")
}
