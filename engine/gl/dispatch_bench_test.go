package gl

import (
	"fmt"
	"testing"

	"glimmer/engine"
)

// BenchmarkDispatch prices a dispatch: a chain of Scale passes, each
// reading what the one before wrote (a memory barrier between them, as
// between most of a U-Net step's dispatches), against the same passes on
// independent tensors (no barriers), for maps from 1K to 4M values. The
// chained 1K row is the fixed cost of one dependent dispatch: what a
// pass that another kernel's epilogue could do (the split-K finishing
// passes, element-wise ops) costs beyond its memory traffic.
func BenchmarkDispatch(bm *testing.B) {
	b := openGL(bm)
	fmt.Printf("%-10s %12s %12s\n", "values", "chained µs", "independent µs")
	for _, n := range []int{1 << 10, 1 << 16, 1 << 20, 1 << 22} {
		const width = 8
		ts := make([]*engine.Tensor, width)
		for i := range ts {
			ts[i] = b.New(engine.F32, n) // [n]
			b.Write(ts[i], make([]float32, n))
		}
		chained := timeOp(bm, b, func() {
			for range width {
				b.Scale(ts[0], ts[0], 1, 0)
			}
		})
		independent := timeOp(bm, b, func() {
			for _, t := range ts {
				b.Scale(t, t, 1, 0)
			}
		})
		fmt.Printf("%-10d %12.2f %12.2f\n", n, 1000*chained/width, 1000*independent/width)
		for _, t := range ts {
			b.Free(t)
		}
	}
}
