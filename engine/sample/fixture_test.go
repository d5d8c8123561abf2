package sample

import (
	"fmt"
	"testing"

	"glimmer/engine/fixtures"
	"glimmer/engine/rng"
)

// The reference pipeline runs (../shared/fixtures/README.md). Without a
// U-Net the stored latents cannot be recomputed yet; what can be checked is
// everything around it: shapes, step counts, the initial latents, and the
// generator's consumption by euler_a.
var pipelineRuns = []struct {
	name, sampler, schedule string
	steps                   int
	seed                    uint64
	w, h                    int
}{
	{"ddim_8", "ddim", "default", 8, 42, 64, 64},
	{"euler_8", "euler", "default", 8, 1, 64, 64},
	{"euler_a_10", "euler_a", "default", 10, 123456789, 96, 64},
	{"dpmpp_2m_karras_12", "dpmpp_2m", "karras", 12, 7, 64, 96},
	{"euler_cfg1_6", "euler", "default", 6, 3, 64, 64},
}

func TestPipelineFixturesFitTheSamplers(t *testing.T) {
	randn := readGolden(t, "../rng/testdata/torch_randn.safetensors")
	for _, fam := range []struct {
		dir  string
		pred Prediction
	}{{"sd1", Epsilon}, {"sd2", VPrediction}} {
		path := fixtures.Path(t, "fixtures", fam.dir+"-tiny", "refs", fam.dir+"-pipelines.safetensors")
		g := readGolden(t, path)
		for _, run := range pipelineRuns {
			key := run.name + ".latent"
			if _, ok := g.tensors[key]; !ok {
				continue // sd2 has only ddim_8 and euler_a_10
			}
			t.Run(fam.dir+"/"+run.name, func(t *testing.T) {
				shape := []int{1, 4, run.h / 8, run.w / 8}
				n := 4 * (run.h / 8) * (run.w / 8)
				if fmt.Sprint(g.shapes[key]) != fmt.Sprint(shape) {
					t.Fatalf("%s has shape %v, want %v", key, g.shapes[key], shape)
				}
				gen := rng.New(run.seed)
				s, err := New(run.sampler, run.schedule, run.steps, ScheduleConfig{Prediction: fam.pred}, gen)
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Timesteps()) != run.steps {
					t.Fatalf("%d timesteps for %d steps", len(s.Timesteps()), run.steps)
				}
				// Per-step latents, where stored: step0 .. step{steps-1}, the
				// last equal to the final latents.
				if _, ok := g.tensors[run.name+".step0"]; ok {
					for k := 0; k < run.steps; k++ {
						sk := fmt.Sprintf("%s.step%d", run.name, k)
						if fmt.Sprint(g.shapes[sk]) != fmt.Sprint(shape) {
							t.Fatalf("%s: shape %v, want %v", sk, g.shapes[sk], shape)
						}
					}
					if _, extra := g.tensors[fmt.Sprintf("%s.step%d", run.name, run.steps)]; extra {
						t.Fatalf("%s has more than %d steps", run.name, run.steps)
					}
					if sameBits32(g.get(t, fmt.Sprintf("%s.step%d", run.name, run.steps-1)), g.get(t, key)) >= 0 {
						t.Errorf("%s: the last step's latents are not the final latents", run.name)
					}
				}
				// Initial latents: torch.randn(1, 4, H/8, W/8) from the seed
				// (recorded from torch in the rng golden file) times the
				// sampler's init_noise_sigma.
				x := InitLatents(s, gen, n)
				noise := randn.get(t, fmt.Sprintf("randn.seed%d.n%d", run.seed, n))
				for i := range x {
					if x[i] != noise[i]*s.InitNoiseSigma() {
						t.Fatalf("initial latent %d = %v, want torch's %v × %v", i, x[i], noise[i], s.InitNoiseSigma())
					}
				}
				// Drive every step with a stand-in model output of the right
				// size; euler_a must draw exactly one latent-sized normal
				// tensor per step from the run's generator.
				mirror := gen.Clone()
				m := make([]float32, n)
				in := make([]float32, n)
				for i := range s.Timesteps() {
					ScaleInput(s, in, x, i)
					if err := s.Step(i, m, x); err != nil {
						t.Fatal(err)
					}
					if run.sampler == "euler_a" {
						mirror.Randn(n)
					}
				}
				if a, b := gen.Uint32(), mirror.Uint32(); a != b {
					t.Errorf("%s: the sampler consumed the generator differently from one randn(%v) per step", run.sampler, shape)
				}
			})
		}
	}
}

func sameBits32(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
