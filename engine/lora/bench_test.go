package lora

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
	"glimmer/engine/model"
)

// BenchmarkLoraMerge: one SD 1.5-sized weight (F16) with a rank-32 LoRA,
// the cost each adapted weight adds to loading.
func BenchmarkLoraMerge(b *testing.B) {
	for _, s := range [][2]int{{1280, 1280}, {10240, 1280}} {
		b.Run(fmt.Sprintf("%dx%d", s[0], s[1]), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			src := &fakeSource{data: map[string]model.Data{
				"w.weight": {DType: engine.F16, Shape: []int{s[0], s[1]}, Bytes: packF16(make([]float32, s[0]*s[1]))},
			}}
			f := &File{Modules: []Module{randModule(rng, "unet.w", []int{32, s[1]}, []int{s[0], 32}, 16)}}
			m, err := Apply(src, UNet, []Weighted{{File: f, Weight: 1}})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(2 * s[0] * s[1]))
			for b.Loop() {
				if _, err := m.Raw("w.weight"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
