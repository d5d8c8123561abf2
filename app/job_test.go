package app

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"glimmer/engine/fixtures"
	"glimmer/engine/pipeline"
)

// tinyJob is a job on the sd1-tiny fixture (random weights) on the CPU
// backend: 64x64 and few steps keep it fast.
func tinyJob(t *testing.T) Job {
	t.Helper()
	p := DefaultParams()
	p.Prompt, p.Negative = "a red fox in the snow", "blurry"
	p.Steps, p.Width, p.Height, p.Seed, p.Sampler = 3, 64, 64, 42, "euler"
	return Job{
		Model:     fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors"),
		Tokenizer: fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz"),
		Backend:   "cpu",
		Params:    p,
		Preview:   pipeline.PreviewLatent,
		OutputDir: t.TempDir(),
	}
}

// recorder collects a runner's events.
type recorder struct {
	mu     sync.Mutex
	events []Event
	final  chan Event
	onStep func(Event)
}

func newRecorder() *recorder { return &recorder{final: make(chan Event, 16)} }

func (r *recorder) event(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	step := r.onStep
	r.mu.Unlock()
	if e.Kind == EventStep && step != nil {
		step(e)
	}
	if e.Kind.Final() {
		r.final <- e
	}
}

// wait returns the next job's final event and the events of that job.
func (r *recorder) wait(t *testing.T, id int) (Event, []Event) {
	t.Helper()
	select {
	case e := <-r.final:
		if e.Job != id {
			t.Fatalf("final event of job %d, want job %d", e.Job, id)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		var mine []Event
		for _, x := range r.events {
			if x.Job == id {
				mine = append(mine, x)
			}
		}
		return e, mine
	case <-time.After(5 * time.Minute):
		t.Fatal("job did not finish in 5 minutes")
	}
	return Event{}, nil
}

func kinds(evs []Event, k EventKind) []Event {
	var out []Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func TestRunnerBatch(t *testing.T) {
	rec := newRecorder()
	r := NewRunner(rec.event)
	defer r.Close()
	j := tinyJob(t)
	j.Count = 2
	start := time.Now()
	id := r.Submit(context.Background(), j)
	final, evs := rec.wait(t, id)
	if final.Kind != EventFinished {
		t.Fatalf("job ended with %v: %v", final.Kind, final.Err)
	}
	t.Logf("load + 2 images of 3 steps at 64x64 on the CPU: %v", time.Since(start).Round(time.Millisecond))
	if len(kinds(evs, EventLoading)) == 0 || len(kinds(evs, EventLoaded)) != 1 {
		t.Errorf("want loading events and one loaded event, got %d and %d", len(kinds(evs, EventLoading)), len(kinds(evs, EventLoaded)))
	}
	steps := kinds(evs, EventStep)
	if len(steps) != 6 {
		t.Fatalf("%d step events, want 6", len(steps))
	}
	for i, s := range steps {
		if s.Index != i/3 || s.Step != i%3+1 || s.Steps != 3 || s.Count != 2 {
			t.Errorf("step event %d: image %d step %d/%d of %d", i, s.Index, s.Step, s.Steps, s.Count)
		}
		if s.Preview == nil || s.Preview.Bounds().Dx() != 8 {
			t.Errorf("step event %d: want an 8x8 latent preview, got %v", i, s.Preview)
		}
		if s.Rate <= 0 {
			t.Errorf("step event %d: rate %g", i, s.Rate)
		}
	}
	if last := steps[len(steps)-1]; last.ETA != 0 {
		t.Errorf("last step's ETA %v, want 0", last.ETA)
	}
	imgs := kinds(evs, EventImage)
	if len(imgs) != 2 {
		t.Fatalf("%d image events, want 2", len(imgs))
	}
	for i, e := range imgs {
		if e.Params.Seed != 42+int64(i) {
			t.Errorf("image %d: seed %d, want %d", i, e.Params.Seed, 42+i)
		}
		if e.Image.Bounds().Dx() != 64 || e.Image.Bounds().Dy() != 64 {
			t.Errorf("image %d: size %v", i, e.Image.Bounds())
		}
		if filepath.Dir(e.Path) != j.OutputDir || !strings.Contains(filepath.Base(e.Path), "-42-a red fox in the snow") && i == 0 {
			t.Errorf("image %d saved as %s", i, e.Path)
		}
		p := readParameters(t, e.Path)
		want := e.Params
		if p != want {
			t.Errorf("image %d: PNG parameters %+v, want %+v", i, p, want)
		}
		if p.Model != "sd1-tiny" {
			t.Errorf("model name %q in the PNG", p.Model)
		}
	}
	if imgs[0].Path == imgs[1].Path {
		t.Error("both images saved to one path")
	}

	// Same model again: no loading, and a name clash gets a free name.
	j.Count = 1
	id = r.Submit(context.Background(), j)
	final, evs = rec.wait(t, id)
	if final.Kind != EventFinished {
		t.Fatalf("second job ended with %v: %v", final.Kind, final.Err)
	}
	if n := len(kinds(evs, EventLoading)); n != 0 {
		t.Errorf("second job loaded again (%d loading events)", n)
	}
	img := kinds(evs, EventImage)[0]
	if img.Path == imgs[0].Path || !strings.HasSuffix(img.Path, " (2).png") {
		t.Errorf("second image of seed 42 saved as %s (first %s)", img.Path, imgs[0].Path)
	}

	// Offload (Settings) loads the model again, with the same picture.
	j.Offload = true
	id = r.Submit(context.Background(), j)
	final, evs = rec.wait(t, id)
	if final.Kind != EventFinished {
		t.Fatalf("offload job ended with %v: %v", final.Kind, final.Err)
	}
	if n := len(kinds(evs, EventLoaded)); n != 1 {
		t.Errorf("switching to offload: %d loaded events, want 1", n)
	}
	if off := kinds(evs, EventImage)[0].Image; !reflect.DeepEqual(off, imgs[0].Image) {
		t.Errorf("the offload job's picture differs from the first")
	}
}

func readParameters(t *testing.T, path string) Params {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunks, err := ReadPNGText(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range chunks {
		if kv[0] == "parameters" {
			p, err := ParseParams(kv[1])
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatalf("%s has no parameters chunk", path)
	return Params{}
}

func TestRunnerCancelThenGenerate(t *testing.T) {
	rec := newRecorder()
	r := NewRunner(rec.event)
	defer r.Close()
	j := tinyJob(t)
	j.Params.Steps = 150
	ctx, cancel := context.WithCancel(context.Background())
	rec.onStep = func(e Event) {
		if e.Step == 2 {
			cancel()
		}
	}
	id := r.Submit(ctx, j)
	final, evs := rec.wait(t, id)
	if final.Kind != EventCancelled {
		t.Fatalf("job ended with %v (%v), want cancelled", final.Kind, final.Err)
	}
	if n := len(kinds(evs, EventStep)); n < 2 || n > 4 {
		t.Errorf("%d steps ran before the cancel took effect", n)
	}
	if files, _ := os.ReadDir(j.OutputDir); len(files) != 0 {
		t.Errorf("a cancelled job wrote %d files", len(files))
	}

	rec.onStep = nil
	j.Params.Steps = 2
	id = r.Submit(context.Background(), j)
	if final, _ := rec.wait(t, id); final.Kind != EventFinished {
		t.Fatalf("job after the cancel ended with %v: %v", final.Kind, final.Err)
	}
	if files, _ := os.ReadDir(j.OutputDir); len(files) != 1 {
		t.Errorf("%d files after one image", len(files))
	}
}

func TestRunnerFailures(t *testing.T) {
	rec := newRecorder()
	r := NewRunner(rec.event)
	defer r.Close()
	good := tinyJob(t)
	for _, c := range []struct {
		name string
		edit func(*Job)
		want string
	}{
		{"no model", func(j *Job) { j.Model = "" }, "no model"},
		{"missing model", func(j *Job) { j.Model = filepath.Join(t.TempDir(), "gone.safetensors") }, "gone.safetensors"},
		{"bad size", func(j *Job) { j.Params.Width = 60 }, "multiples of 8"},
		{"bad steps", func(j *Job) { j.Params.Steps = 0 }, "steps"},
		{"karras ddim", func(j *Job) { j.Params.Sampler, j.Params.Schedule = "ddim", "karras" }, "karras"},
		{"bad template", func(j *Job) { j.NameTemplate = "{nope}" }, "unknown field {nope}"},
		{"bad backend", func(j *Job) { j.Backend = "vulkan" }, "vulkan"},
	} {
		j := good
		c.edit(&j)
		id := r.Submit(context.Background(), j)
		final, _ := rec.wait(t, id)
		if final.Kind != EventFailed || !strings.Contains(final.Message, c.want) || strings.Contains(final.Message, "\n") {
			t.Errorf("%s: %v %q, want failed with %q on one line", c.name, final.Kind, final.Message, c.want)
		}
	}
	// An output folder that is a file: the image is made, then saving fails.
	j := good
	j.OutputDir = filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(j.OutputDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j.Params.Steps = 1
	id := r.Submit(context.Background(), j)
	final, evs := rec.wait(t, id)
	imgs := kinds(evs, EventImage)
	if final.Kind != EventFailed || len(imgs) != 1 || imgs[0].Path != "" || imgs[0].Image == nil {
		t.Errorf("unsaveable image: final %v %q, image events %d", final.Kind, final.Message, len(imgs))
	}

	// A cancelled context drops the job before it starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	id = r.Submit(ctx, good)
	if final, _ := rec.wait(t, id); final.Kind != EventCancelled {
		t.Errorf("pre-cancelled job: %v", final.Kind)
	}
}

func TestNameTemplate(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	p := DefaultParams()
	p.Prompt, p.Seed, p.Model = "a cat: on/a \"mat\"?\n  with *stars*", 7, "v1-5"
	for _, c := range []struct{ tmpl, want string }{
		{DefaultNameTemplate, `2026-03-04-7-a cat_ on_a _mat__ with _stars_.png`},
		{"{model}_{sampler}_{steps}_{cfg}_{width}x{height}_{time}_{index}", "v1-5_euler_a_20_7_512x512_050607_3.png"},
		{"CON", "_CON.png"},
		{"...{prompt}...", "a cat_ on_a _mat__ with _stars_.png"},
	} {
		if got := ExpandName(c.tmpl, p, now, 2); got != c.want {
			t.Errorf("ExpandName(%q) = %q, want %q", c.tmpl, got, c.want)
		}
	}
	p.Prompt = strings.Repeat("long ", 100)
	if got := ExpandName(DefaultNameTemplate, p, now, 0); len(got) > 160 {
		t.Errorf("long prompt gives a %d-byte name", len(got))
	}
	p.Prompt = ""
	if got := ExpandName("{prompt}", p, now, 0); got != "image.png" {
		t.Errorf("empty name: %q", got)
	}
	for _, bad := range []string{"", "  ", "{date", "date}", "{bogus}", "a/{seed}", `a\b`} {
		if CheckNameTemplate(bad) == nil {
			t.Errorf("CheckNameTemplate(%q) accepted", bad)
		}
	}
	for _, good := range []string{DefaultNameTemplate, "plain", "{index}-{seed}"} {
		if err := CheckNameTemplate(good); err != nil {
			t.Errorf("CheckNameTemplate(%q): %v", good, err)
		}
	}
}
