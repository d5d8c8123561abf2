package gl

import (
	"fmt"

	"glimmer/engine"
)

// sumTarget is how many work groups a reduction aims for before it splits
// its sums into slices: enough to fill a large GPU (the H200 has 132 SMs)
// several times over.
const sumTarget = 2048

// sumPlan is a SumTo with x's axes collapsed: M outputs, each the sum of
// R terms, addressed by kept and reduced axes (outer first; unused
// leading entries have extent 1).
type sumPlan struct {
	kext, kstr, rext, rstr [4]int
	nk, nr                 int
	M, R                   int
	mode                   int // sum_to.comp's MODE
}

// axis is one collapsed axis of x.
type axis struct {
	ext, stride int
	reduced     bool
}

// planSum collapses the reduction of a tensor of shape xs into one of
// shape ds (numpy broadcasting: ds aligned on the right, each extent equal
// to x's or 1). op names the caller in panics.
func planSum(op string, ds, xs engine.Shape) sumPlan {
	if len(ds) > len(xs) {
		for _, e := range ds[:len(ds)-len(xs)] {
			if e != 1 {
				panic(fmt.Sprintf("gl: %s: dst %v does not broadcast to x %v", op, ds, xs))
			}
		}
		ds = ds[len(ds)-len(xs):]
	}
	pad := len(xs) - len(ds)
	// Innermost first: merge neighbours of the same kind (x is row-major
	// and extent-1 axes are dropped, so neighbours are always contiguous).
	var axes []axis
	stride := 1
	for i := len(xs) - 1; i >= 0; i-- {
		xe, de := xs[i], 1
		if i >= pad {
			de = ds[i-pad]
		}
		if de != xe && de != 1 {
			panic(fmt.Sprintf("gl: %s: dst %v does not broadcast to x %v", op, ds, xs))
		}
		if xe != 1 {
			red := de != xe
			if n := len(axes); n > 0 && axes[n-1].reduced == red {
				axes[n-1].ext *= xe
			} else {
				axes = append(axes, axis{ext: xe, stride: stride, reduced: red})
			}
		}
		stride *= xe
	}
	p := sumPlan{M: 1, R: 1}
	for i := range 4 {
		p.kext[i], p.rext[i] = 1, 1
	}
	mode := 1
	for i, a := range axes { // innermost first: fill the arrays from the right
		if a.reduced {
			if p.nr == 4 {
				panic(fmt.Sprintf("gl: %s: x %v has too many alternating axes", op, xs))
			}
			p.rext[3-p.nr], p.rstr[3-p.nr] = a.ext, a.stride
			p.nr++
			p.R *= a.ext
			if i == 0 && a.ext >= 32 {
				mode = 0 // contiguous terms: a work group per output
			}
		} else {
			if p.nk == 4 {
				panic(fmt.Sprintf("gl: %s: x %v has too many alternating axes", op, xs))
			}
			p.kext[3-p.nk], p.kstr[3-p.nk] = a.ext, a.stride
			p.nk++
			p.M *= a.ext
		}
	}
	if xs.Numel() == 0 {
		p.R = 0
	}
	p.mode = mode
	return p
}

// sumBuf runs a planned reduction from src into dst (M floats), splitting
// it into slices and a second pass when there are too few outputs to
// fill the GPU.
func (b *Backend) sumBuf(dst, src *buffer, p sumPlan) {
	if p.M == 0 {
		return
	}
	var s, chunk, groups int
	// Slices of at least 4096 terms (MODE 0) or 128 (MODE 1: 16 for each
	// of a column's 8 threads).
	if p.mode == 0 {
		s = max(1, min(ceilDiv(sumTarget, p.M), ceilDiv(p.R, 4096)))
		chunk = max(1, ceilDiv(p.R, s))
		s = max(1, ceilDiv(p.R, chunk))
		groups = p.M * s
	} else {
		blocks := ceilDiv(p.M, 32)
		s = max(1, min(ceilDiv(sumTarget, blocks), ceilDiv(p.R, 128)))
		chunk = max(1, ceilDiv(p.R, s))
		s = max(1, ceilDiv(p.R, chunk))
		groups = blocks * s
	}
	out := dst
	var part *engine.Tensor
	if s > 1 {
		part = b.scratch(p.M * s) // partial sums [M, S] (MODE 0) or [S, M] (MODE 1)
		out = buf(part)
	}
	def := defines{"MODE": p.mode, "NK": p.nk, "NR": p.nr}
	b.dispatch("sum_to", def, groups, []*buffer{out, src}, func(u uniforms) {
		u.u("u_M", uint32(p.M))
		u.u("u_R", uint32(p.R))
		u.u("u_S", uint32(s))
		u.u("u_chunk", uint32(chunk))
		u.iv("u_kext", p.kext[:])
		u.iv("u_kstr", p.kstr[:])
		u.iv("u_rext", p.rext[:])
		u.iv("u_rstr", p.rstr[:])
	})
	if part == nil {
		return
	}
	if p.mode == 0 {
		b.sumBuf(dst, out, planSum("SumTo", engine.Shape{p.M, 1}, engine.Shape{p.M, s}))
	} else {
		b.sumBuf(dst, out, planSum("SumTo", engine.Shape{1, p.M}, engine.Shape{s, p.M}))
	}
	b.release(part)
}

// SumTo sums x over the axes that broadcasting stretches from dst's shape.
func (b *Backend) SumTo(dst, x *engine.Tensor) {
	if dst.DType() != engine.F32 || x.DType() != engine.F32 {
		panic(fmt.Sprintf("gl: SumTo: dst %v and x %v must be F32", dst, x))
	}
	p := planSum("SumTo", dst.Shape(), x.Shape())
	if p.M != dst.Numel() {
		panic(fmt.Sprintf("gl: SumTo: dst %v does not broadcast to x %v", dst.Shape(), x.Shape()))
	}
	b.sumBuf(buf(dst), buf(x), p)
}
