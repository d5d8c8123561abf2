package unet_test

import (
	"math"
	"testing"

	"glimmer/engine"
	"glimmer/engine/nn"
	"glimmer/engine/unet"
)

// shapeArena is nn.ShapeOnly that can also cut tensors out of others
// (engine.Suballocator), so a pool on it plans an arena.
type shapeArena struct{ nn.ShapeOnly }

func (s shapeArena) Sub(t *engine.Tensor, off int, shape ...int) *engine.Tensor {
	return s.New(engine.F32, shape...)
}
func (shapeArena) SubAlign() int { return 64 }

// TestPlanSD15UNet checks the activation memory of SD 1.5's U-Net at
// 512x512 with CFG (a shared latent, kept context and time embedding, as
// the pipeline runs it), built on shape-only backends: best fit, as a
// pool on a backend without Sub takes it, against the arena Plan lays out
// (nn/plan.go documents both). The planned figure is what is live at
// once at the widest point (the first transformer's feed-forward), so a
// step that left the plan, or a rehearsal that differed from the pass,
// would show here as more.
func TestPlanSD15UNet(t *testing.T) {
	peak := func(b engine.Backend) int64 {
		l := nn.NewInitLoader(b, func(_ string, s engine.Shape) []float32 { return make([]float32, s.Numel()) })
		l.TransposeLinears()
		u, err := unet.Load(l, sd15)
		if err != nil {
			t.Fatal(err)
		}
		u.FoldTimeEmbedding(true)
		u.FastConvs(true)
		x := b.New(engine.F32, 1, 4, 64, 64)   // [1, 4, 64, 64]
		dst := b.New(engine.F32, 2, 4, 64, 64) // [2, 4, 64, 64]
		ctx := b.New(engine.F32, 2, 77, 768)   // [2, 77, 768]
		ts := []float32{999, 500}
		u.KeepTimesteps(ts, 2)
		u.KeepContext(ctx)
		for _, step := range ts {
			if err := u.Forward(dst, x, []float32{step}, ctx); err != nil {
				t.Fatal(err)
			}
		}
		return u.ActivationPeak()
	}
	best, planned := peak(nn.ShapeOnly{}), peak(shapeArena{})
	t.Logf("best fit %d bytes, planned %d", best, planned)
	// Within 1% of the documented figures: a change to the U-Net's
	// buffers should be a deliberate one.
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"best fit", float64(best), 186.2e6}, {"planned", float64(planned), 89.1e6}} {
		if math.Abs(c.got-c.want) > 0.01*c.want {
			t.Errorf("%s: %.4g bytes, documented as %.4g", c.name, c.got, c.want)
		}
	}
}
