package gl

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	gl "github.com/go-gl/gl/v4.3-core/gl"

	"glimmer/engine"
)

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

func isF16(t *engine.Tensor) int { return b2i(t != nil && t.DType() == engine.F16) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// elementwise ops run 256 elements per work group.
func elemGroups(n int) int { return ceilDiv(n, 256) }

// gemmShape picks gemm_core.glsl's square tile for a problem: 128x128 with
// K slices of 8 (the fastest per FLOP), or 64x64 with slices of 16 when
// 128-wide tiles would make too few work groups to fill the GPU (deep,
// small feature maps: 8x8 latents at 1280 channels make 20). Shaders that
// include the core with TILE and BK alone use it; MatMul and Conv2D use
// gemmPlan.
func (b *Backend) gemmShape(m, n, batch int) (tile, bk, groups int) {
	g := ceilDiv(m, 128) * ceilDiv(n, 128) * batch
	if g >= b.fullGrid {
		return 128, b.gemmBK, g
	}
	return 64, 16, ceilDiv(m, 64) * ceilDiv(n, 64) * batch
}

// gemmPlan is one way to run a GEMM through gemm_core.glsl: a BM x BN tile
// (64 or 128 each; 32 too with Threads), K slices of BK, and K split into
// Split chunks of KChunk (a multiple of BK) whose partial sums
// gemm_splitk.comp adds. Threads is the work group's size: 0 for 256
// (16x16), else it must be BM*BN/64, each thread then computing 8x8 of
// the tile.
type gemmPlan struct {
	BM, BN, BK, Split, KChunk, Threads int
}

// groups is the number of work groups the GEMM's pass runs.
func (p gemmPlan) groups(m, n, batch int) int {
	return ceilDiv(m, p.BM) * ceilDiv(n, p.BN) * batch * p.Split
}

func (p gemmPlan) defines(d defines) defines {
	d["TILE"], d["BM"], d["BN"], d["BK"], d["SPLITK"] = max(p.BM, p.BN), p.BM, p.BN, p.BK, p.Split
	d["WX"], d["WY"], d["NT"] = 16, 16, 256
	if p.Threads != 0 {
		d["WX"], d["WY"], d["NT"] = p.BN/8, p.BM/8, p.BN*p.BM/64
	}
	return d
}

// fewTiles and oneWave: a product of fewer than fewTiles 128x128 tiles
// splits K toward oneWave work groups, about one wave of two such groups
// on each of the H100's and H200's 132 SMs. The folded 8x8 convolutions
// of SD 1.5 (10 tiles, K 11,520) ran 0.243 ms a call split in 32 (320
// groups), 0.228 in 16, 0.166 in 24 (BenchmarkSDGEMM, H100).
const fewTiles, oneWave = 32, 240

// halfMaxK: products of K up to this many, at least two 128-wide tiles
// across N and halfMin to halfMax 128x128 tiles in all, run 128x64
// tiles of 128 threads (Threads). Where a group's K is short its fixed
// costs (first loads, epilogue) weigh and more groups pay; where it is
// deep, 128x128's fewer loads per product do. BenchmarkSDGEMM, H100, ms
// a call, 128x128 against 128x64: the 1x1 convolutions 320>320 at 64x64
// 0.0825 → 0.0743 and 640>640 at 32x32 0.0942 → 0.0822 (K split in 2),
// the linear layers 4096x320x320 0.0924 → 0.0857 and 1024x640x640 0.0959
// → 0.0936; but K 1280 (4096x320x1280: 0.3025 → 0.3569) and Winograd's
// 128-column products (640 channels at 32x32: 0.3124 → 0.3339) lost, and
// so did a grid near a whole wave: the self-attention's q, k and v at
// 32x32 (1024x1920x640 with CFG's two images, 240 tiles) 0.1728 as
// 128x128 unsplit against 0.3045 (hence halfMax 200, p21).
const halfMaxK = 640

// gemmSplitMax caps the scratch buffer of split-K partial sums: 48 MiB,
// what Winograd's products take at most (winoVMax), so that the 16x16
// latents' GEGLU product (512x10240, K 1280) splits in 2 rather than 3.
// At 64 MiB, p22's --offload peaked 17 KB under 2 GiB (2,147,466,280
// bytes); the activations' arena (p23) has since taken 97 MB off that,
// so 64 would fit, but that build is not timed (GLIMMER_GEMM_SPLITMB).
const gemmSplitMax = 48 << 20

// gemmPlan picks the tile and K split for C[m, n] = A[m, k]·B[k, n] over
// batch entries, by the fit to SD 1.5's shapes on the H200
// (BenchmarkSDGEMM, docs/perf-notes.md): 128x128 tiles with K slices of
// gemmBK when they make at least fullGrid work groups or pad the product
// by at most 25% more than 64x64 tiles (slices of 16) would (128x64 of
// 128 threads for shallow products under a full grid: halfMaxK); then K is
// split in 2, 4 (8 for 64x64 tiles) while the groups number fewer than
// splitTarget and every chunk keeps at least splitMinK of K (a quarter of
// it while the groups number fewer than splitFew), unless the grid fills
// at least 90% of its last wave of b.wave groups (264: two 256-thread
// groups on each of 132 SMs), where a split adds its partial sums and
// buys no parallelism (that rule and halfMax: SD 1.5's U-Net step 56.54 →
// 55.55 ms, H100, p21), and splitting stops at a grid within 10% of one
// whole wave (b.fill: 55.38 → 55.24 ms; the q, k and v at 16x16, 120
// tiles, 0.2205 ms in 4 chunks, 0.1884 in 2); products of fewer
// than fewTiles 128x128 tiles split toward oneWave groups instead. Where
// that doubling would split 128x128 tiles, waveSplit's model of whole
// waves picks the split, 1 to 8, instead (b.splitWave; p22). So
// 64x64 latents at 320 channels run 128x128 tiles in 4 chunks (192 -> 768
// groups, 0.96 -> 0.67 ms per 3x3 convolution against p3's 64x64), 8x8
// at 1280 with CFG's two images folded into one GEMM (Conv2D) 128x128 in
// 24 (10 -> 240 groups), unfolded 64x64 in 8 (40 -> 320 groups, 1.09 ->
// 0.34 ms), and the cross-attention's
// projections of 77 tokens (30 groups, K 768) split in 8 chunks of 96.
// b.gemmForce, set by tests and benchmarks, overrides the tile, slice
// depth and split.
func (b *Backend) gemmPlan(m, n, k, batch int) gemmPlan {
	return b.gemmPlanWithin(m, n, k, batch, b.splitCap)
}

// gemmPlanWithin is gemmPlan with the split's partial sums held to
// partMax bytes.
func (b *Backend) gemmPlanWithin(m, n, k, batch, partMax int) gemmPlan {
	var p gemmPlan
	if f := b.gemmForce; f != nil {
		p = gemmPlan{BM: f.BM, BN: f.BN, BK: f.BK, Split: max(f.Split, 1), Threads: f.Threads}
	} else {
		pad := func(t int) int { return ceilDiv(m, t) * t * ceilDiv(n, t) * t }
		p = gemmPlan{BM: 64, BN: 64, BK: 16, Split: 1}
		maxSplit := 8
		g := ceilDiv(m, 128) * ceilDiv(n, 128) * batch
		if g >= b.fullGrid || 4*pad(128) <= 5*pad(64) {
			p = gemmPlan{BM: 128, BN: 128, BK: b.gemmBK, Split: 1}
			maxSplit = 4
			switch {
			case g < fewTiles:
				// A deep product on a handful of tiles (the folded 8x8
				// convolutions): K in as many chunks as one wave holds.
				p.Split = max(1, min(oneWave/g, k/max(b.splitMinK/4, 1), 32))
				maxSplit = 0
			case b.halfMin > 0 && g >= b.halfMin && g < b.fullGrid && g < b.halfMax && k <= halfMaxK && n >= 2*128:
				// A shallow product under a full grid: 128x64 tiles of
				// 128 threads, 8x8 results each as in 128x128, so twice
				// the groups at the same arithmetic per thread.
				p.BN, p.Threads = 64, 128
			}
		}
		grid := p.groups(m, n, batch)
		if b.wave > 0 && 10*(grid%b.wave) >= 9*b.wave {
			maxSplit = 0 // a grid that nearly fills its last wave: splitting only adds work
		}
		if b.splitWave > 0 && b.wave > 0 && maxSplit > 0 && (b.waveAll || p.BM == 128 && p.BN == 128 && p.Threads == 0) {
			p.Split = b.waveSplit(grid, k, p.BK, 2*maxSplit)
			maxSplit = 0
		}
		for grid*p.Split < b.splitTarget && 2*p.Split <= maxSplit {
			minK := b.splitMinK
			if grid*p.Split < b.splitFew {
				minK /= 4
			}
			if k/(2*p.Split) < minK {
				break
			}
			p.Split *= 2
			if b.fill && b.wave > 0 && grid*p.Split <= b.wave && 10*grid*p.Split >= 9*b.wave {
				break // within 10% of one whole wave
			}
		}
	}
	// A split whose partial sums would overflow the scratch cap shrinks.
	for p.Split > 1 && p.Split*batch*m*n*4 > partMax {
		p.Split--
	}
	if p.Split <= 1 {
		p.Split, p.KChunk = 1, k
		return p
	}
	// Chunks of whole slices; the split shrinks so that none is empty.
	p.KChunk = splitChunk(k, p.Split, p.BK)
	p.Split = ceilDiv(k, p.KChunk)
	if p.Split == 1 {
		p.KChunk = k
	}
	return p
}

// splitChunk is the K chunk of a split of k in s: k/s rounded up to whole
// slices of bk (so the last chunk may be shorter, or the split smaller).
func splitChunk(k, s, bk int) int { return ceilDiv(ceilDiv(k, s), bk) * bk }

// waveSplit is the K split, 1 to most, of a grid of 256-thread groups
// over k that a model of waves takes least time for: whole waves of
// b.wave groups (two on each of 132 SMs), each as long as a chunk of K
// plus b.splitWave of K for a group's fixed costs, plus as much again for
// the finishing pass when K is split; chunks of at least 64. It fits
// BenchmarkSDGEMM's sweep of 128x128 tiles split in 2, 3, 4 and 6 (H100,
// ms a call, the split it picks marked): Winograd's products of 1280
// channels at 16x16, 0.3434 in 4, *0.3113 in 3*; of 2560, 0.8162 in 4,
// *0.6165 in 3*; the linear layers 256x1280x1280 0.0945 in 4, *0.0783 in
// 6*, 256x1280x5120 0.3272 in 4, *0.2368 in 6*, 1024x640x2560 0.3038 in
// 4, *0.2305 in 3*. SD 1.5's U-Net step 53.72 -> 51.18 ms with a fixed
// cost of 64 (51.26 with 128). 128x64 tiles of 128 threads keep the
// doubling rule (split in 3 they lost: 1024x640x640 0.0914 -> 0.1228), as
// do 64x64 tiles, which the model was not fitted to.
func (b *Backend) waveSplit(grid, k, bk, most int) int {
	best, bestCost := 1, 0
	for s := 1; s <= most; s++ {
		chunk := splitChunk(k, s, bk)
		if s > 1 && chunk < 64 || ceilDiv(k, chunk) != s { // too short, or not s chunks (as gemmPlanWithin splits)
			continue
		}
		cost := ceilDiv(grid*s, b.wave) * (chunk + b.splitWave)
		if s > 1 {
			cost += b.splitWave
		}
		if s == 1 || cost < bestCost {
			best, bestCost = s, cost
		}
	}
	return best
}

// withEpilogue binds a GEMM's bias and residual (nil: none) after bufs,
// in that order, and sets the shader's HAS_BIAS, BIAS_F16, HAS_RES and
// RES_BINDING.
func withEpilogue(d defines, bufs []*buffer, bias, res *engine.Tensor) []*buffer {
	d["HAS_BIAS"], d["BIAS_F16"], d["HAS_RES"] = b2i(bias != nil), isF16(bias), b2i(res != nil)
	if bias != nil {
		bufs = append(bufs, buf(bias))
	}
	if res != nil {
		d["RES_BINDING"] = len(bufs)
		bufs = append(bufs, buf(res))
	}
	return bufs
}

// gemmEpilogue binds the bias and residual of a GEMM's one pass; with K
// split, splitFinish adds them instead.
func (b *Backend) gemmEpilogue(d defines, bufs []*buffer, plan gemmPlan, bias, res *engine.Tensor) []*buffer {
	if plan.Split > 1 {
		bias, res = nil, nil
	}
	return withEpilogue(d, bufs, bias, res)
}

// splitScratch returns a buffer of at least n floats for split-K partial
// sums, kept by the backend and grown when a larger GEMM needs it.
func (b *Backend) splitScratch(n int) *buffer {
	return b.growScratch(&b.splitBuf, n, "split-K scratch")
}

// growScratch returns *s, a buffer of at least n floats kept by the backend,
// first replacing it by a larger one when it is smaller (what names it in
// an allocation error). The memory counts toward the backend's peak.
func (b *Backend) growScratch(s **buffer, n int, what string) *buffer {
	bytes := 4 * n
	if *s != nil && (*s).bytes >= bytes {
		return *s
	}
	if old := *s; old != nil {
		b.Release(int64(old.bytes))
		b.enqueue(func() { gl.DeleteBuffers(1, &old.id) })
	}
	bytes = max(bytes, 4<<20)
	nb := &buffer{bytes: bytes}
	b.Alloc(int64(bytes))
	b.enqueue(func() {
		gl.GenBuffers(1, &nb.id)
		gl.BindBuffer(gl.SHADER_STORAGE_BUFFER, nb.id)
		gl.BufferData(gl.SHADER_STORAGE_BUFFER, nb.bytes, nil, gl.DYNAMIC_COPY)
		b.checkGL(fmt.Sprintf("allocate %d bytes of %s", nb.bytes, what))
	})
	*s = nb
	return nb
}

// splitFinish queues gemm_splitk.comp: dst = alpha * (sum of the plan's
// partials in part, total elements each) + bias[(i / bdiv) % bmod] (+
// res); with geglu, GEGLU of each (value, gate) pair of columns into dst's
// total/2 elements.
func (b *Backend) splitFinish(p gemmPlan, dst, part *buffer, total int, alpha float32, bias, res *engine.Tensor, bdiv, bmod int, geglu bool) {
	def := defines{"SPLITK": p.Split, "GEGLU": b2i(geglu)}
	bufs := withEpilogue(def, []*buffer{dst, part}, bias, res)
	n := total
	if geglu {
		n /= 2
	}
	groups := elemGroups(n)
	if n%4 == 0 {
		// Four elements an invocation, same bits (H100: U-Net step 55.53
		// -> 55.37 ms, within one call's noise).
		def["V4"] = 1
		groups = elemGroups(n / 4)
	}
	b.dispatch("gemm_splitk", def, groups, bufs, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.f("u_alpha", alpha)
		u.u("u_bdiv", uint32(bdiv))
		u.u("u_bmod", uint32(bmod))
	})
}

func (b *Backend) MatMul(dst, a, w, bias *engine.Tensor, p engine.MatMulParams) {
	d := engine.CheckMatMul(dst, a, w, bias, p)
	alpha := p.Alpha
	if alpha == 0 {
		alpha = 1
	}
	m, batch := d.M, d.Batch
	if !d.BBatched && !p.TransA {
		// A shared B: the batch's rows of A and C are one [batch*M, K]
		// and [batch*M, N] matrix, so they tile as one.
		m, batch = d.M*d.Batch, 1
	}
	plan := b.gemmPlan(m, d.N, d.K, batch)
	def := plan.defines(defines{"TRANS_A": b2i(p.TransA), "TRANS_B": b2i(p.TransB), "B_F16": isF16(w),
		"K4": b2i(d.K%4 == 0), "N4": b2i(d.N%4 == 0), "GEGLU": b2i(p.GEGLU)})
	if b.pf2Rows > 0 && m >= b.pf2Rows && plan.BM == 128 && plan.BN == 128 && plan.Threads == 0 {
		// Loads two K slices ahead (gemm_core.glsl): the transformers'
		// wide products at 64x64 and 32x32 gain (BenchmarkSDGEMM, H100:
		// 1024x640x2560 0.3388 -> 0.3072 ms, 1024x5120x640 0.4998 ->
		// 0.4820, 1024x1920x640 0.1728 -> 0.1646); 128x64 tiles, 256
		// rows and the convolutions lose, so they keep one slice. U-Net
		// step 55.54 -> 55.31 ms, --offload 56.61 -> 56.35 (p21).
		def["PF2"] = 1
	}
	total := batch * m * d.N // the product's elements (dst's with GEGLU: half)
	out := buf(dst)
	if plan.Split > 1 {
		out = b.splitScratch(plan.Split * total)
	}
	bufs := b.gemmEpilogue(def, []*buffer{out, buf(a), buf(w)}, plan, bias, p.Residual)
	strideB := 0
	if d.BBatched {
		strideB = d.K * d.N
	}
	b.dispatch("matmul", def, plan.groups(m, d.N, batch), bufs, func(u uniforms) {
		u.u("u_M", uint32(m))
		u.u("u_N", uint32(d.N))
		u.u("u_K", uint32(d.K))
		u.u("u_strideB", uint32(strideB))
		u.f("u_alpha", alpha)
		if plan.Split > 1 {
			u.u("u_kchunk", uint32(plan.KChunk))
			u.u("u_partStride", uint32(total))
		}
	})
	if plan.Split > 1 {
		b.splitFinish(plan, buf(dst), out, total, alpha, bias, p.Residual, 1, d.N, p.GEGLU)
	}
}

func (b *Backend) Conv2D(dst, x, w, bias *engine.Tensor, p engine.Conv2DParams) {
	d := engine.CheckConv2D(dst, x, w, bias, p)
	if b.useWinograd(d) {
		b.convWinograd(dst, x, w, bias, p.Residual, d)
		return
	}
	m, n, k := d.OC, d.OH*d.OW, d.C*d.KH*d.KW
	fold := b.convFold(d)
	cols, batch := n, d.N // the GEMM's columns and batch entries
	if fold {
		cols, batch = d.N*n, 1
	}
	plan := b.gemmPlan(m, cols, k, batch)
	pointwise := d.Pointwise()
	def := plan.defines(defines{"W_F16": isF16(w), "CONV1X1": b2i(pointwise), "K4": b2i(k%4 == 0), "N4": b2i(n%4 == 0), "FOLDN": b2i(fold)})
	if !pointwise && d.KH == d.KW && b.convConst >= 1 {
		def["KSQ"] = d.KH
	}
	if !pointwise && b.convConst >= 2 {
		def["OWC"] = d.OW
	}
	total := d.N * m * n
	out := buf(dst)
	if plan.Split > 1 {
		out = b.splitScratch(plan.Split * total)
	}
	bufs := b.gemmEpilogue(def, []*buffer{out, buf(x), buf(w)}, plan, bias, p.Residual)
	b.dispatch("conv2d", def, plan.groups(m, cols, batch), bufs, func(u uniforms) {
		u.u("u_M", uint32(m))
		u.u("u_N", uint32(cols))
		u.u("u_K", uint32(k))
		if fold {
			u.u("u_OHW", uint32(n))
		}
		convGeometry(u, d)
		if plan.Split > 1 {
			u.u("u_kchunk", uint32(plan.KChunk))
			u.u("u_partStride", uint32(total))
		}
	})
	if plan.Split > 1 {
		b.splitFinish(plan, buf(dst), out, total, 1, bias, p.Residual, n, m, false)
	}
}

// convGeometry sets a convolution's extents, kernel, strides and padding
// (u_C, u_H, u_W, u_OC, u_OH, u_OW, u_KH, u_KW, u_SH, u_SW, u_PH, u_PW) in
// the shaders that declare them.
func convGeometry(u uniforms, d engine.Conv2DDims) {
	for _, v := range []struct {
		name string
		v    int
	}{{"u_C", d.C}, {"u_H", d.H}, {"u_W", d.W}, {"u_OC", d.OC}, {"u_OH", d.OH}, {"u_OW", d.OW},
		{"u_KH", d.KH}, {"u_KW", d.KW}, {"u_SH", d.P.StrideH}, {"u_SW", d.P.StrideW}, {"u_PH", d.P.PadH}, {"u_PW", d.P.PadW}} {
		u.i(v.name, v.v)
	}
}

// convFold reports whether Conv2D runs d's images as one GEMM (FOLDN in
// conv2d.comp) rather than one GEMM each: for feature maps of fewer than
// 128 pixels (a multiple of 4), which a 128-wide tile would mostly pad,
// or for every whole-vec4 map with b.convFoldMode 2 (GLIMMER_GL_CONVFOLD;
// 0 never folds).
func (b *Backend) convFold(d engine.Conv2DDims) bool {
	n := d.OH * d.OW
	if d.N < 2 || n%4 != 0 || b.convFoldMode == 0 {
		return false
	}
	return n < 128 || b.convFoldMode == 2
}

func (b *Backend) GroupNorm(dst, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	d := engine.CheckGroupNorm(dst, x, gamma, beta, p)
	if gamma.DType() != beta.DType() {
		panic("gl: GroupNorm gamma and beta must share a dtype")
	}
	def := defines{"AFFINE_F16": isF16(gamma), "SILU": b2i(p.SiLU), "SHIFT": b2i(p.Shift != nil)}
	if chunks, chunk := b.groupNormChunks(d.Rows, d.Cols); chunks > 1 {
		b.groupNormSplit(dst, x, gamma, beta, p, d, def, chunks, chunk)
		return
	}
	b.dispatch("groupnorm", def, d.Rows, withShift([]*buffer{buf(dst), buf(x), buf(gamma), buf(beta)}, p), func(u uniforms) {
		u.u("u_G", uint32(p.Groups))
		u.u("u_C", uint32(d.C))
		u.u("u_S", uint32(d.Spatial))
		u.f("u_eps", p.Eps)
		shiftRow(u, p, d)
	})
}

// shiftRow sets u_shift0, the offset of the shift's first row used, in
// the shaders that have one.
func shiftRow(u uniforms, p engine.GroupNormParams, d engine.NormDims) {
	if p.Shift != nil {
		u.u("u_shift0", uint32(p.ShiftRow*d.C))
	}
}

// withShift appends GroupNorm's shift, when it has one, to a dispatch's
// buffers (its binding, the next, is each shader's last).
func withShift(bufs []*buffer, p engine.GroupNormParams) []*buffer {
	if p.Shift != nil {
		bufs = append(bufs, buf(p.Shift))
	}
	return bufs
}

// groupNormChunks picks how many chunks of how many elements each of
// GroupNorm's rows (image, group) is split into: one (groupnorm.comp, a
// work group a row) when the rows alone fill the GPU or are short, else
// enough chunks of at least 2048 elements that about gnTarget work groups
// share the statistics (at most 256 a row). A row of SD 1.5's U-Net at
// 64x64 (10 channels of 4096, 64 rows at batch 2) takes 16 chunks; a row
// of its VAE decoder at 512x512 (4 channels of 262144, 32 rows) 32.
// b.gnChunks, set by tests, forces a chunk count; below 0 (environment
// GLIMMER_GL_GROUPNORM=single) it keeps one work group a row.
func (b *Backend) groupNormChunks(rows, length int) (chunks, chunk int) {
	const gnTarget, minChunk = 1024, 2048
	switch {
	case b.gnChunks > 0:
		chunks = b.gnChunks
	case b.gnChunks < 0 || rows >= gnTarget/2 || length < 4*minChunk:
		return 1, length
	default:
		chunks = min(ceilDiv(gnTarget, rows), length/minChunk, 256)
	}
	chunk = ceilDiv(length, max(chunks, 1))
	return ceilDiv(length, chunk), chunk // no empty chunk
}

// groupNormSplit runs GroupNorm as groupnorm_stats.comp (each chunk's mean
// and squared deviations) then groupnorm_apply.comp (the chunks combined,
// then every element normalised, 4096 a work group). A row (image, group)
// is d.Cols elements.
func (b *Backend) groupNormSplit(dst, x, gamma, beta *engine.Tensor, p engine.GroupNormParams, d engine.NormDims, def defines, chunks, chunk int) {
	length := d.Cols
	part := b.scratch(2 * d.Rows * chunks) // [rows, chunks, 2]
	b.dispatch("groupnorm_stats", defines{"SHIFT": def["SHIFT"]}, d.Rows*chunks, withShift([]*buffer{buf(part), buf(x)}, p), func(u uniforms) {
		u.u("u_len", uint32(length))
		u.u("u_chunk", uint32(chunk))
		u.u("u_P", uint32(chunks))
		if p.Shift != nil {
			u.u("u_S", uint32(d.Spatial))
		}
		shiftRow(u, p, d)
	})
	wpr := ceilDiv(length, 4096)
	b.dispatch("groupnorm_apply", def, d.Rows*wpr, withShift([]*buffer{buf(dst), buf(x), buf(gamma), buf(beta), buf(part)}, p), func(u uniforms) {
		u.u("u_G", uint32(p.Groups))
		u.u("u_C", uint32(d.C))
		u.u("u_S", uint32(d.Spatial))
		u.u("u_len", uint32(length))
		u.u("u_chunk", uint32(chunk))
		u.u("u_P", uint32(chunks))
		u.u("u_wpr", uint32(wpr))
		u.f("u_eps", p.Eps)
		shiftRow(u, p, d)
	})
	b.release(part)
}

func (b *Backend) LayerNorm(dst, x, gamma, beta *engine.Tensor, eps float32) {
	d := engine.CheckLayerNorm(dst, x, gamma, beta)
	if gamma.DType() != beta.DType() {
		panic("gl: LayerNorm gamma and beta must share a dtype")
	}
	def := defines{"AFFINE_F16": isF16(gamma), "V4": b2i(d.Cols%4 == 0), "SUB": b2i(b.limits.SubgroupSize > 0 && b.limits.SubgroupSize%32 == 0)}
	b.dispatch("layernorm", def, ceilDiv(d.Rows, 8), // 8 rows a work group
		[]*buffer{buf(dst), buf(x), buf(gamma), buf(beta)}, func(u uniforms) {
			u.u("u_rows", uint32(d.Rows))
			u.u("u_cols", uint32(d.Cols))
			u.f("u_eps", eps)
		})
}

func (b *Backend) Softmax(dst, x *engine.Tensor) {
	d := engine.CheckSoftmax(dst, x)
	b.dispatch("softmax", nil, d.Rows, []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_cols", uint32(d.Cols))
	})
}

// attnConfig is one variant of attention.comp (its comment explains the
// names): an RY x RX grid of threads owning BQ = RY*TQ queries and score
// blocks of TQ x TK, over key tiles of BK = RX*TK.
type attnConfig struct {
	RX, RY, TQ, TK int
	DC             int  // head dims per chunk of the score product
	VK             int  // keys per V chunk when V shares K's memory
	QRes           bool // the group's queries stay in shared memory
	KVSep          bool // V has memory of its own, loaded with K
	Shuf           int  // rows' maxima, sums and (unless PSh) probabilities through subgroup operations (no Ms; no Ps unless PSh): 1 the driver's, 2 emulated (tests)
	PF             bool // the next tile's K and V loaded into registers during this one (with KVSep and one chunk; forced PF=1 applies where those hold)
	PSh            bool // with Shuf: probabilities through Ps rather than shuffles (forced PSH=1 applies where Shuf is on)
}

func (c attnConfig) bq() int { return c.RY * c.TQ }
func (c attnConfig) bk() int { return c.RX * c.TK }
func (c attnConfig) nt() int { return c.RX * c.RY }

// sharedBytes mirrors the shader's shared arrays.
func (c attnConfig) sharedBytes(headDim int) int {
	odd := func(n int) int { return n | 1 }
	d4, dc4 := ceilDiv(headDim, 4), c.DC/4
	qst := odd(dc4)
	if c.QRes {
		qst = odd(d4)
	}
	vst := ceilDiv(ceilDiv(headDim, c.RX), 4) * c.RX
	kv := c.bk() * odd(dc4)
	if c.KVSep {
		kv += c.bk() * vst
	} else {
		kv = max(kv, c.VK*vst)
	}
	ps := 0
	if c.PSh {
		ps = c.bq() * odd(c.bk()/4)
	}
	switch c.Shuf {
	case 1:
		return 16 * (c.bq()*qst + kv + ps)
	case 2:
		return 16*(c.bq()*qst+kv+ps) + 4*c.nt()*c.TQ*c.TK
	}
	return 16*(c.bq()*qst+kv+c.bq()*odd(c.bk()/4)) + 4*2*c.bq()
}

// attnInvalid reports why c cannot run at headDim on this driver with
// shared bytes of shared memory, or "".
func (b *Backend) attnInvalid(c attnConfig, headDim, shared int) string {
	d4 := ceilDiv(headDim, 4)
	switch {
	case c.RX < 1 || c.RY < 1 || c.TQ < 1 || c.TK < 4 || c.TK%4 != 0:
		return "RX, RY, TQ >= 1 and TK a multiple of 4 are needed"
	case c.DC < 4 || c.DC%4 != 0 || d4%(c.DC/4) != 0:
		return "DC must be a multiple of 4 dividing the head rounded up to 4"
	case !c.KVSep && (c.VK < 4 || c.VK%4 != 0 || c.bk()%c.VK != 0):
		return "VK must be a multiple of 4 dividing BK"
	case c.Shuf == 1 && (b.limits.SubgroupSize == 0 || b.limits.SubgroupSize%c.RX != 0), c.Shuf == 2 && 32%c.RX != 0:
		return "SHUF needs RX dividing the subgroup size"
	case c.Shuf != 0 && !c.KVSep && c.VK%c.TK != 0:
		return "SHUF without KVSEP needs VK a multiple of TK"
	case c.nt() > b.limits.MaxGroupInvoc:
		return "too many threads"
	case c.sharedBytes(headDim) > shared:
		return "too much shared memory"
	}
	return ""
}

// attnShape is the thread grid per head dim, the fastest of those tried
// at SD 1.5's shapes (docs/perf-notes.md), with the rows' subgroup
// operations (shuf) or without. Many threads per group beat small
// shared-memory footprints. Without subgroups (H200, p5): head dim 40,
// 4096 tokens: 128 queries on 256 threads, 4x4 score blocks, 5 output dims
// a thread (2.78 ms; 64 queries on 128 threads in 24 KiB 3.33). 80, 1024
// tokens: 64 queries on 256 threads, TQ 2 (0.37 ms; 64 on 128 threads
// 0.47). 160, 256 tokens: 32 queries on 256 threads, 16 per row (0.070
// ms; 32 on 128 threads, 8 per row 0.101). 512, the VAE: 32 queries on
// 512 threads, 32 per row, 16 output dims each (2.20 ms; 16 queries on
// 128 threads 5.1). With them, V has room for a tile of its own and wider
// key blocks pay (H100, p12): see shufShape.
func attnShape(headDim int, shuf bool) attnConfig {
	if shuf {
		return shufShape(headDim)
	}
	switch {
	case headDim <= 48:
		return attnConfig{RX: 8, RY: 32, TQ: 4, TK: 4}
	case headDim <= 96:
		return attnConfig{RX: 8, RY: 32, TQ: 2, TK: 4}
	case headDim <= 192:
		return attnConfig{RX: 16, RY: 16, TQ: 2, TK: 4}
	default:
		return attnConfig{RX: 32, RY: 16, TQ: 2, TK: 4}
	}
}

// shufShape is attnShape with the rows' subgroup operations, from sweeps
// on the H100 (p12; ms a call, against the grid above without them and
// with them on that grid): head dim 40, 512 queries on 512 threads in
// 4-thread rows, 4x8 score blocks (1.74; 2.76, 2.72); 80, 128 queries on
// 256 threads, 4x16 (0.241; 0.364, 0.371); 160, the grid above (0.065;
// 0.068; 32-thread rows ran 0.061 but their 256-key tiles slowed the
// 77-key cross-attention from 0.032 to 0.051); 512, 16-key blocks (2.01;
// 2.24, 2.14).
func shufShape(headDim int) attnConfig {
	switch {
	case headDim <= 48:
		return attnConfig{RX: 4, RY: 128, TQ: 4, TK: 8, Shuf: 1}
	case headDim <= 96:
		return attnConfig{RX: 8, RY: 32, TQ: 4, TK: 16, Shuf: 1}
	case headDim <= 192:
		return attnConfig{RX: 16, RY: 16, TQ: 2, TK: 4, Shuf: 1}
	default:
		return attnConfig{RX: 32, RY: 16, TQ: 2, TK: 16, Shuf: 1}
	}
}

// attnConfig completes the head dim's thread grid with the memory layout
// that fits the driver: preferring resident queries, then whole-head
// score products, then a V tile of its own, then whole V tiles (at head
// dim 80, V sharing K's memory with whole-head products ran 0.371 ms
// against 0.401 for a V tile of its own with 40-dim chunks); halving the
// grid's rows (RY), then the score blocks' keys (TK), while nothing fits
// (the backend's minimums, 16 KiB and 256 threads, fit head dims 3 to 512
// by RY 4). Rows use the driver's subgroup operations (SHUF) where it has
// them and a row's threads divide its subgroups.
//
// A call of nq queries over bh batch entries and heads (0 when not
// known) that its grid would spread over fewer than b.attnMinGroups work
// groups halves RY until it does not, keeping at least 256 threads a
// group: a grid tuned for CFG's two images leaves half the GPU idle for
// one image (the shared input's self-attention, unet.Forward, head dim
// 40: 64 groups of 512 queries, 1.69 ms a call; 128 of 256, 0.85 ms;
// H100). Smaller groups lost where calls are short: the mid block's 64
// queries at head dim 160 in groups of 64 threads (0.028 -> 0.041 ms) and
// CLIP's 77 at 64 in groups of 32 (0.038 -> 0.060).
//
// GLIMMER_GL_ATTN, e.g. "RX=8,RY=16,TQ=4,TK=4,SEP=0,QRES=1,DC=20,VK=8,
// SH=32768,SHUF=1,PF=1,PSH=1", forces fields for tuning (SH caps the shared memory
// used; SHUF=0 turns the subgroup operations off, SHUF=2 emulates them
// through shared memory for the tests), GLIMMER_GL_ATTN_<head dim> for
// one head dim; a forced variant that cannot run panics.
func (b *Backend) attnConfig(headDim, nq, bh int) attnConfig {
	force := map[string]int{}
	env := os.Getenv(fmt.Sprintf("GLIMMER_GL_ATTN_%d", headDim))
	if env == "" {
		env = os.Getenv("GLIMMER_GL_ATTN")
	}
	if env != "" {
		for _, kv := range strings.Split(env, ",") {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				panic(fmt.Sprintf("gl: GLIMMER_GL_ATTN: bad field %q", kv))
			}
			force[k] = n
		}
	}
	shuf, forced := force["SHUF"]
	if !forced && b.limits.SubgroupSize > 0 && b.limits.SubgroupSize%shufShape(headDim).RX == 0 {
		shuf = 1
	}
	c := attnShape(headDim, shuf != 0)
	c.Shuf = shuf
	c.PF = force["PF"] != 0
	c.PSh = force["PSH"] != 0 && shuf != 0
	for name, f := range map[string]*int{"RX": &c.RX, "RY": &c.RY, "TQ": &c.TQ, "TK": &c.TK} {
		if v, ok := force[name]; ok {
			*f = v
		}
	}
	if _, fixRY := force["RY"]; !fixRY && nq > 0 {
		for c.RX*c.RY/2 >= 256 && ceilDiv(nq, c.bq())*bh < b.attnMinGroups {
			c.RY /= 2
		}
	}
	shared := b.limits.MaxSharedBytes
	if v, ok := force["SH"]; ok {
		shared = min(shared, v)
	}
	d4 := ceilDiv(headDim, 4)
	for {
		for _, qres := range []bool{true, false} {
			for dc4 := d4; dc4 >= 1; dc4-- {
				if d4%dc4 != 0 {
					continue
				}
				for _, sep := range []bool{true, false} {
					for vk := c.bk(); vk >= 4; vk /= 2 {
						t := c
						t.QRes, t.KVSep, t.DC, t.VK = qres, sep, 4*dc4, vk
						if sep {
							t.VK = t.bk()
						}
						t.PF = c.PF && sep && dc4 == d4 // where it applies
						if b.attnForced(t, force) && b.attnInvalid(t, headDim, shared) == "" {
							return t
						}
						if sep || vk%8 != 0 {
							break
						}
					}
				}
			}
		}
		_, fixRY := force["RY"]
		_, fixTK := force["TK"]
		switch {
		case !fixRY && c.RY > 1:
			c.RY /= 2
		case !fixTK && c.TK > 4:
			c.TK /= 2 // SHUF's V chunks hold whole score blocks: narrower ones fit smaller memories
			if !fixRY {
				c.RY = attnShape(headDim, c.Shuf != 0).RY
			}
		default:
			panic(fmt.Sprintf("gl: no attention variant of %+v fits head dim %d in %d bytes of shared memory and %d threads",
				c, headDim, shared, b.limits.MaxGroupInvoc))
		}
	}
}

// attnForced reports whether t has the layout fields GLIMMER_GL_ATTN forces.
func (b *Backend) attnForced(t attnConfig, force map[string]int) bool {
	for name, v := range map[string]int{"DC": t.DC, "SEP": b2i(t.KVSep), "QRES": b2i(t.QRes)} {
		if f, ok := force[name]; ok && f != v {
			return false
		}
	}
	f, ok := force["VK"]
	return !ok || t.KVSep || f == t.VK
}

func (b *Backend) Attention(dst, q, k, v *engine.Tensor, p engine.AttentionParams) {
	d := engine.CheckAttention(dst, q, k, v, p)
	c := b.attnConfig(d.HeadDim, d.Nq, d.Heads*d.B)
	def := defines{"HEAD_DIM": d.HeadDim, "CAUSAL": b2i(d.Causal), "RX": c.RX, "RY": c.RY, "TQ": c.TQ,
		"TK": c.TK, "DC": c.DC, "VK": c.VK, "QRES": b2i(c.QRes), "KVSEP": b2i(c.KVSep), "NT": c.nt(), "SHUF": c.Shuf, "PF": b2i(c.PF), "PSH": b2i(c.PSh)}
	groups := ceilDiv(d.Nq, c.bq()) * d.Heads * d.B
	w := d.Heads * d.HeadDim
	ld, koff, voff := w, 0, 0
	if p.Packed {
		k, v = q, q
		ld, koff, voff = 3*w, w, 2*w
	}
	b.dispatch("attention", def, groups, []*buffer{buf(dst), buf(q), buf(k), buf(v)}, func(u uniforms) {
		u.u("u_Nq", uint32(d.Nq))
		u.u("u_Nk", uint32(d.Nk))
		u.u("u_H", uint32(d.Heads))
		u.f("u_scale", d.Scale)
		u.u("u_ld", uint32(ld))
		u.u("u_koff", uint32(koff))
		u.u("u_voff", uint32(voff))
	})
}

func (b *Backend) Unary(dst, x *engine.Tensor, op engine.UnaryOp) {
	n := engine.CheckUnary(dst, x)
	b.dispatch("unary", defines{"OP": int(op)}, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
	})
}

func (b *Backend) GEGLU(dst, x *engine.Tensor) {
	rows, f := engine.CheckGEGLU(dst, x)
	n := rows * f
	b.dispatch("geglu", nil, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_F", uint32(f))
	})
}

func (b *Backend) Binary(dst, x, y *engine.Tensor, op engine.BinaryOp) {
	d := engine.CheckBinary(dst, x, y)
	b.dispatch("binary", defines{"OP": int(op), "B_F16": isF16(y)}, elemGroups(d.N),
		[]*buffer{buf(dst), buf(x), buf(y)}, func(u uniforms) {
			u.u("u_n", uint32(d.N))
			u.iv("u_shape", d.Shape[:])
			u.iv("u_sa", d.StrideA[:])
			u.iv("u_sb", d.StrideB[:])
		})
}

func (b *Backend) Scale(dst, x *engine.Tensor, s, c float32) {
	n := engine.CheckScale(dst, x)
	b.dispatch("scale", nil, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.f("u_s", s)
		u.f("u_c", c)
	})
}

func (b *Backend) Upsample2x(dst, x *engine.Tensor) {
	engine.CheckUpsample2x(dst, x)
	n := dst.Numel()
	b.dispatch("upsample2x", nil, elemGroups(n), []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_H", uint32(x.Dim(2)))
		u.u("u_W", uint32(x.Dim(3)))
	})
}

func (b *Backend) Concat(dst, x, y *engine.Tensor) {
	_, ia, ib := engine.CheckConcat(dst, x, y)
	n := dst.Numel()
	b.dispatch("concat", nil, elemGroups(n), []*buffer{buf(dst), buf(x), buf(y)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_Ia", uint32(ia))
		u.u("u_Ib", uint32(ib))
	})
}

func (b *Backend) Transpose(dst, x *engine.Tensor) {
	batch, r, c := engine.CheckTranspose(dst, x)
	groups := ceilDiv(r, 32) * ceilDiv(c, 32) * batch
	b.dispatch("transpose", nil, groups, []*buffer{buf(dst), buf(x)}, func(u uniforms) {
		u.u("u_R", uint32(r))
		u.u("u_C", uint32(c))
	})
}

// TimestepFreqs are diffusers' frequencies exp(-ln(maxPeriod) * i /
// (half - shift)), each step rounded to float32 as torch computes them.
func TimestepFreqs(p engine.TimestepParams) []float32 {
	half := p.Dim / 2
	out := make([]float32, half)
	lnP := float32(math.Log(float64(p.MaxPeriod)))
	den := float32(half) - p.DownscaleFreqShift
	for i := range out {
		e := (-lnP * float32(i)) / den
		out[i] = float32(math.Exp(float64(e)))
	}
	return out
}

func (b *Backend) TimestepEmbedding(dst, t *engine.Tensor, p engine.TimestepParams) {
	engine.CheckTimestep(dst, t, &p)
	half := p.Dim / 2
	n := dst.Numel()
	fb := &buffer{bytes: storageBytes(engine.F32, half)}
	b.enqueue(func() {
		if id, ok := b.freqs[p]; ok {
			fb.id = id
			return
		}
		f := TimestepFreqs(p)
		gl.GenBuffers(1, &fb.id)
		gl.BindBuffer(gl.SHADER_STORAGE_BUFFER, fb.id)
		gl.BufferData(gl.SHADER_STORAGE_BUFFER, fb.bytes, gl.Ptr(f), gl.STATIC_DRAW)
		b.freqs[p] = fb.id
	})
	b.dispatch("timestep", defines{"FLIP": b2i(p.FlipSinToCos)}, elemGroups(n),
		[]*buffer{buf(dst), buf(t), fb}, func(u uniforms) {
			u.u("u_n", uint32(n))
			u.u("u_dim", uint32(p.Dim))
			u.u("u_half", uint32(half))
		})
}

// SampleStep runs sample_step.comp, one latent a thread. Operands a rule
// does not use are bound to x's buffer, which the shader then leaves
// alone.
func (b *Backend) SampleStep(x, eps, hist, noise, next *engine.Tensor, p engine.StepParams) {
	n, rows := engine.CheckSampleStep(x, eps, hist, noise, next, p)
	bx := buf(x)
	or := func(t *engine.Tensor) *buffer {
		if t == nil {
			return bx
		}
		return buf(t)
	}
	d := defines{"RULE": int(p.Rule), "VPRED": b2i(p.VPred), "NOISE": b2i(p.NeedsNoise()), "DIV_SKEW": 0}
	b.dispatch("sample_step", d, elemGroups(n), []*buffer{bx, buf(eps), or(hist), or(noise), or(next)}, func(u uniforms) {
		u.u("u_n", uint32(n))
		u.u("u_rows", uint32(rows))
		u.f("u_guidance", p.Guidance)
		u.f("u_next_div", p.NextDiv)
		u.f("u_sigma", p.Sigma)
		u.f("u_dt", p.Dt)
		u.f("u_up", p.Up)
		u.f("u_vout", p.VOut)
		u.f("u_vdiv", p.VDiv)
		u.f("u_sqrt_a", p.SqrtA)
		u.f("u_sqrt_b", p.SqrtB)
		u.f("u_sqrt_aprev", p.SqrtAPrev)
		u.f("u_dir", p.Dir)
		u.f("u_alpha_s", p.AlphaS)
		u.f("u_sigma_s", p.SigmaS)
		u.f("u_cx", p.CX)
		u.f("u_cd", p.CD)
		u.f("u_inv", p.Inv)
		u.f("u_half", p.Half)
	})
}
