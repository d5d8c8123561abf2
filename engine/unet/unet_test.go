package unet_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"glimmer/engine"
	"glimmer/engine/cpu"
	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
	"glimmer/engine/unet"
)

// tolerance is the allowed max|got − ref| relative to max(1, max|ref|).
// The references are float32 on the CPU from fp16-exact weights; the
// fixture README puts a correct float32 implementation within ~1e-4
// (other summation orders, a GPU: 6e-6 on images), so 1e-4 leaves room
// for llvmpipe's and our kernels' orders while catching any real mistake
// (a wrong eps, head split or skip order moves the output by 1e-2 or more).
const tolerance = 1e-4

var backends = enginetest.Backends()

// fixture is one tiny model with its reference outputs.
type fixture struct {
	name  string
	model []string // path under ../shared
	refs  []string
}

var fixtureModels = []fixture{
	{"sd1-single", []string{"fixtures", "sd1-tiny", "sd1-tiny.safetensors"}, []string{"fixtures", "sd1-tiny", "refs", "sd1-components.safetensors"}},
	{"sd1-diffusers", []string{"fixtures", "sd1-tiny", "diffusers"}, []string{"fixtures", "sd1-tiny", "refs", "sd1-components.safetensors"}},
	{"sd2-diffusers", []string{"fixtures", "sd2-tiny", "diffusers"}, []string{"fixtures", "sd2-tiny", "refs", "sd2-components.safetensors"}},
}

// refs holds a components reference file's tensors.
type refs struct {
	f *safetensors.File
}

func openRefs(t *testing.T, elem []string) refs {
	f, err := safetensors.Open(fixtures.Path(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return refs{f}
}

// get returns a reference tensor's values and shape.
func (r refs) get(t *testing.T, name string) ([]float32, []int) {
	t.Helper()
	v, err := r.f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := r.f.Info(name)
	shape := make([]int, len(info.Shape))
	for i, d := range info.Shape {
		shape[i] = int(d)
	}
	return v, shape
}

// embedding returns text.embeddings[i] as [1, 77, C].
func (r refs) embedding(t *testing.T, i int) ([]float32, []int) {
	all, shape := r.get(t, "text.embeddings")
	n := shape[1] * shape[2]
	return all[i*n : (i+1)*n], []int{1, shape[1], shape[2]}
}

// loadUNet opens a fixture model and loads its U-Net onto b with F16
// weights, as the GL backend keeps them.
func loadUNet(t *testing.T, b engine.Backend, fx fixture) *unet.UNet {
	t.Helper()
	m, err := model.Open(fixtures.Path(t, fx.model...), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	u, err := unet.Load(nn.NewLoader(b, m.Component(model.UNet), false), m.Config.UNet)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func upload(b engine.Backend, v []float32, shape ...int) *engine.Tensor {
	t := b.New(engine.F32, shape...)
	b.Write(t, v)
	return t
}

// run computes the U-Net on host values and returns the output.
func run(t *testing.T, b engine.Backend, u *unet.UNet, x []float32, xs []int, ts []float32, ctx []float32, cs []int) []float32 {
	t.Helper()
	ct := upload(b, ctx, cs...)
	defer b.Free(ct)
	return runWith(t, b, u, x, xs, ts, ct)
}

// runWith is run with the context already on the backend.
func runWith(t *testing.T, b engine.Backend, u *unet.UNet, x []float32, xs []int, ts []float32, ct *engine.Tensor) []float32 {
	t.Helper()
	xt := upload(b, x, xs...)
	out := b.New(engine.F32, xs[0], u.Config.OutChannels, xs[2], xs[3])
	defer func() { b.Free(xt); b.Free(out) }()
	if err := u.Forward(out, xt, ts, ct); err != nil {
		t.Fatal(err)
	}
	got, err := b.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// compare returns max|got − want| and max(1, max|want|), failing on NaN or
// a length mismatch.
func compare(t *testing.T, got, want []float32) (maxErr, scale float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	scale = 1
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			t.Fatalf("value %d is %v", i, g)
		}
		maxErr = max(maxErr, math.Abs(g-w))
		scale = max(scale, math.Abs(w))
	}
	return maxErr, scale
}

// check compares got with the reference tensor name within tolerance.
func (r refs) check(t *testing.T, name string, got []float32) {
	t.Helper()
	want, _ := r.get(t, name)
	maxErr, scale := compare(t, got, want)
	t.Logf("%s: max|err| %.3g (max|ref| scale %.3g)", name, maxErr, scale)
	if maxErr > tolerance*scale {
		t.Errorf("%s: max|err| %.3g > %.0e × %.3g", name, maxErr, tolerance, scale)
	}
}

// reversed is x back to front: a second latent for batch tests.
func reversed(x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[len(x)-1-i] = v
	}
	return out
}

// twice is shape with its batch dimension set to 2.
func twice(shape []int) []int { return append([]int{2}, shape[1:]...) }

// fixtureCase is one U-Net call with its reference output.
type fixtureCase struct {
	ref string    // reference tensor name
	x   []float32 // latent
	xs  []int     // its shape
	t   float32   // timestep
	ctx []float32 // text embedding [1, 77, C]
}

// TestFixtures runs every fixture U-Net on every backend against the
// diffusers outputs: three timesteps on an 8x8 latent, and t=500 on a
// non-square 8x12 latent (whose odd 3-wide level needs the upsampler to
// resize to the skip's size) with another prompt.
func TestFixtures(t *testing.T) {
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			for _, fx := range fixtureModels {
				t.Run(fx.name, func(t *testing.T) {
					start := time.Now()
					r := openRefs(t, fx.refs)
					u := loadUNet(t, b, fx)
					defer u.Close()
					x, xs := r.get(t, "unet.x")
					xw, xws := r.get(t, "unet.x_wide")
					e0, es := r.embedding(t, 0)
					e1, _ := r.embedding(t, 1)
					cases := []fixtureCase{
						{"unet.eps.t999", x, xs, 999, e0},
						{"unet.eps.t500", x, xs, 500, e0},
						{"unet.eps.t1", x, xs, 1, e0},
						{"unet.eps_wide.t500", xw, xws, 500, e1},
					}
					if be.Name == "gl" && fx.name != fixtureModels[0].name {
						// llvmpipe runs a tiny U-Net in about a second (its
						// 97 convolutions dominate); after the first model,
						// one square and one non-square case cover what GL
						// adds (the ops); the layouts and timesteps are the
						// same on both backends.
						cases = []fixtureCase{cases[0], cases[3]}
					}
					for _, c := range cases {
						r.check(t, c.ref, run(t, b, u, c.x, c.xs, []float32{c.t}, c.ctx, es))
					}
					t.Logf("%v", time.Since(start).Round(time.Millisecond))
				})
			}
		})
	}
}

// TestBatch checks that a batch of two — different latents, timesteps
// and prompts, as CFG's conditional and unconditional halves — equals two
// batch-1 calls, that one shared timestep broadcasts, and that repeated
// calls allocate no new activations.
func TestBatch(t *testing.T) {
	fx := fixtureModels[0]
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			r := openRefs(t, fx.refs)
			u := loadUNet(t, b, fx)
			defer u.Close()
			x0, xs := r.get(t, "unet.x")
			x1 := reversed(x0)
			e0, es := r.embedding(t, 0)
			e1, _ := r.embedding(t, 1)
			xs2, cs2 := twice(xs), twice(es)

			want0 := run(t, b, u, x0, xs, []float32{999}, e0, es)
			want1 := run(t, b, u, x1, xs, []float32{500}, e1, es)
			bytes := u.ActivationBytes()
			got := run(t, b, u, append(x0, x1...), xs2, []float32{999, 500}, append(e0, e1...), cs2)
			half := len(got) / 2
			for i, want := range [][]float32{want0, want1} {
				maxErr, scale := compare(t, got[i*half:(i+1)*half], want)
				t.Logf("batch entry %d vs batch 1: max|err| %.3g", i, maxErr)
				if maxErr > tolerance*scale {
					t.Errorf("batch entry %d: max|err| %.3g vs its batch-1 run", i, maxErr)
				}
			}

			// One timestep shared by the batch: entry 0 is the t=500 reference.
			ref500, _ := r.get(t, "unet.eps.t500")
			bytes2 := u.ActivationBytes()
			got = run(t, b, u, append(x0, x1...), xs2, []float32{500}, append(e0, e0...), cs2)
			if maxErr, scale := compare(t, got[:half], ref500); maxErr > tolerance*scale {
				t.Errorf("shared timestep: max|err| %.3g vs unet.eps.t500", maxErr)
			}
			if u.ActivationBytes() != bytes2 {
				t.Errorf("a repeated batch-2 call grew the activation pool from %d to %d bytes", bytes2, u.ActivationBytes())
			}
			t.Logf("activations: %d bytes at batch 1, %d at batch 2", bytes, bytes2)
		})
	}
}

// TestSharedInput: one latent under two prompts (x [1, ...], context
// [2, ...], CFG's case) gives what that latent repeated in a batch of two
// gives, though everything before the first cross-attention runs on one
// row (UNet.Forward): the same bits on the CPU backend, whose sums do not
// depend on the rows; on GL the GEMM planner may split K otherwise for
// half the rows, so within the fixtures' tolerance (llvmpipe: 3e-6, last
// bits, which the network amplifies). Its first entry matches the
// diffusers reference; a shared input with two different timesteps is an
// error.
func TestSharedInput(t *testing.T) {
	for _, fx := range fixtureModels[1:] { // SD 1 and SD 2 (linear projections)
		for _, be := range backends {
			t.Run(fx.name+"/"+be.Name, func(t *testing.T) {
				b := be.Open(t)
				defer b.Close()
				r := openRefs(t, fx.refs)
				u := loadUNet(t, b, fx)
				defer u.Close()
				x, xs := r.get(t, "unet.x")
				e0, es := r.embedding(t, 0)
				e1, _ := r.embedding(t, 1)
				ctx := upload(b, append(e0, e1...), twice(es)...)
				defer b.Free(ctx)

				want := runWith(t, b, u, append(x, x...), twice(xs), []float32{500, 500}, ctx)
				xt := upload(b, x, xs...)
				defer b.Free(xt)
				out := b.New(engine.F32, twice(xs)...)
				defer b.Free(out)
				for i := range 2 { // the second call reuses the pool's buffers
					b.Write(out, slices.Repeat([]float32{float32(math.NaN())}, len(want)))
					if err := u.Forward(out, xt, []float32{500, 500}, ctx); err != nil {
						t.Fatal(err)
					}
					got, err := b.Read(out)
					if err != nil {
						t.Fatal(err)
					}
					maxErr, scale := compare(t, got, want)
					t.Logf("call %d: max|err| %.3g against the repeated input", i, maxErr)
					if maxErr > tolerance*scale {
						t.Errorf("call %d: max|err| %.3g > %.0e × %.3g against the repeated input", i, maxErr, tolerance, scale)
					}
					if be.Name == "cpu" {
						for j := range got {
							if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
								t.Fatalf("call %d: element %d of %d is %v, repeated input %v", i, j, len(got), got[j], want[j])
							}
						}
					}
					r.check(t, "unet.eps.t500", got[:len(got)/2])
				}
				if err := u.Forward(out, xt, []float32{500, 1}, ctx); err == nil {
					t.Error("a shared input with two timesteps: no error")
				} else {
					t.Log(err)
				}
			})
		}
	}
}

// TestKeepContext: with the context kept, the steps after the first reuse
// its projected keys and values and give the same bits as computing them
// again; ForgetContext gives their memory back.
func TestKeepContext(t *testing.T) {
	fx := fixtureModels[0]
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			g := openGuided(t, be, fx)
			u, x0, ctx := g.u, g.x0, g.ctx
			x1 := reversed(x0)
			cat := func(a, b []float32) []float32 { return append(append([]float32{}, a...), b...) }
			steps := []struct {
				x  []float32
				ts []float32
			}{{cat(x0, x0), []float32{999}}, {cat(x1, x0), []float32{500, 700}}, {cat(x0, x1), []float32{1}}}
			var calls []int // MatMul calls of each forward
			var want [][]float32
			for _, s := range steps {
				got, n := g.forward(t, s.x, s.ts)
				want, calls = append(want, got), append(calls, n)
			}
			mem := g.memory(t)
			before := mem()
			u.KeepContext(ctx)
			for i, s := range steps {
				got, n := g.forward(t, s.x, s.ts)
				calls = append(calls, n)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("step %d with the context kept: out[%d] = %g, %g recomputed", i, j, got[j], want[i][j])
					}
				}
			}
			// Without: the same calls every step; kept: two fewer for each
			// cross-attention after the first.
			n := len(steps)
			if calls[0] != calls[n] || calls[n+1] != calls[n+2] || calls[n+1] >= calls[n] || (calls[n]-calls[n+1])%2 != 0 {
				t.Errorf("MatMul calls a step: %v recomputed, %v with the context kept", calls[:n], calls[n:])
			}
			if kept := mem() - before; kept <= 0 {
				t.Errorf("with the context kept the backend holds %d more bytes, want the keys and values", kept)
			}
			u.ForgetContext()
			if mem() != before {
				t.Errorf("after ForgetContext the backend holds %d bytes, %d before KeepContext", mem(), before)
			}
		})
	}
}

// TestFastConvs checks that FastConvs marks every convolution the U-Net
// runs, and holds the GL backend's fast algorithm for them, Winograd
// F(4x4, 3x3), forced on each 3x3 convolution (GLIMMER_GL_WINO_F4=2; by
// default it starts at 128 tiles, more than the fixtures' 8x8 latents
// make), to the fixtures at the usual tolerance; it must also change
// the result's bits, or F(4x4, 3x3) never ran.
func TestFastConvs(t *testing.T) {
	fx := fixtureModels[0]
	r := openRefs(t, fx.refs)
	x, xs := r.get(t, "unet.x")
	e0, es := r.embedding(t, 0)
	t.Run("marks", func(t *testing.T) {
		cb := &countingBackend{Backend: cpu.New()}
		defer cb.Close()
		u := loadUNet(t, cb, fx)
		defer u.Close()
		for _, on := range []bool{true, false} {
			u.FastConvs(on)
			cb.convs, cb.fastConvs = 0, 0
			run(t, cb, u, x, xs, []float32{500}, e0, es)
			if want := map[bool]int{true: cb.convs, false: 0}[on]; cb.convs == 0 || cb.fastConvs != want {
				t.Errorf("FastConvs(%v): %d of %d convolutions Fast, want %d", on, cb.fastConvs, cb.convs, want)
			}
		}
	})
	for _, fx := range fixtureModels[1:] { // sd1's two files hold the same weights
		t.Run("gl/"+fx.name, func(t *testing.T) {
			r := openRefs(t, fx.refs)
			x, xs := r.get(t, "unet.x")
			xw, xws := r.get(t, "unet.x_wide")
			e0, es := r.embedding(t, 0)
			e1, _ := r.embedding(t, 1)
			cases := []fixtureCase{{"unet.eps.t999", x, xs, 999, e0}, {"unet.eps_wide.t500", xw, xws, 500, e1}}
			outs := map[string][][]float32{}
			for _, f4 := range []string{"0", "2"} {
				t.Setenv("GLIMMER_GL_WINO_F4", f4)
				b := enginetest.OpenGL(t)
				u := loadUNet(t, b, fx)
				u.FastConvs(true)
				for _, c := range cases {
					got := run(t, b, u, c.x, c.xs, []float32{c.t}, c.ctx, es)
					outs[f4] = append(outs[f4], got)
					if f4 == "2" {
						r.check(t, c.ref, got)
					}
				}
				u.Close()
				b.Close()
			}
			for i, c := range cases {
				if slices.Equal(outs["0"][i], outs["2"][i]) {
					t.Errorf("%s: the same bits with F(4x4, 3x3) forced as without", c.ref)
				}
			}
		})
	}
}

// TestFoldTimeEmbedding: with FoldTimeEmbedding every ResNet's norm2
// takes the time embedding as its shift (one GroupNorm with a Shift per
// ResNet, one Binary Add fewer each) and the U-Net's output keeps its bits,
// on the GL backend (the production path) and the CPU backend.
func TestFoldTimeEmbedding(t *testing.T) {
	fx := fixtureModels[1]
	r := openRefs(t, fx.refs)
	x, xs := r.get(t, "unet.x")
	e0, es := r.embedding(t, 0)
	for _, name := range []string{"gl", "cpu"} {
		t.Run(name, func(t *testing.T) {
			var inner engine.Backend = cpu.New()
			if name == "gl" {
				inner = enginetest.OpenGL(t)
			}
			cb := &countingBackend{Backend: inner}
			defer cb.Close()
			u := loadUNet(t, cb, fx)
			defer u.Close()
			outs := map[bool][]float32{}
			counts := map[bool][2]int{}
			for _, on := range []bool{false, true} {
				u.FoldTimeEmbedding(on)
				cb.binaries, cb.shifts = 0, 0
				outs[on] = run(t, cb, u, x, xs, []float32{500}, e0, es)
				counts[on] = [2]int{cb.binaries, cb.shifts}
			}
			resnets := countResnets(u)
			if counts[false][1] != 0 || counts[true][1] != resnets || counts[false][0]-counts[true][0] != resnets {
				t.Errorf("(Binary calls, shifted GroupNorms): %v unfolded, %v folded; want %d shifts and %d Binary calls fewer", counts[false], counts[true], resnets, resnets)
			}
			for i := range outs[false] {
				if math.Float32bits(outs[false][i]) != math.Float32bits(outs[true][i]) {
					t.Fatalf("output %d: %g folded, %g unfolded", i, outs[true][i], outs[false][i])
				}
			}
		})
	}
}

// TestKeepTimesteps: with a generation's timesteps kept, a Forward at one
// of them takes every ResNet's projected time embedding from the rows
// computed at once for all, with the same bits as computing them at that
// step, and makes the time embedding's two products and one per ResNet
// fewer; a Forward at timesteps not kept (or not one shared by the batch)
// computes them as before. Without FoldTimeEmbedding nothing is kept, and
// ForgetTimesteps gives the memory back.
func TestKeepTimesteps(t *testing.T) {
	fx := fixtureModels[1]
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			g := openGuided(t, be, fx)
			u := g.u
			u.FoldTimeEmbedding(true)
			x := append(append([]float32{}, g.x0...), reversed(g.x0)...)
			steps := [][]float32{{999}, {500, 700}, {1}, {250}, {500}}
			kept := []bool{true, false, true, false, true}
			var calls []int // MatMul calls of each forward
			var want [][]float32
			for _, ts := range steps {
				got, n := g.forward(t, x, ts)
				want, calls = append(want, got), append(calls, n)
			}
			mem := g.memory(t)
			before := mem()
			u.FoldTimeEmbedding(false)
			u.KeepTimesteps([]float32{999, 500, 1}, 2)
			if mem() != before {
				t.Errorf("KeepTimesteps without FoldTimeEmbedding holds %d more bytes, want none", mem()-before)
			}
			u.FoldTimeEmbedding(true)
			u.KeepTimesteps([]float32{999, 500, 1}, 2)
			if mem() <= before {
				t.Errorf("with the timesteps kept the backend holds %d more bytes, want the projections", mem()-before)
			}
			resnets := countResnets(u)
			n := len(steps)
			for i, ts := range steps {
				got, c := g.forward(t, x, ts)
				calls = append(calls, c)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("timesteps %v with %v kept: out[%d] = %g, %g computed at the step", ts, []float32{999, 500, 1}, j, got[j], want[i][j])
					}
				}
				fewer := 0
				if kept[i] {
					fewer = resnets + 2
				}
				if calls[i]-calls[n+i] != fewer {
					t.Errorf("timesteps %v: %d MatMul calls computed, %d kept; want %d fewer", ts, calls[i], calls[n+i], fewer)
				}
			}
			u.ForgetTimesteps()
			if mem() != before {
				t.Errorf("after ForgetTimesteps the backend holds %d bytes, %d before KeepTimesteps", mem(), before)
			}
		})
	}
}

// guided is a fixture's U-Net on a counting backend with a batch of two
// text contexts (two prompts' embeddings), as CFG runs it.
type guided struct {
	cb  *countingBackend
	u   *unet.UNet
	x0  []float32      // one image's latents
	xs  []int          // the batch of two's shape
	ctx *engine.Tensor // [2, L, Ckv]
}

// openGuided loads fx on be; the test's cleanup frees it all.
func openGuided(t *testing.T, be enginetest.Backend, fx fixture) guided {
	t.Helper()
	cb := &countingBackend{Backend: be.Open(t)}
	t.Cleanup(func() { cb.Close() })
	r := openRefs(t, fx.refs)
	u := loadUNet(t, cb, fx)
	x0, xs := r.get(t, "unet.x")
	e0, es := r.embedding(t, 0)
	e1, _ := r.embedding(t, 1)
	ctx := upload(cb, append(e0, e1...), twice(es)...) // [2, L, Ckv]
	t.Cleanup(func() { cb.Free(ctx); u.Close() })
	return guided{cb: cb, u: u, x0: x0, xs: twice(xs), ctx: ctx}
}

// forward runs the U-Net on the batch x at timesteps ts and returns its
// output and the MatMul calls it made.
func (g guided) forward(t *testing.T, x, ts []float32) ([]float32, int) {
	t.Helper()
	g.cb.matMuls = 0
	out := runWith(t, g.cb, g.u, x, g.xs, ts, g.ctx)
	return out, g.cb.matMuls
}

// memory returns a reader of the device memory the backend holds now.
func (g guided) memory(t *testing.T) func() int64 {
	t.Helper()
	mem, ok := g.cb.Backend.(interface{ MemoryStats() engine.MemoryStats })
	if !ok {
		t.Fatalf("%T reports no memory stats", g.cb.Backend)
	}
	return func() int64 { return mem.MemoryStats().Current }
}

// countResnets is the number of ResNet blocks in u.
func countResnets(u *unet.UNet) int {
	n := len(u.MidBlock.Resnets)
	for _, d := range u.DownBlocks {
		n += len(d.Resnets)
	}
	for _, up := range u.UpBlocks {
		n += len(up.Resnets)
	}
	return n
}

// countingBackend counts MatMul calls, Conv2D calls and those of them
// marked Fast, Binary calls and GroupNorms with a Shift.
type countingBackend struct {
	engine.Backend
	matMuls, convs, fastConvs, binaries, shifts int
}

func (c *countingBackend) Binary(dst, x, y *engine.Tensor, op engine.BinaryOp) {
	c.binaries++
	c.Backend.Binary(dst, x, y, op)
}

func (c *countingBackend) GroupNorm(dst, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	if p.Shift != nil {
		c.shifts++
	}
	c.Backend.GroupNorm(dst, x, gamma, beta, p)
}

func (c *countingBackend) Conv2D(dst, x, w, bias *engine.Tensor, p engine.Conv2DParams) {
	c.convs++
	if p.Fast {
		c.fastConvs++
	}
	c.Backend.Conv2D(dst, x, w, bias, p)
}

func (c *countingBackend) MatMul(dst, a, w, bias *engine.Tensor, p engine.MatMulParams) {
	c.matMuls++
	c.Backend.MatMul(dst, a, w, bias, p)
}

// TestForwardErrors checks that bad arguments are errors, not panics.
func TestForwardErrors(t *testing.T) {
	b := cpu.New()
	u := loadUNet(t, b, fixtureModels[0])
	defer u.Close()
	x := b.New(engine.F32, 2, 4, 8, 8)
	dst := b.New(engine.F32, 2, 4, 8, 8)
	ctx := b.New(engine.F32, 2, 77, 128)
	for _, c := range []struct {
		name        string
		dst, x, ctx *engine.Tensor
		ts          []float32
	}{
		{"channels", dst, b.New(engine.F32, 2, 3, 8, 8), ctx, []float32{1}},
		{"dst shape", b.New(engine.F32, 2, 4, 8, 4), x, ctx, []float32{1}},
		{"context batch", dst, x, b.New(engine.F32, 3, 77, 128), []float32{1}},
		{"context width", dst, x, b.New(engine.F32, 2, 77, 64), []float32{1}},
		{"timesteps", dst, x, ctx, []float32{1, 2, 3}},
	} {
		if err := u.Forward(c.dst, c.x, c.ts, c.ctx); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

// TestLoadErrors checks that a config the weights do not match fails
// with the tensor's name.
func TestLoadErrors(t *testing.T) {
	m, err := model.Open(fixtures.Path(t, fixtureModels[0].model...), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg := m.Config.UNet
	cfg.CrossAttentionDim = 64
	_, err = unet.Load(nn.NewLoader(cpu.New(), m.Component(model.UNet), false), cfg)
	if err == nil {
		t.Fatal("no error for a wrong cross-attention width")
	}
	t.Log(err)
	cfg = m.Config.UNet
	cfg.Heads = []int{8, 8}
	if _, err = unet.Load(nn.NewLoader(cpu.New(), m.Component(model.UNet), false), cfg); err == nil {
		t.Fatal("no error for a short Heads list")
	}
	t.Log(err)
}

// TestHomeKept: with HomeKept the time embeddings KeepTimesteps keeps and
// the keys and values KeepContext keeps lie in the part of a region given
// (the pipeline's, which the U-Net's arena leaves idle during the steps):
// the backend holds less for them than without, the outputs keep their
// bits, nothing of the region outside the part is written, and a part too
// small for them makes them allocate as before.
func TestHomeKept(t *testing.T) {
	fx := fixtureModels[1]
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			mr, ok := b.(engine.MemoryReporter)
			if !ok {
				t.Fatalf("%s reports no memory stats", b.Name())
			}
			mem := func() int64 { return mr.MemoryStats().Current }
			r := openRefs(t, fx.refs)
			u := loadUNet(t, b, fx)
			defer u.Close()
			u.FoldTimeEmbedding(true)
			x0, xs := r.get(t, "unet.x")
			e0, es := r.embedding(t, 0)
			e1, _ := r.embedding(t, 1)
			ctx := upload(b, append(e0, e1...), twice(es)...) // [2, L, Ckv]
			defer b.Free(ctx)
			x := append(append([]float32{}, x0...), reversed(x0)...)
			ts := []float32{999, 500}
			// run keeps the timesteps and context, runs the step at the
			// second timestep (the kept rows past the first) and forgets
			// them, returning the output and how much more the backend
			// held while they were kept.
			run := func() ([][]float32, int64) {
				before := mem()
				u.KeepContext(ctx)
				u.KeepTimesteps(ts, 2)
				outs := [][]float32{runWith(t, b, u, x, twice(xs), ts[1:], ctx)}
				held := mem() - before
				u.ForgetContext()
				u.ForgetTimesteps()
				return outs, held
			}
			run() // the activation arena, made once
			want, plainHeld := run()

			sub := b.(engine.Suballocator)
			part := 1 << 20 // elements: far more than fx's kept tensors
			off := 2 * sub.SubAlign()
			region := b.New(engine.F32, off+part+off) // [before, part, after]
			defer b.Free(region)
			poison := make([]float32, region.Numel())
			for i := range poison {
				poison[i] = -3.5
			}
			b.Write(region, poison)
			u.HomeKept(region, off, part)
			got, homedHeld := run()
			for i := range want {
				for j := range want[i] {
					if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("kept in the region, step %d: out[%d] = %g, %g kept apart", i, j, got[i][j], want[i][j])
					}
				}
			}
			v, err := b.Read(region)
			if err != nil {
				t.Fatal(err)
			}
			wrote := false
			for i, f := range v {
				inside := i >= off && i < off+part
				if !inside && f != -3.5 {
					t.Fatalf("region element %d (the part is %d..%d) is %g: written outside the part", i, off, off+part, f)
				}
				wrote = wrote || inside && f != -3.5
			}
			t.Logf("the backend held %d more bytes while the steps' tensors were kept, %d with them in the region", plainHeld, homedHeld)
			if !wrote || homedHeld >= plainHeld {
				t.Errorf("in the region the kept tensors wrote to it: %v, and the backend held %d more bytes, %d without; want written, and less",
					wrote, homedHeld, plainHeld)
			}

			u.HomeKept(region, off, sub.SubAlign()) // too small for any
			got, smallHeld := run()
			// Allocated again (the pool's scratch aside, what it held
			// without a part).
			if 2*smallHeld < plainHeld {
				t.Errorf("a part too small: the backend held %d more bytes, %d without a part: the kept tensors did not allocate", smallHeld, plainHeld)
			}
			for i := range want {
				for j := range want[i] {
					if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("a part too small, step %d: out[%d] = %g, want %g", i, j, got[i][j], want[i][j])
					}
				}
			}
			u.HomeKept(nil, 0, 0)
		})
	}
}
