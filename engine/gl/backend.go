// Package gl is the engine's OpenGL backend: every op of engine.Ops as a
// GLSL compute shader (see the shaders folder), run on a headless OpenGL
// 4.3+ core context — EGL on Linux, a hidden-window WGL context on Windows.
//
// One OS thread owns the context. Every GL call is marshalled onto it
// through a queue: ops are queued and return at once; Read and Sync wait.
// GL errors found on that thread are kept and returned by the next Read or
// Sync, since an op has no error result.
package gl

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	gl "github.com/go-gl/gl/v4.3-core/gl"
	"github.com/x448/float16"

	"glimmer/engine"
)

// platformContext is the window-system part: a context made current on the
// thread that opened it.
type platformContext interface {
	procAddress(name string) unsafe.Pointer
	platform() string
	close()
}

// Limits are what the driver reports that shapes dispatches and shaders.
type Limits struct {
	MaxGroupCount  [3]int // GL_MAX_COMPUTE_WORK_GROUP_COUNT
	MaxGroupInvoc  int    // GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS
	MaxSharedBytes int    // GL_MAX_COMPUTE_SHARED_MEMORY_SIZE
	MaxSSBOBytes   int    // GL_MAX_SHADER_STORAGE_BLOCK_SIZE
	SSBOAlign      int    // GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT: a bound range's start, in bytes
	SubgroupSize   int    // compute shaders' subgroup size where they have shuffles and clustered reductions (GL_KHR_shader_subgroup), else 0
}

// Backend runs engine ops as compute shaders. Create it with New.
type Backend struct {
	engine.MemCounter
	queue chan func()
	wg    sync.WaitGroup // the GL thread

	// Owned by the GL thread.
	ctx      platformContext
	programs map[string]*program
	freqs    map[engine.TimestepParams]uint32 // timestep frequency tables
	err      error                            // first error since the last Sync
	profile  *profile                         // per-shader GPU time, when profiling
	hazards  hazards                          // buffers touched since the last memory barrier

	// Set once at start.
	renderer, version, platform string
	limits                      Limits
	bufferStorage               unsafe.Pointer // glBufferStorage, or nil (park.go)
	gemmBK                      int            // K slice depth of the 128-wide GEMM tiles
	fullGrid                    int            // fewer 128-wide GEMM tiles than this take 64-wide ones
	splitTarget, splitMinK      int            // GEMMs of fewer groups split K (chunks >= splitMinK) toward splitTarget groups
	splitFew                    int            // below this many groups, chunks >= splitMinK/4 (GLIMMER_GEMM_SPLITFEW)
	halfMin, halfMax            int            // 128x128 products of halfMin up to halfMax (and fullGrid) tiles and K <= halfMaxK take 128x64 tiles of 128 threads (GLIMMER_GEMM_HALFMIN, 0 never; GLIMMER_GEMM_HALFMAX)
	wave                        int            // grids that fill 90% of their last wave of this many groups stay unsplit (GLIMMER_GEMM_WAVE; 0: off)
	fill                        bool           // K splits stop at a grid within 10% of one wave (GLIMMER_GEMM_FILL=0: they go on)
	attnMinGroups               int            // attention grids of fewer groups halve their rows (attnConfig; GLIMMER_GL_ATTN_MINGROUPS)
	splitWave                   int            // > 0: K splits by the wave model (waveSplit), a group's fixed cost in K (GLIMMER_GEMM_SPLITWAVE; 0: the doubling rule)
	waveAll                     bool           // the wave model splits every tile, not only 128x128 (GLIMMER_GEMM_WAVEALL=1; 20 ms an image slower, H100, p23)
	pf2Rows                     int            // MatMul's 128x128 tiles of products of at least this many rows load two K slices ahead (GLIMMER_GEMM_PF2=0: never)
	gnChunks                    int            // GroupNorm's chunks a row: > 0 forced (tests), < 0 one work group a row, 0 groupNormChunks decides
	convConst                   int            // Conv2D's gather constants: 0 none, 1 a square kernel's size, 2 also the output width
	convFoldMode                int            // Conv2D's images as one GEMM: 0 never, 1 small maps, 2 every whole-vec4 map (convFold)
	winoMinPixels               int            // folded convolutions of maps under this many pixels skip Winograd (GLIMMER_GL_WINO_MINPX)
	winograd                    bool           // 3x3, stride 1, padding 1 convolutions by Winograd F(2x2, 3x3) (winograd.go)
	winoF4                      int            // Winograd F(4x4, 3x3): 0 never, 1 for Fast convolutions where it pays, 2 whenever it fits (winoTile)
	winoUCap, winoVCap          int            // bytes Winograd's U, and its V and M each, may take (winoUMax, winoVMax; GLIMMER_GL_WINO_UMB, _VMB; GLIMMER_GL_WINO_MB all three)
	splitCap                    int            // bytes split-K partial sums may take (gemmSplitMax; GLIMMER_GEMM_SPLITMB)
	winoOutVec                  bool           // the output transform stores whole vec2/vec4 rows where they fit (GLIMMER_GL_WINO_OUTV=0: never)
	park                        bool           // Park offers host copies the GPU copies itself (GLIMMER_GL_PARK=0: never)
	extraDefs                   defines        // added to every shader's defines (GLIMMER_GL_DEFS="NAME=1,..."; tuning only)
	barrierAll                  bool           // a memory barrier after every dispatch (GLIMMER_GL_BARRIERS=all) instead of only where hazards.go finds a dependency
	flushAt                     int            // > 0: glFlush after the flushAt-th, 2·flushAt-th, 4·flushAt-th ... dispatch since the host last waited (GLIMMER_GL_FLUSH; 4 unless set)
	sinceHost                   int            // dispatches since the host last waited on the GPU; GL thread only
	fences                      int            // fences placed and not yet waited on and freed; GL thread only

	// Used by the goroutine queueing ops (MatMul, Conv2D).
	gemmForce *gemmPlan // a plan for every GEMM (tests, benchmarks), or nil
	splitBuf  *buffer   // split-K partial sums, grown on demand
	winoU     *buffer   // Winograd's transformed filters, grown on demand
	winoV     *buffer   // Winograd's transformed input, grown on demand

	mu     sync.Mutex
	closed bool
}

// planDefaults sets the GEMM planner's tuning (gemmPlan) and the
// convolutions' choice of path (convFold, useWinograd) to what New starts
// with, before the environment's overrides.
func (b *Backend) planDefaults() {
	b.gemmBK, b.fullGrid, b.splitTarget, b.splitMinK, b.splitFew = 8, 256, 512, 256, 128
	b.halfMin, b.halfMax, b.wave, b.fill = 64, 200, 264, true
	b.attnMinGroups = 100
	b.splitWave = 64
	b.convFoldMode, b.winoMinPixels = 1, 128
	b.winoUCap, b.winoVCap, b.splitCap = winoUMax, winoVMax, gemmSplitMax
}

// New opens a headless OpenGL context on a thread of its own. It fails with
// a clear error when no context with OpenGL 4.3 compute shaders exists,
// naming the renderer and version it found.
func New() (*Backend, error) {
	b := &Backend{
		queue:    make(chan func(), 1024),
		programs: map[string]*program{},
		freqs:    map[engine.TimestepParams]uint32{},
	}
	b.planDefaults()
	started := make(chan error, 1)
	b.wg.Add(1)
	go b.loop(started)
	if err := <-started; err != nil {
		b.wg.Wait()
		return nil, err
	}
	return b, nil
}

func (b *Backend) loop(started chan<- error) {
	defer b.wg.Done()
	runtime.LockOSThread() // the context is current on this thread only
	defer runtime.UnlockOSThread()
	ctx, err := openContext()
	if err != nil {
		started <- fmt.Errorf("gl: %w", err)
		return
	}
	if err := b.init(ctx); err != nil {
		ctx.close()
		started <- err
		return
	}
	b.ctx = ctx
	started <- nil
	for f := range b.queue {
		f()
	}
	for _, p := range b.programs {
		gl.DeleteProgram(p.id)
	}
	ctx.close()
}

func (b *Backend) init(ctx platformContext) error {
	if err := gl.InitWithProcAddrFunc(ctx.procAddress); err != nil {
		// go-gl fails when a 4.3 core entry point is missing; say what the
		// driver is, if it answers at all.
		return fmt.Errorf("gl: the OpenGL driver lacks OpenGL 4.3 (%v) on %s", err, ctx.platform())
	}
	b.renderer = gl.GoStr(gl.GetString(gl.RENDERER))
	b.version = gl.GoStr(gl.GetString(gl.VERSION))
	b.platform = ctx.platform()
	var major, minor int32
	gl.GetIntegerv(gl.MAJOR_VERSION, &major)
	gl.GetIntegerv(gl.MINOR_VERSION, &minor)
	if major < 4 || (major == 4 && minor < 3) {
		return fmt.Errorf("gl: OpenGL 4.3 with compute shaders is required; found %q, OpenGL %s", b.renderer, b.version)
	}
	b.bufferStorage = lookupBufferStorage(ctx, major, minor)
	for i := range 3 {
		var v int32
		gl.GetIntegeri_v(gl.MAX_COMPUTE_WORK_GROUP_COUNT, uint32(i), &v)
		b.limits.MaxGroupCount[i] = int(v)
	}
	var v int32
	gl.GetIntegerv(gl.MAX_COMPUTE_WORK_GROUP_INVOCATIONS, &v)
	b.limits.MaxGroupInvoc = int(v)
	gl.GetIntegerv(gl.MAX_COMPUTE_SHARED_MEMORY_SIZE, &v)
	b.limits.MaxSharedBytes = int(v)
	gl.GetIntegerv(gl.MAX_SHADER_STORAGE_BLOCK_SIZE, &v)
	b.limits.MaxSSBOBytes = int(uint32(v))
	gl.GetIntegerv(gl.SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT, &v)
	b.limits.SSBOAlign = int(v)
	b.limits.SubgroupSize = subgroupSize()
	if b.limits.MaxGroupInvoc < 256 || b.limits.MaxSharedBytes < 16384 {
		return fmt.Errorf("gl: %q (OpenGL %s) allows %d invocations and %d bytes of shared memory per work group; 256 and 16384 are needed",
			b.renderer, b.version, b.limits.MaxGroupInvoc, b.limits.MaxSharedBytes)
	}
	switch os.Getenv("GLIMMER_GL_PROFILE") {
	case "1":
		b.profile = newProfile(false)
	case "ts":
		b.profile = newProfile(true)
	}
	// K slices of 8 measured faster than 16 on the H200 (25.2 against
	// 16.8 TFLOP/s at 4096³: 16 doubles shared memory per group, halving
	// occupancy). GLIMMER_GEMM_BK overrides for tuning.
	if v := os.Getenv("GLIMMER_GEMM_BK"); v == "8" || v == "16" {
		b.gemmBK, _ = strconv.Atoi(v)
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_FULLGRID")); err == nil {
		b.fullGrid = v
	}
	b.winograd = os.Getenv("GLIMMER_GL_WINOGRAD") != "0"
	b.winoF4 = 1
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_WINO_F4")); err == nil {
		b.winoF4 = v
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_WINO_UMB")); err == nil && v > 0 {
		b.winoUCap = v << 20
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_WINO_VMB")); err == nil && v > 0 {
		b.winoVCap = v << 20
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_WINO_MB")); err == nil && v > 0 {
		b.winoUCap, b.winoVCap = v<<20, v<<20
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_SPLITMB")); err == nil && v > 0 {
		b.splitCap = v << 20
	}
	b.barrierAll = os.Getenv("GLIMMER_GL_BARRIERS") == "all"
	// Flushing after the 4th, 8th, 16th ... dispatch since the host last
	// waited ran SD 1.5's steps 0.23 and 0.30 ms faster on an H100 in two
	// calls (56.53 against 56.76 ms, 56.40 against 56.70); 0 turns it off.
	b.flushAt = 4
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_FLUSH")); err == nil {
		b.flushAt = v
	}
	b.extraDefs = defines{}
	for _, kv := range strings.Split(os.Getenv("GLIMMER_GL_DEFS"), ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if v, err := strconv.Atoi(val); ok && err == nil && name != "" {
			b.extraDefs[name] = v
		}
	}
	b.convConst = 1
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_CONVCONST")); err == nil {
		b.convConst = v
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_CONVFOLD")); err == nil {
		b.convFoldMode = v
	}
	b.winoOutVec = os.Getenv("GLIMMER_GL_WINO_OUTV") != "0"
	b.park = os.Getenv("GLIMMER_GL_PARK") != "0"
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_WINO_MINPX")); err == nil {
		b.winoMinPixels = v
	}
	if os.Getenv("GLIMMER_GL_GROUPNORM") == "single" {
		b.gnChunks = -1
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_SPLITFEW")); err == nil {
		b.splitFew = v // 0: splitMinK always
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_HALFMIN")); err == nil {
		b.halfMin = v
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_SPLIT")); err == nil {
		b.splitTarget = v // 0: never split K
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_HALFMAX")); err == nil {
		b.halfMax = v
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_WAVE")); err == nil {
		b.wave = v
	}
	b.waveAll = os.Getenv("GLIMMER_GEMM_WAVEALL") == "1"
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GEMM_SPLITWAVE")); err == nil {
		b.splitWave = v
	}
	if v, err := strconv.Atoi(os.Getenv("GLIMMER_GL_ATTN_MINGROUPS")); err == nil {
		b.attnMinGroups = v // 0: the head dim's grid whatever the call's size
	}
	if os.Getenv("GLIMMER_GEMM_FILL") == "0" {
		b.fill = false
	}
	b.pf2Rows = 2048
	if os.Getenv("GLIMMER_GEMM_PF2") == "0" {
		b.pf2Rows = 0
	}
	if e := gl.GetError(); e != gl.NO_ERROR {
		return fmt.Errorf("gl: GL error 0x%x while reading limits of %q", e, b.renderer)
	}
	return nil
}

// Name names the backend and its device.
func (b *Backend) Name() string {
	return fmt.Sprintf("gl (%s; OpenGL %s; %s)", b.renderer, b.version, b.platform)
}

// Renderer is the driver's GL_RENDERER string.
func (b *Backend) Renderer() string { return b.renderer }

// Limits returns the driver's compute limits.
func (b *Backend) Limits() Limits { return b.limits }

// enqueue runs f on the GL thread after everything queued before it.
func (b *Backend) enqueue(f func()) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		panic("gl: backend used after Close")
	}
	b.queue <- f
}

// call runs f on the GL thread and waits for it.
func (b *Backend) call(f func()) {
	done := make(chan struct{})
	b.enqueue(func() { f(); close(done) })
	<-done
}

// setErr keeps the first error; GL thread only.
func (b *Backend) setErr(err error) {
	if b.err == nil {
		b.err = err
	}
}

// checkGL records a pending GL error for what; GL thread only.
func (b *Backend) checkGL(what string) {
	if e := gl.GetError(); e != gl.NO_ERROR {
		b.setErr(fmt.Errorf("gl: %s: GL error 0x%x", what, e))
	}
}

// Sync waits for all queued work and returns the first error since the
// last Sync.
func (b *Backend) Sync() error {
	var err error
	b.call(func() {
		gl.Finish()
		b.sinceHost = 0
		b.checkGL("finish")
		err, b.err = b.err, nil
	})
	return err
}

// Close frees the context and its thread.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	err := b.Sync()
	b.mu.Lock()
	b.closed = true
	close(b.queue)
	b.mu.Unlock()
	b.wg.Wait()
	return err
}

// buffer is a shader storage buffer holding one tensor, or (a Sub) the
// range of bytes from off of its root's buffer.
type buffer struct {
	id    uint32 // set on the GL thread before any use of it there
	bytes int
	root  *buffer // a Sub's whole buffer, else nil
	off   int     // a Sub's first byte in root
}

func (s *buffer) Bytes() int { return s.bytes }

// name is the GL buffer that holds s, and start its first byte there.
// GL thread only (a root's id is set there).
func (s *buffer) name() (id uint32, start int) {
	if s.root != nil {
		return s.root.id, s.off
	}
	return s.id, 0
}

// subAlignBytes is the least byte alignment of a Sub's start: 256, the
// most OpenGL lets GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT be (llvmpipe
// asks 16), which also starts every sub on a fresh cache line; subAlign
// takes the driver's where it asks more.
const subAlignBytes = 256

func (b *Backend) subAlign() int {
	a := subAlignBytes
	for a < b.limits.SSBOAlign {
		a *= 2
	}
	return a
}

// Sub returns a tensor of the dtype over t's buffer from element off
// (engine.Suballocator): dispatches bind its range, and Write and Read
// touch only it. Free leaves it; freeing t ends it.
func (b *Backend) Sub(t *engine.Tensor, off int, dtype engine.DType, shape ...int) *engine.Tensor {
	s := buf(t)
	bytes := storageBytes(dtype, engine.Shape(shape).Numel())
	if s.root != nil || t.DType() != engine.F32 || off < 0 || (4*off)%b.subAlign() != 0 || 4*off+bytes > s.bytes {
		panic(fmt.Sprintf("gl: Sub %v %v at element %d of %v", dtype, shape, off, t))
	}
	return engine.NewTensor(shape, dtype, &buffer{bytes: bytes, root: s, off: 4 * off})
}

// SubAlign is subAlign in elements.
func (b *Backend) SubAlign() int { return b.subAlign() / 4 }

// SubSpan is the 32-bit words n elements of dtype take (storageBytes).
func (b *Backend) SubSpan(dtype engine.DType, n int) int { return storageBytes(dtype, n) / 4 }

func buf(t *engine.Tensor) *buffer {
	s, ok := t.Storage().(*buffer)
	if !ok {
		panic(fmt.Sprintf("gl: %v does not belong to the GL backend", t))
	}
	return s
}

// storageBytes rounds up so F16 tensors fill whole 32-bit words.
func storageBytes(dtype engine.DType, n int) int {
	bytes := n * dtype.Size()
	return max((bytes+3)&^3, 4)
}

// New allocates a tensor; its contents are undefined.
func (b *Backend) New(dtype engine.DType, shape ...int) *engine.Tensor {
	s := &buffer{bytes: storageBytes(dtype, engine.Shape(shape).Numel())}
	t := engine.NewTensor(shape, dtype, s)
	b.Alloc(int64(s.bytes))
	b.enqueue(func() {
		gl.GenBuffers(1, &s.id)
		gl.BindBuffer(gl.SHADER_STORAGE_BUFFER, s.id)
		gl.BufferData(gl.SHADER_STORAGE_BUFFER, s.bytes, nil, gl.DYNAMIC_COPY)
		b.checkGL(fmt.Sprintf("allocate %d bytes", s.bytes))
	})
	return t
}

// Write copies host values into t, rounding to its dtype.
func (b *Backend) Write(t *engine.Tensor, src []float32) {
	if len(src) != t.Numel() {
		panic(fmt.Sprintf("gl: Write of %d values into %v", len(src), t))
	}
	raw := make([]byte, storageBytes(t.DType(), t.Numel()))
	if t.DType() == engine.F16 {
		for i, v := range src {
			h := float16.Fromfloat32(v)
			raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
		}
	} else {
		copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 4*len(src)))
	}
	b.upload(t, raw)
}

// rawDirectBytes: WriteRaw hands src of at least this size to the driver
// directly, waiting for the GL thread to take it, rather than copying it
// to be uploaded later: for weights (tens of MB each, a model's 2 GB, or
// --offload's 0.27 GiB per image) the copy costs more than the wait.
const rawDirectBytes = 4 << 20

// WriteRaw copies little-endian bytes in t's dtype into t.
func (b *Backend) WriteRaw(t *engine.Tensor, src []byte) {
	if len(src) != t.Bytes() {
		panic(fmt.Sprintf("gl: WriteRaw of %d bytes into %v", len(src), t))
	}
	if len(src) >= rawDirectBytes {
		s := buf(t)
		b.call(func() {
			b.hazards.host()
			id, start := s.name()
			gl.BindBuffer(gl.SHADER_STORAGE_BUFFER, id)
			gl.BufferSubData(gl.SHADER_STORAGE_BUFFER, start, len(src), gl.Ptr(src))
			b.checkGL("upload")
		})
		return
	}
	raw := make([]byte, storageBytes(t.DType(), t.Numel()))
	copy(raw, src)
	b.upload(t, raw)
}

func (b *Backend) upload(t *engine.Tensor, raw []byte) {
	s := buf(t)
	b.enqueue(func() {
		b.hazards.host()
		id, start := s.name()
		gl.BindBuffer(gl.SHADER_STORAGE_BUFFER, id)
		gl.BufferSubData(gl.SHADER_STORAGE_BUFFER, start, len(raw), gl.Ptr(raw))
		b.checkGL("upload")
	})
}

// Read returns t's values as float32, after all queued work.
func (b *Backend) Read(t *engine.Tensor) ([]float32, error) {
	s := buf(t)
	n := t.Numel()
	raw := make([]byte, storageBytes(t.DType(), n))
	var err error
	b.call(func() {
		b.hazards.host()
		id, start := s.name()
		gl.BindBuffer(gl.SHADER_STORAGE_BUFFER, id)
		gl.GetBufferSubData(gl.SHADER_STORAGE_BUFFER, start, len(raw), gl.Ptr(raw))
		b.sinceHost = 0
		b.checkGL("read back")
		err, b.err = b.err, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if t.DType() == engine.F16 {
		for i := range out {
			out[i] = float16.Frombits(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8).Float32()
		}
	} else {
		copy(out, unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), n))
	}
	return out, nil
}

// Free releases t's buffer; a Sub's belongs to its root, so Free leaves
// it.
func (b *Backend) Free(t *engine.Tensor) {
	s := buf(t)
	if s.root != nil {
		return
	}
	b.Release(int64(s.bytes))
	b.enqueue(func() {
		gl.DeleteBuffers(1, &s.id)
		s.id = 0
	})
}

var (
	_ engine.Backend      = (*Backend)(nil)
	_ engine.Suballocator = (*Backend)(nil)
)

// GL_KHR_shader_subgroup's queries (its enums are not in go-gl's 4.3
// core profile).
const (
	glSubgroupSize              = 0x9532
	glSubgroupSupportedStages   = 0x9533
	glSubgroupSupportedFeatures = 0x9534
	glSubgroupFeatureBasic      = 0x01
	glSubgroupFeatureShuffle    = 0x10
	glSubgroupFeatureClustered  = 0x40
)

// subgroupSize is the subgroup size of compute shaders where the driver
// offers GL_KHR_shader_subgroup with shuffles and clustered reductions
// in them (attention.comp's SHUF), else 0. GL thread only.
func subgroupSize() int {
	if !hasExtension("GL_KHR_shader_subgroup") {
		return 0
	}
	var size, stages, features int32
	gl.GetIntegerv(glSubgroupSize, &size)
	gl.GetIntegerv(glSubgroupSupportedStages, &stages)
	gl.GetIntegerv(glSubgroupSupportedFeatures, &features)
	need := int32(glSubgroupFeatureBasic | glSubgroupFeatureShuffle | glSubgroupFeatureClustered)
	if stages&gl.COMPUTE_SHADER_BIT == 0 || features&need != need || size < 1 {
		return 0
	}
	return int(size)
}

// hasExtension reports whether the context offers the named extension.
// GL thread only.
func hasExtension(name string) bool {
	var n int32
	gl.GetIntegerv(gl.NUM_EXTENSIONS, &n)
	for i := range uint32(n) {
		if gl.GoStr(gl.GetStringi(gl.EXTENSIONS, i)) == name {
			return true
		}
	}
	return false
}

// Fence places a GL fence after the work queued so far and flushes it to
// the GPU; the returned function waits for the fence on the GL thread, so
// the ops queued after Fence are already submitted while it waits.
func (b *Backend) Fence() func() error {
	var sync uintptr
	b.enqueue(func() {
		if sync = gl.FenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0); sync != 0 {
			b.fences++
		}
		gl.Flush()
		b.checkGL("fence")
	})
	return func() error {
		var err error
		b.call(func() {
			if sync == 0 {
				err = fmt.Errorf("gl: fence was not placed")
				return
			}
			defer func() {
				gl.DeleteSync(sync)
				b.fences--
			}()
			for {
				switch gl.ClientWaitSync(sync, gl.SYNC_FLUSH_COMMANDS_BIT, 1e9) {
				case gl.ALREADY_SIGNALED, gl.CONDITION_SATISFIED:
					return
				case gl.WAIT_FAILED:
					b.checkGL("wait for fence")
					err = fmt.Errorf("gl: waiting for a fence failed")
					return
				}
			}
		})
		return err
	}
}

var _ engine.Fencer = (*Backend)(nil)

// LiveFences is how many fences Fence placed that nobody has waited on
// yet (each holds a GL sync object until then).
func (b *Backend) LiveFences() int {
	var n int
	b.call(func() { n = b.fences })
	return n
}
