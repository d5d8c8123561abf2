package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"glimmer/engine/enginetest"
	"glimmer/engine/fixtures"
	"glimmer/engine/pipeline"
	"glimmer/engine/safetensors"
)

// run is one text-to-image run the reference made (fixtures README).
type run struct {
	name             string
	sampler, sched   string
	prompt, negative string
	steps            int
	cfg              float32
	seed             uint64
	w, h             int
	// forced: restart every step from the reference's latents and check
	// steps one at a time. sd2-tiny's ddim_8 needs it: at t=626 and t=376
	// its random U-Net turns a relative 1e-7 change of the input (one
	// float32 rounding) into 5.6e-5 at the output, ~500x, so two correct
	// float32 implementations that sum in different orders drift apart
	// over the free-running trajectory (measured: step 2 alone differs
	// by 2.4e-4 from the same input, then the chain amplifies it).
	forced bool
}

// request is the run's generation request.
func (r run) request() pipeline.Request {
	return pipeline.Request{Prompt: r.prompt, Negative: r.negative, Steps: r.steps, CFG: r.cfg,
		Seed: r.seed, Sampler: r.sampler, Schedule: r.sched, Width: r.w, Height: r.h}
}

var sd1Runs = []run{
	{"ddim_8", "ddim", "default", "a photograph of an astronaut riding a horse", "", 8, 7.5, 42, 64, 64, false},
	{"euler_8", "euler", "default", "a red circle on a blue background", "blurry", 8, 7.0, 1, 64, 64, false},
	{"euler_a_10", "euler_a", "default", "A photo of a cat", "", 10, 5.0, 123456789, 96, 64, false},
	{"dpmpp_2m_karras_12", "dpmpp_2m", "karras", "a castle on a hill at sunset", "low quality", 12, 7.5, 7, 64, 96, false},
	{"euler_cfg1_6", "euler", "default", "a bowl of fruit", "", 6, 1.0, 3, 64, 64, false},
}

var sd2Runs = []run{
	{"ddim_8", "ddim", "default", "a photograph of an astronaut riding a horse", "", 8, 7.5, 42, 64, 64, true},
	sd1Runs[2],
}

// Tolerances. The fixtures README: the reference itself moves by 6.1e-6
// between CPU and GPU, a correct float32 implementation lands within
// ~1e-4, and tests allow 2e-3 on [0,1] images. Latents get the same
// budget relative to their scale (DDIM's final latents reach ~20).
const (
	imageTol  = 2e-3
	latentTol = 2e-3
)

func TestPipelinesMatchReference(t *testing.T) {
	cases := []struct {
		family, model string
		runs          []run
	}{
		{"sd1", fixtures.Path(t, "fixtures", "sd1-tiny", "diffusers"), sd1Runs},
		{"sd2", fixtures.Path(t, "fixtures", "sd2-tiny", "diffusers"), sd2Runs},
	}
	for _, be := range enginetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			defer b.Close()
			for _, c := range cases {
				refs, err := safetensors.Open(fixtures.Path(t, "fixtures", c.family+"-tiny", "refs", c.family+"-pipelines.safetensors"))
				if err != nil {
					t.Fatal(err)
				}
				defer refs.Close()
				p, err := pipeline.Load(c.model, b, pipeline.Options{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range c.runs {
					t.Run(c.family+"/"+r.name, func(t *testing.T) { checkRun(t, p, refs, r) })
				}
				p.Close()
			}
		})
	}
}

func checkRun(t *testing.T, p *pipeline.Pipeline, refs *safetensors.File, r run) {
	checked := 0
	after := func(k int, x []float32) {
		key := fmt.Sprintf("%s.step%d", r.name, k)
		if _, ok := refs.Info(key); !ok {
			return
		}
		ref := refFloats(t, refs, key)
		compare(t, key, x, ref, latentTol, false)
		checked++
		if r.forced {
			copy(x, ref)
		}
	}
	req := r.request()
	req.AfterStep, req.Preview = after, pipeline.PreviewLatent
	steps := 0
	res, err := p.Generate(context.Background(), req, func(s pipeline.Step) {
		steps++
		if s.Index != steps || s.Total != r.steps || s.Preview == nil {
			t.Errorf("step callback %d: %+v", steps, s)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if steps != r.steps {
		t.Fatalf("%d step callbacks, want %d", steps, r.steps)
	}
	if r.forced && checked != r.steps {
		t.Errorf("%s: %d of %d steps restarted from the reference", r.name, checked, r.steps)
	}
	compare(t, r.name+".latent", res.Latent, refFloats(t, refs, r.name+".latent"), latentTol, false)
	compare(t, r.name+".image", pipeline.Unit01(res.Decoded), refFloats(t, refs, r.name+".image"), imageTol, true)
	if b := res.Image.Bounds(); b.Dx() != r.w || b.Dy() != r.h {
		t.Errorf("image is %dx%d, want %dx%d", b.Dx(), b.Dy(), r.w, r.h)
	}
	if !r.forced {
		checkUnseen(t, p, r, res.Latent)
	}
}

// checkUnseen runs r again as the CLI and the benchmark do, with no
// preview and no AfterStep, so the host reads nothing until the last step
// (on GL it only waits on a fence a step behind): the latents must be the
// seen run's to the bit, and progress must still come once a step, in
// order.
func checkUnseen(t *testing.T, p *pipeline.Pipeline, r run, seen []float32) {
	steps := 0
	res, err := p.Generate(context.Background(), r.request(), func(s pipeline.Step) {
		steps++
		if s.Index != steps || s.Total != r.steps || s.Preview != nil {
			t.Errorf("unseen run's step callback %d: %+v", steps, s)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if steps != r.steps {
		t.Errorf("unseen run: %d step callbacks, want %d", steps, r.steps)
	}
	for i, v := range res.Latent {
		if math.Float32bits(v) != math.Float32bits(seen[i]) {
			t.Fatalf("unseen run's latent %d = %v, the run read at every step has %v", i, v, seen[i])
		}
	}
	expectNoFences(t, p)

	// Cancelled from the progress callback at step 2: Generate stops
	// within a step and leaves no fence behind.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	steps = 0
	_, err = p.Generate(ctx, r.request(), func(s pipeline.Step) {
		if steps++; s.Index == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled at step 2 of %d: Generate returned %v", r.steps, err)
	}
	if steps > 3 {
		t.Errorf("%d steps reported after a cancel at step 2", steps)
	}
	expectNoFences(t, p)
}

// expectNoFences fails if p's backend holds fences nobody waited on.
func expectNoFences(t *testing.T, p *pipeline.Pipeline) {
	t.Helper()
	if f, ok := p.B.(interface{ LiveFences() int }); ok {
		if n := f.LiveFences(); n != 0 {
			t.Errorf("%d fences left after Generate", n)
		}
	}
}

func refFloats(t *testing.T, f *safetensors.File, key string) []float32 {
	t.Helper()
	v, err := f.Float32(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// compare checks max|got-want| against tol (absolute for images on [0,1],
// relative to max(1, max|want|) for latents) and fails on NaN.
func compare(t *testing.T, what string, got, want []float32, tol float64, absolute bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var maxErr, scale float64 = 0, 1
	for i := range got {
		if math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: NaN at %d", what, i)
		}
		maxErr = math.Max(maxErr, math.Abs(float64(got[i]-want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	bound := tol
	if !absolute {
		bound *= scale
	}
	if maxErr > bound {
		t.Errorf("%s: max |err| %.3g > %.3g", what, maxErr, bound)
	} else {
		t.Logf("%s: max |err| %.3g", what, maxErr)
	}
}
