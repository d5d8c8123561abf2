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
// the values are those of the barrier-after-every-dispatch backend.
func TestBarrierPlacement(t *testing.T) {
	run := func(all bool) (barriers []int, out []float32) {
		b := openGL(t)
		b.barrierAll = all
		r := rand.New(rand.NewPCG(1, 2))
		x, _ := uploaded(t, b, r, engine.F32, 2, 70, 36) // [B, N, C]
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
			y := b.New(engine.F32, 2, 70, 36) // [B, N, C]
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
	got, vals := run(false)
	if want := []int{0, 0, 0, 0, 1, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("barriers placed after each step %v, want %v", got, want)
	}
	_, ref := run(true)
	if !slices.Equal(vals, ref) {
		t.Error("results differ from the backend with a barrier after every dispatch")
	}
}
