package gl

import (
	"math/rand/v2"
	"slices"
	"testing"

	"glimmer/engine"
)

// TestReadOnlyBindings: the bindings read and written, as the shaders'
// sources declare them, resolved through the variant's defines.
func TestReadOnlyBindings(t *testing.T) {
	for _, c := range []struct {
		op   string
		d    defines
		want []bool
	}{
		// C written; A, B, bias and residual (binding 4) read.
		{"matmul", defines{"TILE": 128, "BM": 128, "BN": 128, "BK": 8, "SPLITK": 1, "TRANS_B": 1, "B_F16": 1, "HAS_BIAS": 1, "HAS_RES": 1, "RES_BINDING": 4}, []bool{false, true, true, true, true}},
		// AdamW updates the parameters and both moments in place.
		{"adamw", defines{}, []bool{false, true, false, false}},
		// Binary writes y (which may be an operand) and reads a and b.
		{"binary", defines{"OP": 0}, []bool{false, true, true}},
	} {
		src, err := source(c.op, c.d)
		if err != nil {
			t.Fatal(err)
		}
		if got := readOnlyBindings(src, c.d); !slices.Equal(got, c.want) {
			t.Errorf("%s: read-only bindings %v, want %v", c.op, got, c.want)
		}
	}
	// A binding named by a macro the defines lack: ignored where readonly,
	// every binding written where not.
	src := "layout(std430, binding = 0) readonly buffer A { float a[]; };\nlayout(std430, binding = SOMEWHERE) readonly buffer B { float b[]; };\n"
	if got := readOnlyBindings(src, defines{}); !slices.Equal(got, []bool{true}) {
		t.Errorf("unresolved readonly binding: %v, want [true]", got)
	}
	src += "layout(std430, binding = ELSEWHERE) buffer C { float c[]; };\n"
	if got := readOnlyBindings(src, defines{}); got != nil {
		t.Errorf("unresolved written binding: %v, want nil (all written)", got)
	}
}

// TestBarrierPlacement: products of one input into separate outputs run
// with no barrier between them; a dispatch reading one of their outputs,
// or overwriting a buffer one of them still reads, gets one first; and
// the values are those of the barrier-after-every-dispatch backend. The
// same holds with every activation a Sub of one arena buffer (nn.Pool's
// plans): the ranges, not the buffer, decide.
func TestBarrierPlacement(t *testing.T) {
	_, ref := barrierRun(t, true, false)
	for _, arena := range []bool{false, true} {
		got, vals := barrierRun(t, false, arena)
		if want := []int{0, 0, 0, 0, 1, 1, 2}; !slices.Equal(got, want) {
			t.Errorf("arena %v: barriers placed after each step %v, want %v", arena, got, want)
		}
		if !slices.Equal(vals, ref) {
			t.Errorf("arena %v: results differ from the backend with a barrier after every dispatch", arena)
		}
	}
	// Subs are told apart by their ranges: overlapping ones depend on
	// each other, disjoint ones do not.
	b := openGL(t)
	whole := b.New(engine.F32, 1280)                                               // [1280]
	lo, hi := b.Sub(whole, 0, engine.F32, 512), b.Sub(whole, 256, engine.F32, 512) // [512] each, 256 shared
	far, free := b.Sub(whole, 768, engine.F32, 256), b.Sub(whole, 1024, engine.F32, 256)
	b.Write(whole, make([]float32, 1280))
	var got []int
	count := func() { b.call(func() { got = append(got, b.hazards.barriers) }) }
	count()
	b.Unary(lo, lo, engine.Tanh) // writes [0, 512)
	count()
	b.Unary(far, hi.View(256), engine.Tanh) // reads [256, 768): a barrier; writes [768, 1024)
	count()
	b.Unary(free, free, engine.Tanh) // [1024, 1280): none
	count()
	b.Unary(lo, lo, engine.Tanh) // overwrites [256, 512), still read: a barrier
	count()
	for i := range got {
		got[i] -= got[0]
	}
	if want := []int{0, 0, 1, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("subs of one buffer: barriers after each step %v, want %v", got, want)
	}
}

// barrierRun is TestBarrierPlacement's sequence of dispatches, on a
// backend with a barrier after every dispatch (all) or placed by the
// hazards, with x and the products in buffers of their own or cut from
// one arena; it returns the barriers counted after each step and the
// results.
func barrierRun(t *testing.T, all, arena bool) (barriers []int, out []float32) {
	b := openGL(t)
	b.barrierAll = all
	r := rand.New(rand.NewPCG(1, 2))
	const rowElems = 2 * 70 * 36
	var whole *engine.Tensor
	next := 0
	act := func() *engine.Tensor { // [B, N, C]
		if !arena {
			return b.New(engine.F32, 2, 70, 36)
		}
		t := b.Sub(whole, next, engine.F32, 2, 70, 36)
		next += (rowElems + b.SubAlign() - 1) / b.SubAlign() * b.SubAlign()
		return t
	}
	if arena {
		whole = b.New(engine.F32, 4*(rowElems+b.SubAlign())) // [4 activations, aligned]
	}
	x := act()
	xv := make([]float32, rowElems)
	for i := range xv {
		xv[i] = float32(r.NormFloat64())
	}
	b.Write(x, xv)
	var ws []*engine.Tensor
	for range 3 {
		w, _ := uploaded(t, b, r, engine.F16, 36, 36) // [C, C]
		ws = append(ws, w)
	}
	count := func() {
		b.call(func() { barriers = append(barriers, b.hazards.barriers) })
	}
	count()
	var ys []*engine.Tensor
	for _, w := range ws {
		y := act() // [B, N, C]
		b.MatMul(y, x, w, nil, engine.MatMulParams{TransB: true})
		ys = append(ys, y)
		count()
	}
	// Reads the first product: a barrier.
	b.Binary(ys[1], ys[1], ys[0], engine.Add) // [B, N, C]
	count()
	// Overwrites x, which no dispatch since that barrier read: none.
	b.Unary(x, ys[2], engine.Tanh) // [B, N, C]
	count()
	// Overwrites ys[2], which the Unary still reads: a barrier.
	b.MatMul(ys[2], ys[1], ws[0], nil, engine.MatMulParams{TransB: true}) // [B, N, C]
	count()
	for _, y := range append(ys, x) {
		v, err := b.Read(y)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v...)
	}
	return barriers, out
}
