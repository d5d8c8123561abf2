package unet_test

import (
	"math"
	"testing"

	"glimmer/engine"
	"glimmer/engine/nn"
	"glimmer/engine/unet"
)

// shapeArena is nn.ShapeOnly that can also cut tensors out of others
// (engine.Suballocator) at offsets of align elements, so a pool on it
// plans an arena as one on a real backend with that alignment does.
type shapeArena struct {
	nn.ShapeOnly
	align int
}

func (s shapeArena) Sub(t *engine.Tensor, off int, dtype engine.DType, shape ...int) *engine.Tensor {
	return s.New(dtype, shape...)
}
func (s shapeArena) SubAlign() int                         { return s.align }
func (s shapeArena) SubSpan(dtype engine.DType, n int) int { return n }

// TestPlanFollowed checks that real passes take their activations from
// the arena their rehearsal laid out, on every backend: the same calls
// (one image, a batch of two, CFG's two with a shared latent, each kind
// twice, so plans are made, followed and replaced, then the last with the
// context kept, whose bits must not change) leave the U-Net's
// activation peak where they leave it on a shape-only backend with the
// same alignment. A pass that left its plan would take best-fit buffers
// besides, and peak higher.
func TestPlanFollowed(t *testing.T) {
	fx := fixtureModels[0]
	r := openRefs(t, fx.refs)
	x, xs := r.get(t, "unet.x")
	e0, es := r.embedding(t, 0)
	e1, _ := r.embedding(t, 1)
	two := append(append([]float32{}, e0...), e1...)
	calls := func(t *testing.T, b engine.Backend, u *unet.UNet) {
		one, pair := upload(b, e0, es...), upload(b, two, twice(es)...)
		x1, x2 := upload(b, x, xs...), upload(b, append(append([]float32{}, x...), x...), twice(xs)...)
		out1, out2 := b.New(engine.F32, xs...), b.New(engine.F32, twice(xs)...)
		defer func() {
			for _, t := range []*engine.Tensor{one, pair, x1, x2, out1, out2} {
				b.Free(t)
			}
		}()
		for range 2 {
			for _, c := range []struct {
				out, x, ctx *engine.Tensor
				ts          []float32
			}{{out1, x1, one, []float32{500}}, {out2, x2, pair, []float32{999, 1}}, {out2, x1, pair, []float32{500}}} {
				if err := u.Forward(c.out, c.x, c.ts, c.ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The context kept: the first pass fills the keys and values, which
		// its rehearsal must leave alone; the results keep their bits.
		want, err := b.Read(out2)
		if err != nil {
			t.Fatal(err)
		}
		u.KeepContext(pair)
		defer u.ForgetContext()
		for range 2 {
			if err := u.Forward(out2, x1, []float32{500}, pair); err != nil {
				t.Fatal(err)
			}
			got, err := b.Read(out2)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("context kept: out[%d] = %g, %g computed", i, got[i], want[i])
				}
			}
		}
	}
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			u := loadUNet(t, b, fx)
			defer u.Close()
			calls(t, b, u)
			so := shapeArena{align: b.(engine.Suballocator).SubAlign()}
			us := loadUNet(t, so, fx)
			calls(t, so, us)
			ub := loadUNet(t, nn.ShapeOnly{}, fx) // best fit
			calls(t, nn.ShapeOnly{}, ub)
			t.Logf("activation peak %d bytes, rehearsed %d, best fit %d", u.ActivationPeak(), us.ActivationPeak(), ub.ActivationPeak())
			if got, want := u.ActivationPeak(), us.ActivationPeak(); got != want || got >= ub.ActivationPeak() {
				t.Errorf("activation peak %d bytes, want the rehearsal's %d, under best fit's %d", got, want, ub.ActivationPeak())
			}
		})
	}
}

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
		if _, ok := b.(engine.Suballocator); ok {
			// What --offload reserves for the arena before the pass
			// (UNet.ActivationArena) must hold it.
			bound := 4 * int64(u.ActivationArena(x.Shape(), ctx.Shape(), 64))
			t.Logf("ActivationArena's bound: %d bytes", bound)
			if bound < u.ActivationPeak() {
				t.Errorf("ActivationArena %d bytes, under the pass's arena of %d", bound, u.ActivationPeak())
			}
		}
		return u.ActivationPeak()
	}
	best, planned := peak(nn.ShapeOnly{}), peak(shapeArena{align: 64})
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
