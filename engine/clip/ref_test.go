package clip

import (
	"math"
	"strconv"
	"testing"

	"glimmer/engine/model"
)

// refEncoder is a float64 CLIP text transformer written straight from
// transformers' CLIPTextModel, the oracle for CLIP skip: it shares no code
// with the engine's ops.
type refEncoder struct {
	cfg model.TextConfig
	w   map[string][]float64
}

func newRefEncoder(t *testing.T, m *model.Model) *refEncoder {
	t.Helper()
	r := &refEncoder{cfg: m.Config.Text, w: map[string][]float64{}}
	w := m.Component("text_encoder")
	for _, name := range w.Names() {
		f, err := w.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		d := make([]float64, len(f))
		for i, v := range f {
			d[i] = float64(v)
		}
		r.w[name] = d
	}
	return r
}

func (r *refEncoder) get(t *testing.T, name string) []float64 {
	w, ok := r.w["text_model."+name]
	if !ok {
		t.Fatalf("reference: no weight %s", name)
	}
	return w
}

// encode returns final_layer_norm of the hidden state after `layers`
// layers, for one sequence: [77*C].
func (r *refEncoder) encode(t *testing.T, ids [Context]int, layers int) []float64 {
	c, inner := r.cfg.HiddenSize, r.cfg.IntermediateSize
	tok, pos := r.get(t, "embeddings.token_embedding.weight"), r.get(t, "embeddings.position_embedding.weight")
	x := make([]float64, Context*c) // [77, C]
	for i, id := range ids {
		for k := range c {
			x[i*c+k] = tok[id*c+k] + pos[i*c+k]
		}
	}
	for l := range layers {
		p := func(s string) string { return "encoder.layers." + strconv.Itoa(l) + "." + s }
		h := r.layerNorm(t, x, c, p("layer_norm1"))
		q := r.linear(t, h, c, c, p("self_attn.q_proj"))
		k := r.linear(t, h, c, c, p("self_attn.k_proj"))
		v := r.linear(t, h, c, c, p("self_attn.v_proj"))
		a := refAttention(q, k, v, c, r.cfg.Heads)
		o := r.linear(t, a, c, c, p("self_attn.out_proj"))
		for i := range x {
			x[i] += o[i]
		}
		h = r.layerNorm(t, x, c, p("layer_norm2"))
		f := r.linear(t, h, c, inner, p("mlp.fc1"))
		for i, v := range f {
			switch r.cfg.Activation {
			case "quick_gelu":
				f[i] = v / (1 + math.Exp(-1.702*v))
			case "gelu":
				f[i] = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
			default:
				t.Fatalf("reference: activation %q", r.cfg.Activation)
			}
		}
		o = r.linear(t, f, inner, c, p("mlp.fc2"))
		for i := range x {
			x[i] += o[i]
		}
	}
	return r.layerNorm(t, x, c, "final_layer_norm")
}

func (r *refEncoder) linear(t *testing.T, x []float64, in, out int, name string) []float64 {
	w, b := r.get(t, name+".weight"), r.get(t, name+".bias") // [out, in], [out]
	rows := len(x) / in
	y := make([]float64, rows*out)
	for i := range rows {
		for o := range out {
			s := b[o]
			for k := range in {
				s += x[i*in+k] * w[o*in+k]
			}
			y[i*out+o] = s
		}
	}
	return y
}

func (r *refEncoder) layerNorm(t *testing.T, x []float64, c int, name string) []float64 {
	g, b := r.get(t, name+".weight"), r.get(t, name+".bias")
	eps := r.cfg.LayerNormEps
	y := make([]float64, len(x))
	for i := 0; i < len(x); i += c {
		var m, v float64
		for _, e := range x[i : i+c] {
			m += e
		}
		m /= float64(c)
		for _, e := range x[i : i+c] {
			v += (e - m) * (e - m)
		}
		v /= float64(c)
		for k := range c {
			y[i+k] = (x[i+k]-m)/math.Sqrt(v+eps)*g[k] + b[k]
		}
	}
	return y
}

// refAttention is causal multi-head attention on [77, H*D] rows.
func refAttention(q, k, v []float64, c, heads int) []float64 {
	d := c / heads
	out := make([]float64, len(q))
	s := make([]float64, Context)
	for h := range heads {
		for i := range Context {
			hi := math.Inf(-1)
			for j := 0; j <= i; j++ {
				var dot float64
				for e := range d {
					dot += q[i*c+h*d+e] * k[j*c+h*d+e]
				}
				s[j] = dot / math.Sqrt(float64(d))
				hi = max(hi, s[j])
			}
			var sum float64
			for j := 0; j <= i; j++ {
				s[j] = math.Exp(s[j] - hi)
				sum += s[j]
			}
			for j := 0; j <= i; j++ {
				for e := range d {
					out[i*c+h*d+e] += s[j] / sum * v[j*c+h*d+e]
				}
			}
		}
	}
	return out
}
