package nn_test

import (
	"fmt"
	"math"
	"testing"

	"glimmer/engine"
	"glimmer/engine/enginetest"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
)

// mapSource serves tensors from memory, as a checkpoint would.
type mapSource map[string]model.Data

func (s mapSource) Raw(name string) (model.Data, error) {
	d, ok := s[name]
	if !ok {
		return model.Data{}, fmt.Errorf("no tensor %s", name)
	}
	return d, nil
}

// encode stores v little-endian in dtype, as a checkpoint holds it.
func encode(dt engine.DType, shape engine.Shape, v []float32) model.Data {
	t := safetensors.F32Tensor("", shape, v)
	if dt == engine.F16 {
		t = safetensors.F16Tensor("", shape, v)
	}
	return model.Data{DType: dt, Shape: shape, Bytes: t.Data}
}

// TestTransposeLinears loads the same Linear layers as the checkpoint has
// them and through TransposeLinears, from F16 and F32 files, kept in the
// file's dtype or widened to F32, and checks that the transposed weight
// is exactly the other's transpose and that Forward and ForwardAdd agree
// with a float64 reference of y = x Wᵀ + b (+ res). Sizes: an odd In and
// Out (scalar loads, partial tiles) and multiples of 4 (vector loads).
func TestTransposeLinears(t *testing.T) {
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			for _, sz := range [][2]int{{37, 70}, {64, 68}} {
				in, out := sz[0], sz[1]
				w := make([]float32, out*in)
				bias := make([]float32, out)
				for i := range w {
					w[i] = float32(math.Sin(float64(i)*0.37)) / 4
				}
				for i := range bias {
					bias[i] = float32(math.Cos(float64(i)))
				}
				for _, dt := range []engine.DType{engine.F16, engine.F32} {
					src := mapSource{
						"l.weight": encode(dt, engine.Shape{out, in}, w),
						"l.bias":   encode(dt, engine.Shape{out}, bias),
					}
					for _, f32 := range []bool{false, true} {
						name := fmt.Sprintf("%dx%d %s f32=%v", in, out, dt, f32)
						plain := nn.NewLoader(b, src, f32)
						trans := nn.NewLoader(b, src, f32)
						trans.TransposeLinears()
						lp := nn.NewLinear(plain, "l", in, out, true)
						lt := nn.NewLinear(trans, "l", in, out, true)
						if err := plain.Err(); err != nil {
							t.Fatal(err)
						}
						if err := trans.Err(); err != nil {
							t.Fatal(err)
						}
						if lp.Transposed || !lt.Transposed {
							t.Fatalf("%s: Transposed %v and %v, want false and true", name, lp.Transposed, lt.Transposed)
						}
						checkTransposed(t, b, name, lp, lt)
						checkForward(t, b, name, lt)
						plain.Free()
						trans.Free()
					}
				}
			}
		})
	}
}

func checkTransposed(t *testing.T, b engine.Backend, name string, lp, lt *nn.Linear) {
	t.Helper()
	if got, want := lt.Weight.Shape(), (engine.Shape{lp.In, lp.Out}); !got.Equal(want) {
		t.Fatalf("%s: transposed weight %v, want %v", name, got, want)
	}
	if lt.Weight.DType() != lp.Weight.DType() {
		t.Fatalf("%s: transposed weight %s, the plain one %s", name, lt.Weight.DType(), lp.Weight.DType())
	}
	wp, err := b.Read(lp.Weight)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := b.Read(lt.Weight)
	if err != nil {
		t.Fatal(err)
	}
	for o := range lp.Out {
		for i := range lp.In {
			if wp[o*lp.In+i] != wt[i*lp.Out+o] {
				t.Fatalf("%s: Wᵀ[%d, %d] = %g, W[%d, %d] = %g", name, i, o, wt[i*lp.Out+o], o, i, wp[o*lp.In+i])
			}
		}
	}
}

// checkForward runs m on 2x3 rows of x and compares with float64 sums of
// the weights as uploaded. Tolerance: float32 accumulation of In products
// plus the bias and residual, 2(In+2)·2⁻²⁴ times the sum of the terms'
// magnitudes.
func checkForward(t *testing.T, b engine.Backend, name string, m *nn.Linear) {
	t.Helper()
	const rows = 6
	xv := make([]float32, rows*m.In)
	rv := make([]float32, rows*m.Out)
	for i := range xv {
		xv[i] = float32(math.Sin(float64(i)*1.3 + 0.2))
	}
	for i := range rv {
		rv[i] = float32(math.Cos(float64(i) * 0.7))
	}
	wt, err := b.Read(m.Weight) // [In, Out]
	if err != nil {
		t.Fatal(err)
	}
	bv, err := b.Read(m.Bias) // [Out]
	if err != nil {
		t.Fatal(err)
	}
	x := b.New(engine.F32, 2, 3, m.In)    // [2, 3, In]
	res := b.New(engine.F32, 2, 3, m.Out) // [2, 3, Out]
	y := b.New(engine.F32, 2, 3, m.Out)   // [2, 3, Out]
	ya := b.New(engine.F32, 2, 3, m.Out)  // [2, 3, Out]
	defer func() { b.Free(x); b.Free(res); b.Free(y); b.Free(ya) }()
	b.Write(x, xv)
	b.Write(res, rv)
	poison := make([]float32, rows*m.Out)
	for i := range poison {
		poison[i] = float32(math.NaN())
	}
	b.Write(y, poison)
	b.Write(ya, poison)
	m.Forward(b, y, x)
	m.ForwardAdd(b, ya, x, res)
	got, err := b.Read(y)
	if err != nil {
		t.Fatal(err)
	}
	gotAdd, err := b.Read(ya)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		for o := range m.Out {
			ref, mag := float64(bv[o]), math.Abs(float64(bv[o]))
			for i := range m.In {
				p := float64(xv[r*m.In+i]) * float64(wt[i*m.Out+o])
				ref += p
				mag += math.Abs(p)
			}
			tol := 2 * float64(m.In+2) * math.Ldexp(1, -24) * (mag + 1)
			k := r*m.Out + o
			if d := math.Abs(float64(got[k]) - ref); !(d <= tol) {
				t.Fatalf("%s: Forward y[%d, %d] = %g, float64 %g (|diff| %g > %g)", name, r, o, got[k], ref, d, tol)
			}
			ref += float64(rv[k])
			if d := math.Abs(float64(gotAdd[k]) - ref); !(d <= tol) {
				t.Fatalf("%s: ForwardAdd y[%d, %d] = %g, float64 %g (|diff| %g > %g)", name, r, o, gotAdd[k], ref, d, tol)
			}
		}
	}
}

// TestInferenceLayouts checks, element by element against the layers as
// the checkpoint has them, the two weight layouts inference loads under
// TransposeLinears: NewGEGLULinear's value and gate halves interleaved
// (weight [In, Out] and bias) and NewFusedLinear's three layers side by
// side ([In, 3·Out]), from F16 and F32 files, kept or widened to F32, on
// every backend. Without TransposeLinears NewGEGLULinear is NewLinear.
func TestInferenceLayouts(t *testing.T) {
	const in, out = 37, 70
	vals := func(n int, f float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.Sin(float64(i)*f)) / 4
		}
		return v
	}
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			for _, dt := range []engine.DType{engine.F16, engine.F32} {
				src := mapSource{"g.bias": encode(dt, engine.Shape{out}, vals(out, 0.9))}
				for i, n := range []string{"g", "q", "k", "v"} {
					src[n+".weight"] = encode(dt, engine.Shape{out, in}, vals(out*in, 0.37+0.1*float64(i)))
				}
				for _, f32 := range []bool{false, true} {
					name := fmt.Sprintf("%s f32=%v", dt, f32)
					plain := nn.NewLoader(b, src, f32)
					inf := nn.NewLoader(b, src, f32)
					inf.TransposeLinears()
					if g := nn.NewGEGLULinear(plain, "g", in, out); g.Paired || g.Transposed {
						t.Fatalf("%s: NewGEGLULinear without TransposeLinears: Paired %v, Transposed %v", name, g.Paired, g.Transposed)
					}
					ref := map[string]*nn.Linear{}
					for _, n := range []string{"g", "q", "k", "v"} {
						ref[n] = nn.NewLinear(plain, n, in, out, n == "g")
					}
					g := nn.NewGEGLULinear(inf, "g", in, out)
					qkv := nn.NewFusedLinear(inf, []string{"q", "k", "v"}, in, out)
					for _, l := range []*nn.Loader{plain, inf} {
						if err := l.Err(); err != nil {
							t.Fatal(err)
						}
					}
					read := func(x *engine.Tensor) []float32 {
						v, err := b.Read(x)
						if err != nil {
							t.Fatal(err)
						}
						return v
					}
					if !g.Paired || !g.Transposed || !g.Weight.Shape().Equal(engine.Shape{in, out}) {
						t.Fatalf("%s: GEGLU linear Paired %v, Transposed %v, weight %v", name, g.Paired, g.Transposed, g.Weight.Shape())
					}
					w, gw, bias, gb := read(ref["g"].Weight), read(g.Weight), read(ref["g"].Bias), read(g.Bias)
					for j := range out / 2 {
						for half := range 2 {
							o := half*out/2 + j // the checkpoint's output
							if gb[2*j+half] != bias[o] {
								t.Fatalf("%s: paired bias[%d] = %g, bias[%d] = %g", name, 2*j+half, gb[2*j+half], o, bias[o])
							}
							for i := range in {
								if gw[i*out+2*j+half] != w[o*in+i] {
									t.Fatalf("%s: paired Wᵀ[%d, %d] = %g, W[%d, %d] = %g", name, i, 2*j+half, gw[i*out+2*j+half], o, i, w[o*in+i])
								}
							}
						}
					}
					if qkv.Out != 3*out || !qkv.Transposed || !qkv.Weight.Shape().Equal(engine.Shape{in, 3 * out}) {
						t.Fatalf("%s: fused linear Out %d, Transposed %v, weight %v", name, qkv.Out, qkv.Transposed, qkv.Weight.Shape())
					}
					fw := read(qkv.Weight)
					for p, n := range []string{"q", "k", "v"} {
						pw := read(ref[n].Weight)
						for o := range out {
							for i := range in {
								if fw[i*3*out+p*out+o] != pw[o*in+i] {
									t.Fatalf("%s: fused Wᵀ[%d, %d] = %g, %s's W[%d, %d] = %g", name, i, p*out+o, fw[i*3*out+p*out+o], n, o, i, pw[o*in+i])
								}
							}
						}
					}
					plain.Free()
					inf.Free()
				}
			}
		})
	}
}
