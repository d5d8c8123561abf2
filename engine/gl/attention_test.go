package gl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"glimmer/engine"
)

// TestAttentionLayoutsSameBits: PF (the next key tile prefetched into
// registers) and PSH (the probabilities through shared memory instead of
// shuffles) change where values wait, not the arithmetic or its order, so
// each must give the bits of the same grid without them: at head dims 40
// and 80 (each thread's share of V padded or not), causal or not, with
// key counts that leave the last tile partial, on the rows' subgroup
// operations where the driver has them and emulated (SHUF=2) everywhere.
// Outputs start as NaN so an unwritten element fails. The variants'
// agreement with a float64 reference is TestConformanceAttentionVariants'.
func TestAttentionLayoutsSameBits(t *testing.T) {
	shufs := []string{"SHUF=2"}
	if b := openGL(t); b.limits.SubgroupSize > 0 && b.limits.SubgroupSize%4 == 0 {
		shufs = append(shufs, "SHUF=1")
	}
	r := rand.New(rand.NewPCG(21, 22))
	for _, shuf := range shufs {
		for _, dim := range []int{40, 80} {
			for _, causal := range []bool{false, true} {
				const bsz, heads, tokens = 2, 2, 150 // 150 keys: the last 32-key tile partial
				qkv := make([]float32, bsz*tokens*heads*dim)
				for i := range qkv {
					qkv[i] = float32(r.NormFloat64())
				}
				var want []float32
				for _, layout := range []string{"", ",PF=1", ",PSH=1", ",PF=1,PSH=1"} {
					grid := shuf + ",RX=4,RY=8,TQ=2,TK=8" + layout
					t.Setenv("GLIMMER_GL_ATTN", grid)
					b := openGL(t)
					c := b.attnConfig(dim, 0, 0)
					if c.PF != (layout == ",PF=1" || layout == ",PF=1,PSH=1") || c.PSh != (layout == ",PSH=1" || layout == ",PF=1,PSH=1") {
						t.Fatalf("%s at head dim %d took %+v", grid, dim, c)
					}
					x := b.New(engine.F32, bsz, tokens, heads*dim) // [B, N, H·D]
					b.Write(x, qkv)
					o := b.New(engine.F32, bsz, tokens, heads*dim) // [B, N, H·D]
					nan := make([]float32, len(qkv))
					for i := range nan {
						nan[i] = float32(math.NaN())
					}
					b.Write(o, nan)
					b.Attention(o, x, x, x, engine.AttentionParams{Heads: heads, Causal: causal})
					got, err := b.Read(o)
					b.Close()
					if err != nil {
						t.Fatal(err)
					}
					if want == nil {
						for i, v := range got {
							if math.IsNaN(float64(v)) {
								t.Fatalf("%s, head dim %d, causal %v: output %d not written", grid, dim, causal, i)
							}
						}
						want = got
						continue
					}
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s, head dim %d, causal %v: output %d = %g, %g without %s", grid, dim, causal, i, got[i], want[i], layout[1:])
						}
					}
				}
			}
		}
	}
}

// TestAttentionGridFill: a call whose head dim's grid would make fewer
// than attnMinGroups work groups halves its rows until it makes enough (or
// a group would be under 256 threads); calls that make enough keep the
// head dim's grid. SD 1.5's shapes: the shared input's self-attention
// (one image, 8 heads of 40 over 4096 tokens), CFG's (two images), the
// mid block's 64 tokens, CLIP's 77.
func TestAttentionGridFill(t *testing.T) {
	for _, h100 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h100=%v", h100), func(t *testing.T) {
			b := openGL(t)
			defer b.Close()
			if h100 {
				// The grid choice under an H100's limits (its NVIDIA
				// driver's), whose subgroup grid for head dim 40 has 512
				// threads and 64 groups for one image's self-attention.
				b.limits.SubgroupSize, b.limits.MaxSharedBytes, b.limits.MaxGroupInvoc = 32, 48<<10, 1024
			}
			attentionGridFill(t, b)
		})
	}
}

func attentionGridFill(t *testing.T, b *Backend) {
	halved := false
	defer func() {
		if b.limits.SubgroupSize == 32 && !halved {
			t.Error("no call halved its grid's rows")
		}
	}()
	for _, c := range []struct{ dim, nq, bh int }{
		{40, 4096, 8}, {40, 4096, 16}, {80, 1024, 16}, {160, 256, 16}, {160, 64, 16}, {64, 77, 24}, {512, 4096, 1},
	} {
		base, got := b.attnConfig(c.dim, 0, 0), b.attnConfig(c.dim, c.nq, c.bh)
		groups := func(a attnConfig) int { return ceilDiv(c.nq, a.bq()) * c.bh }
		t.Logf("head dim %d, %d queries x %d: RY %d -> %d, %d -> %d groups", c.dim, c.nq, c.bh, base.RY, got.RY, groups(base), groups(got))
		halved = halved || got.RY < base.RY
		if got.RX != base.RX || got.TQ != base.TQ || got.Shuf != base.Shuf {
			t.Errorf("head dim %d, %d queries x %d: %+v, the head dim's grid %+v beyond its rows", c.dim, c.nq, c.bh, got, base)
		}
		switch {
		case groups(base) >= b.attnMinGroups && got.RY != base.RY:
			t.Errorf("head dim %d, %d queries x %d: %d groups, yet RY %d -> %d", c.dim, c.nq, c.bh, groups(base), base.RY, got.RY)
		case groups(base) < b.attnMinGroups && base.RX*base.RY >= 512 && got.RY >= base.RY,
			groups(got) < b.attnMinGroups && got.RX*got.RY >= 512,
			got.RX*got.RY < 256 && got.RY != base.RY:
			t.Errorf("head dim %d, %d queries x %d: RY %d -> %d, %d groups", c.dim, c.nq, c.bh, base.RY, got.RY, groups(got))
		}
	}
}
