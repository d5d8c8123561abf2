package gl

import (
	"fmt"
	"runtime"

	gl "github.com/go-gl/gl/v4.3-core/gl"
)

// copier runs buffer copies on a second context that shares the main
// one's objects, on a thread of its own, so that the GPU may copy parked
// tensors back (Unpark) while the main context's dispatches run, where
// the driver serves the second context from a copy engine. A copy leaves
// a fence on its destination (buffer.pending); the main context waits for
// it on the GPU (glWaitSync) before the first command that touches the
// buffer (settle), not on the host.
//
// It is an experiment, off unless GLIMMER_GL_ASYNCPARK=1: --offload's
// U-Net weights (the largest, used only in the second half of a step)
// could come back behind the first half of the first step instead of
// before it, about 11 ms at 52 GB/s. On an H100 it gained nothing (p25 in
// docs/perf-notes.md: 1133 against 1126 ms an image, one call), and
// there the copies were not --offload's cost: fresh allocations were
// (unparking into the tensors' own storage took 1080 ms, the plain
// path 1060). --offload now copies into one region made once (p26), so
// the copies are what is left to hide: not yet timed. TestPark and
// TestParkRegion check it bit for bit on llvmpipe and on the NVIDIA
// driver.
type copier struct {
	work chan func()
	done chan struct{}
}

// newCopier starts the copier's thread and context, or returns nil where
// the platform offers no shared context. GL thread only (ctx is current).
func newCopier(ctx platformContext) *copier {
	c := &copier{work: make(chan func()), done: make(chan struct{})}
	ok := make(chan bool)
	go func() {
		defer close(c.done)
		runtime.LockOSThread() // the shared context is current on this thread only
		defer runtime.UnlockOSThread()
		sc, err := ctx.share()
		ok <- err == nil
		if err != nil {
			return
		}
		for f := range c.work {
			f()
		}
		sc.close()
	}()
	if !<-ok {
		return nil
	}
	return c
}

// do runs f on the copier's context and returns when f has (its GL
// commands are queued there, not necessarily done).
func (c *copier) do(f func()) {
	done := make(chan struct{})
	c.work <- func() { f(); close(done) }
	<-done
}

// close ends the copier's thread and context.
func (c *copier) close() {
	close(c.work)
	<-c.done
}

// copyAsync copies bytes from the start of buffer src to dst (at its
// offset) on the copier's context, after what the main context has
// queued, and marks dst's root pending until the copy is done. GL thread
// only.
//
// The copy must see dst's storage, which the main context made, and come
// after what the main context queued that touches it: a fence after that
// work, which the copier's context waits for. Where the copier is still
// copying into dst's root (another range of --offload's region), the main
// context has not touched the root since the copy before (that would
// have settled it), and the copier's context runs this copy after that
// one, which waited for everything before it: so no new fence, and no
// wait here either, which would hold the main context's next dispatches
// (those touching other buffers too) behind every copy but the last.
func (b *Backend) copyAsync(src uint32, dst *buffer, bytes int) {
	root := dst.whole()
	id, start := dst.name()
	prev := root.pending
	var made uintptr
	if prev == 0 {
		made = gl.FenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0)
		gl.Flush()
	}
	var copied uintptr
	var failed uint32 // the copier context's GL error, which checkGL here does not see
	b.copier.do(func() {
		if made != 0 {
			gl.WaitSync(made, 0, gl.TIMEOUT_IGNORED)
		}
		gl.BindBuffer(gl.COPY_READ_BUFFER, src)
		gl.BindBuffer(gl.COPY_WRITE_BUFFER, id)
		gl.CopyBufferSubData(gl.COPY_READ_BUFFER, gl.COPY_WRITE_BUFFER, 0, start, bytes)
		copied = gl.FenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0)
		gl.Flush()
		failed = gl.GetError()
	})
	if made != 0 {
		gl.DeleteSync(made) // deleted once no wait needs it
	}
	if prev != 0 {
		gl.DeleteSync(prev) // copied signals after it: waiting on copied covers both
	}
	root.pending = copied
	if failed != gl.NO_ERROR {
		b.setErr(fmt.Errorf("gl: unpark %d bytes on the copier's context: GL error 0x%x", bytes, failed))
	}
}

// settle makes the main context wait, on the GPU, for a copier's copy
// into s (or its root) before what it queues next. GL thread only.
func (b *Backend) settle(s *buffer) {
	s = s.whole()
	if s.pending == 0 {
		return
	}
	gl.WaitSync(s.pending, 0, gl.TIMEOUT_IGNORED)
	gl.DeleteSync(s.pending)
	s.pending = 0
}
