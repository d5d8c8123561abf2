package conformance

import (
	"math/rand/v2"
	"testing"

	"glimmer/engine"
)

// benchKit is what Bench and BenchGrad share: tensors that are freed at
// the end, and a timer that reports GFLOP/s and GB/s.
type benchKit struct {
	b   *testing.B
	be  engine.Backend
	rng *rand.Rand
	all []*engine.Tensor
}

func newBenchKit(b *testing.B, be engine.Backend, seed1, seed2 uint64) *benchKit {
	b.Logf("backend: %s", be.Name())
	return &benchKit{b: b, be: be, rng: rand.New(rand.NewPCG(seed1, seed2))}
}

// free releases every tensor the kit made.
func (k *benchKit) free() {
	for _, t := range k.all {
		k.be.Free(t)
	}
}

// empty makes an output tensor.
func (k *benchKit) empty(dtype engine.DType, shape ...int) *engine.Tensor {
	x := k.be.New(dtype, shape...) // shape
	k.all = append(k.all, x)
	return x
}

// tensor makes an input of N(0,1) values.
func (k *benchKit) tensor(dtype engine.DType, shape ...int) *engine.Tensor {
	x := k.empty(dtype, shape...) // shape
	vals := make([]float32, x.Numel())
	for i := range vals {
		vals[i] = float32(k.rng.NormFloat64())
	}
	k.be.Write(x, vals)
	return x
}

// bench times op, which does flops arithmetic and moves the given
// tensors' bytes (nil tensors are skipped). Each iteration ends with Sync,
// so asynchronous backends are timed to completion.
func (k *benchKit) bench(name string, flops float64, op func(), ts ...*engine.Tensor) {
	var bytes float64
	for _, t := range ts {
		if t != nil {
			bytes += float64(t.Bytes())
		}
	}
	k.b.Run(name, func(b *testing.B) {
		op() // warm up: shader compilation, first allocations
		if err := k.be.Sync(); err != nil {
			b.Fatal(err)
		}
		n := 0
		for b.Loop() {
			op()
			if err := k.be.Sync(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		sec := b.Elapsed().Seconds() / float64(n)
		if flops > 0 {
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
		}
		b.ReportMetric(bytes/sec/1e9, "GB/s")
	})
}
