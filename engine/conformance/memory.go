package conformance

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/x448/float16"

	"glimmer/engine"
)

// testMemory checks that values survive the trip through the backend:
// exactly for F32, rounded to the nearest half for F16, from float32
// values (Write) and from checkpoint bytes (WriteRaw).
func (s *suite) testMemory(t *testing.T) {
	for _, dt := range []engine.DType{engine.F32, engine.F16} {
		s.run(t, "Memory", "Write_"+dt.String(), func(c *tcase) {
			vals := c.normals(1001, 100, 0)
			// Values where rounding is delicate: tiny (half subnormals),
			// halfway between halves, the largest half, negative zero.
			vals = append(vals, 1e-6, -3e-7, 1+1.0/2048, 65504, float32(math.Copysign(0, -1)), 0.1)
			x := c.alloc(dt, len(vals))
			c.be.Write(x, vals)
			c.expectExact(x, vals, dt)
		})
		// A small tensor and one of over 4 MiB (an odd count of halves);
		// src is overwritten as soon as WriteRaw returns, which a backend
		// must allow.
		for _, rows := range []int{7, 22523} {
			s.run(t, "Memory", fmt.Sprintf("WriteRaw_%s_%dx111", dt, rows), func(c *tcase) {
				vals := c.normals(rows*111, 10, 0)
				raw := make([]byte, len(vals)*dt.Size())
				for i, v := range vals {
					if dt == engine.F16 {
						binary.LittleEndian.PutUint16(raw[2*i:], float16.Fromfloat32(v).Bits())
					} else {
						binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
					}
				}
				x := c.alloc(dt, rows, 111)
				c.be.WriteRaw(x, raw)
				for i := range raw {
					raw[i] = 0xff
				}
				c.expectExact(x, vals, dt)
			})
		}
	}
	s.run(t, "Memory", "ReshapeSharesStorage", func(c *tcase) {
		vals := c.normals(60, 1, 0)
		x := c.alloc(engine.F32, 3, 4, 5)
		view := x.Reshape(12, 5)
		c.be.Write(view, vals)
		c.expectExact(x, vals, engine.F32)
		c.expectExact(view, vals, engine.F32)
	})
}

// expectSame checks that got holds want's values bit for bit (how each
// was made named in the message).
func (c *tcase) expectSame(got, want *engine.Tensor, gotHow, wantHow string) {
	c.Helper()
	g, err := c.be.Read(got)
	if err != nil {
		c.Fatalf("Read: %v", err)
	}
	w, err := c.be.Read(want)
	if err != nil {
		c.Fatalf("Read: %v", err)
	}
	for i := range g {
		if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
			c.Fatalf("element %d: %v %s, %v %s", i, g[i], gotHow, w[i], wantHow)
		}
	}
}

// expectExact checks that x reads back as vals stored in dtype dt, bit
// for bit (NaN never occurs here).
func (c *tcase) expectExact(x *engine.Tensor, vals []float32, dt engine.DType) {
	c.Helper()
	got, err := c.be.Read(x)
	if err != nil {
		c.Fatalf("Read: %v", err)
	}
	if len(got) != len(vals) {
		c.Fatalf("read %d values, wrote %d", len(got), len(vals))
	}
	for i, v := range vals {
		want := float32(stored(dt, v))
		if math.Float32bits(got[i]) != math.Float32bits(want) {
			c.Fatalf("%v element %d: wrote %g, read %g, want %g", x, i, v, got[i], want)
		}
	}
}

// testInPlace runs the ops whose destination may be an input, with it
// being one.
func (s *suite) testInPlace(t *testing.T) {
	s.run(t, "InPlace", "Softmax", func(c *tcase) {
		x, xv := c.randnScaled(engine.F32, 5, 0, 4, 3, 19)
		c.be.Softmax(x, x)
		c.expect(x, refSoftmax(xv, 19), nmseSoftmax)
	})
	for _, u := range unaryRefs {
		s.run(t, "InPlace", "Unary_"+u.op.String(), func(c *tcase) {
			x, xv := c.randnScaled(engine.F32, 3, 0, 5, 37)
			c.be.Unary(x, x, u.op)
			c.expect(x, mapRef(xv, u.ref), u.bound)
		})
	}
	s.run(t, "InPlace", "Scale", func(c *tcase) {
		x, xv := c.randn(engine.F32, 7, 13)
		c.be.Scale(x, x, 0.5, -2)
		c.expect(x, mapRef(xv, func(v float64) float64 { return v*0.5 - 2 }), nmseElementwise)
	})
	for _, op := range binaryOps {
		// dst is a, b broadcast along the tokens.
		s.run(t, "InPlace", fmt.Sprintf("Binary_%s_dst_a", op.op), func(c *tcase) {
			a, av := c.randn(engine.F32, 2, 9, 11)
			b, bv := c.randn(engine.F32, 11)
			c.be.Binary(a, a, b, op.op)
			c.expect(a, refBroadcast(av, []int{2, 9, 11}, bv, []int{11}, []int{2, 9, 11}, op.f), nmseElementwise)
		})
		// dst is b, a broadcast over channels.
		s.run(t, "InPlace", fmt.Sprintf("Binary_%s_dst_b", op.op), func(c *tcase) {
			a, av := c.randn(engine.F32, 3, 1, 1)
			b, bv := c.randn(engine.F32, 2, 3, 5, 7)
			c.be.Binary(b, a, b, op.op)
			c.expect(b, refBroadcast(av, []int{3, 1, 1}, bv, []int{2, 3, 5, 7}, []int{2, 3, 5, 7}, op.f), nmseElementwise)
		})
		// dst, a and b all one tensor.
		s.run(t, "InPlace", fmt.Sprintf("Binary_%s_all_same", op.op), func(c *tcase) {
			a, av := c.randn(engine.F32, 5, 17)
			c.be.Binary(a, a, a, op.op)
			c.expect(a, refBroadcast(av, []int{5, 17}, av, []int{5, 17}, []int{5, 17}, op.f), nmseElementwise)
		})
	}
}

// testViews feeds ops reshaped views: operands and destinations that share
// storage with a tensor of another shape. Results are read through the
// original tensors.
func (s *suite) testViews(t *testing.T) {
	s.run(t, "Views", "MatMul", func(c *tcase) {
		// Tokens [2*3, 7] viewed as [2, 3, 7]; dst [30] viewed as [2, 3, 5].
		a, av := c.randn(engine.F32, 6, 7)
		w, wv := c.randn(engine.F16, 5, 7)
		dst := c.out(30)
		c.be.MatMul(dst.Reshape(2, 3, 5), a.Reshape(2, 3, 7), w, nil, engine.MatMulParams{TransB: true})
		c.expect(dst, refMatMul(av, wv, nil, 2, 3, 5, 7, false, true, true, 1), nmseGEMM)
	})
	s.run(t, "Views", "Conv2D", func(c *tcase) {
		x, xv := c.randn(engine.F32, 2*3, 5, 6)
		w, wv := c.randn(engine.F32, 4, 3*3*3)
		dst := c.out(2, 4*5*6)
		cs := convShape{n: 2, c: 3, h: 5, w: 6, oc: 4, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1}
		c.be.Conv2D(dst.Reshape(2, 4, 5, 6), x.Reshape(2, 3, 5, 6), w.Reshape(4, 3, 3, 3), nil, engine.Conv2DParams{PadH: 1, PadW: 1})
		c.expect(dst, refConv2D(xv, wv, nil, cs), nmseGEMM)
	})
	s.run(t, "Views", "Softmax_in_place", func(c *tcase) {
		x, xv := c.randn(engine.F32, 4, 6)
		c.be.Softmax(x.Reshape(2, 2, 6), x.Reshape(2, 2, 6))
		c.expect(x, refSoftmax(xv, 6), nmseSoftmax)
	})
	s.run(t, "Views", "Binary", func(c *tcase) {
		// A [2, 3, 4*5] feature map seen as NCHW plus a per-channel bias.
		a, av := c.randn(engine.F32, 2, 3, 20)
		b, bv := c.randn(engine.F32, 3)
		dst := c.out(120)
		c.be.Binary(dst.Reshape(2, 3, 4, 5), a.Reshape(2, 3, 4, 5), b.Reshape(3, 1, 1), engine.Add)
		c.expect(dst, refBroadcast(av, []int{2, 3, 4, 5}, bv, []int{3, 1, 1}, []int{2, 3, 4, 5}, binaryOps[0].f), nmseElementwise)
	})
	s.run(t, "Views", "Attention", func(c *tcase) {
		// Fused projections [B*N, 3*H*D] cannot be viewed as q, k, v, but
		// token-major [B*N, H*D] buffers can.
		q, qv := c.randn(engine.F32, 2*5, 16)
		k, kv := c.randn(engine.F32, 2*7, 16)
		v, vv := c.randn(engine.F32, 2*7, 16)
		dst := c.out(2 * 5 * 16)
		c.be.Attention(dst.Reshape(2, 5, 16), q.Reshape(2, 5, 16), k.Reshape(2, 7, 16), v.Reshape(2, 7, 16), engine.AttentionParams{Heads: 2})
		c.expect(dst, refAttention(qv, kv, vv, 2, 5, 7, 2, 8, 1/math.Sqrt(8), false), nmseSoftmax)
	})
	s.run(t, "Views", "GroupNorm", func(c *tcase) {
		// Tokens [N, H*W, C] transposed to [N, C, H*W], normalised as
		// [N, C, H, W] through a view.
		x, xv := c.randn(engine.F32, 2, 8, 15)
		gamma, gv := c.randn(engine.F32, 8)
		beta, bv := c.randn(engine.F32, 8)
		dst := c.out(2, 8, 15)
		c.be.GroupNorm(dst.Reshape(2, 8, 3, 5), x.Reshape(2, 8, 3, 5), gamma, beta, engine.GroupNormParams{Groups: 4, Eps: 1e-6, SiLU: true})
		c.expect(dst, refGroupNorm(xv, gv, bv, 2, 8, 15, 4, float64(float32(1e-6)), true), nmseNorm)
	})
}
