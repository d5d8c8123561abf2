package gl

import (
	"fmt"
	"math"
	"testing"
	"time"

	gl "github.com/go-gl/gl/v4.3-core/gl"

	"glimmer/engine"
)

// TestPark: a tensor parked in host memory, freed, and unparked into a
// fresh tensor comes back bit for bit (F16 and F32, NaN and infinities
// included), and a second unpark of the same copy too. The drivers the
// backend runs on (Mesa's llvmpipe, NVIDIA's) offer glBufferStorage, so
// Park must not decline.
func TestPark(t *testing.T) {
	b := openGL(t)
	b.park = true
	for _, dt := range []engine.DType{engine.F16, engine.F32} {
		const n = 1001
		x := b.New(dt, 3, n) // [3, n]: an odd number of F16 values
		v := make([]float32, x.Numel())
		for i := range v {
			v[i] = float32(math.Sin(float64(i))) * 70000 // past F16's range: ±Inf
		}
		v[7] = float32(math.NaN())
		b.Write(x, v)
		want, err := b.Read(x)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := b.Park(x)
		if !ok {
			t.Fatalf("%v: Park declined on %s", dt, b.Name())
		}
		b.Free(x)
		for round := range 2 {
			y := b.New(dt, 3, n) // [3, n]
			b.Write(y, make([]float32, y.Numel()))
			b.Unpark(y, p)
			got, err := b.Read(y)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v, unpark %d: [%d] = %g, parked %g", dt, round, i, got[i], want[i])
				}
			}
			b.Free(y)
		}
		b.Drop(p)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestParkRegion: tensors unparked into parts of one buffer (--offload's
// region, nn.Offload.Home), an F16 one at its start and an F32 one after
// it, come back bit for bit, read by a dispatch and by the host, and
// leave the region's other bytes as they were.
func TestParkRegion(t *testing.T) {
	b := openGL(t)
	b.park = true
	nBig, nSmall := 70001, 1001
	_, bigEnd := engine.SubPlace(b, 0, engine.F16, nBig)
	offSmall, end := engine.SubPlace(b, bigEnd, engine.F32, nSmall)
	region := b.New(engine.F32, end+64) // [both, aligned, and 64 past them]
	var ps []engine.Parked
	var want [][]float32
	for i, dt := range []engine.DType{engine.F16, engine.F32} {
		n := []int{nBig, nSmall}[i]
		x := b.New(dt, n) // [n]
		v := make([]float32, n)
		for j := range v {
			v[j] = float32(math.Cos(float64(j)+float64(i))) * 3
		}
		b.Write(x, v)
		w, err := b.Read(x)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := b.Park(x)
		if !ok {
			t.Fatalf("Park declined on %s", b.Name())
		}
		b.Free(x)
		ps, want = append(ps, p), append(want, w)
	}
	fill := make([]float32, region.Numel())
	for i := range fill {
		fill[i] = -7
	}
	b.Write(region, fill)
	big := b.Sub(region, 0, engine.F16, nBig)            // [nBig]
	small := b.Sub(region, offSmall, engine.F32, nSmall) // [nSmall]
	b.Unpark(big, ps[0])
	b.Unpark(small, ps[1])
	z := b.New(engine.F32, nSmall) // [nSmall]
	b.Scale(z, small, 1, 0)
	for i, x := range []*engine.Tensor{big, z} {
		got, err := b.Read(x)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want[i] {
			if math.Float32bits(got[j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("tensor %d: [%d] = %g, parked %g", i, j, got[j], want[i][j])
			}
		}
	}
	all, err := b.Read(region)
	if err != nil {
		t.Fatal(err)
	}
	for j := end; j < len(all); j++ {
		if all[j] != -7 {
			t.Fatalf("region[%d] = %g past the unparked tensors, want -7", j, all[j])
		}
	}
	for _, p := range ps {
		b.Drop(p)
	}
	b.Free(z)
	b.Free(region)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPark times parking and unparking 256 MiB (what --offload moves
// per image is about 0.36 GiB of U-Net and 0.09 GiB of VAE weights), and
// reports how much of the driver's free video memory the parked copy
// took (NVIDIA: GL_NVX_gpu_memory_info; 0 means system memory).
func BenchmarkPark(bm *testing.B) {
	b := openGL(bm)
	b.park = true
	const n = 128 << 20       // F16 values: 256 MiB
	x := b.New(engine.F16, n) // [n]
	b.Write(x, make([]float32, n))
	if err := b.Sync(); err != nil {
		bm.Fatal(err)
	}
	free0 := b.freeVideoMemory()
	start := time.Now()
	p, ok := b.Park(x)
	if !ok {
		bm.Fatalf("Park declined on %s", b.Name())
	}
	if err := b.Sync(); err != nil {
		bm.Fatal(err)
	}
	park := time.Since(start)
	free1 := b.freeVideoMemory()
	unpark := timeOp(bm, b, func() { b.Unpark(x, p) })
	gb := float64(2*n) / 1e9
	fmt.Printf("park 256 MiB: %.1f ms (%.1f GB/s, first copy); unpark: %.2f ms (%.1f GB/s); video memory the parked copy took: %d MiB (free %d -> %d MiB; -1: not reported)\n",
		park.Seconds()*1000, gb/park.Seconds(), unpark, gb/(unpark/1000), (free0-free1)>>20, free0>>20, free1>>20)
	b.Drop(p)
	b.Free(x)
}

// glGPUMemoryInfoAvailableNVX is GL_NVX_gpu_memory_info's free video
// memory query, in KiB.
const glGPUMemoryInfoAvailableNVX = 0x9049

// freeVideoMemory is the video memory the driver reports free, in bytes,
// where it offers GL_NVX_gpu_memory_info (NVIDIA), else -1.
func (b *Backend) freeVideoMemory() int64 {
	n := int64(-1)
	b.call(func() {
		if hasExtension("GL_NVX_gpu_memory_info") {
			var kib int32
			gl.GetIntegerv(glGPUMemoryInfoAvailableNVX, &kib)
			n = int64(kib) << 10
		}
	})
	return n
}
