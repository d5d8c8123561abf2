package app

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"glimmer/engine"
	"glimmer/engine/device"
	"glimmer/engine/pipeline"
)

// Job is one request to the Runner: Count images from one set of
// parameters, with seeds Params.Seed, Params.Seed+1, … (a negative seed
// picks a random first seed). Every image is saved to OutputDir, named by
// NameTemplate, with its parameters in the PNG.
type Job struct {
	Model     string // checkpoint file or diffusers folder
	Tokenizer string // optional tokenizer overriding the lookup beside the model
	TAESD     string // optional TAESD decoder, needed for taesd previews
	Backend   string // auto, gl or cpu
	Offload   bool   // keep idle weights off the device (pipeline.Options.Offload)
	// LoRADir is the folder of the LoRAs that <lora:NAME:WEIGHT> prompt
	// tags name; the "loras" folder beside the model is searched after it.
	LoRADir string

	Params  Params
	Count   int // images in the batch; 0 counts as 1
	Preview pipeline.Preview

	OutputDir    string
	NameTemplate string // "" uses DefaultNameTemplate

	// LoadOnly loads the model (and backend) without generating, so a
	// later job starts at once and load errors show early.
	LoadOnly bool
}

// EventKind says what an Event reports.
type EventKind int

const (
	// EventNotice: Message is something the user should know (a backend
	// fallback, a preview mode that could not be used).
	EventNotice EventKind = iota
	// EventLoading: Message names the stage being loaded.
	EventLoading
	// EventLoaded: the model is ready; Message says what and where.
	EventLoaded
	// EventStep: a denoising step finished. Step/Steps of image
	// Index/Count, Rate (it/s), ETA for the whole job, Preview (nil when
	// previews are off).
	EventStep
	// EventImage: image Index of Count is done: Image, Params (with its
	// seed) and Path where it was saved. When saving failed Path is ""
	// and an EventFailed follows.
	EventImage
	// EventFinished: the job ended well; the last event of the job.
	EventFinished
	// EventFailed: the job stopped on Err (Message is it on one line);
	// the last event of the job.
	EventFailed
	// EventCancelled: the job's context was cancelled; the last event
	// of the job. Images already made are kept.
	EventCancelled
)

var eventNames = [...]string{"notice", "loading", "loaded", "step", "image", "finished", "failed", "cancelled"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Final reports whether k ends a job.
func (k EventKind) Final() bool {
	return k == EventFinished || k == EventFailed || k == EventCancelled
}

// Event is what a Runner reports about a job.
type Event struct {
	Job     int // the id Submit returned
	Kind    EventKind
	Message string

	Index, Count int // image Index (0-based) of Count
	Step, Steps  int // 1-based step of the current image
	Rate         float64
	ETA          time.Duration
	Preview      image.Image

	Image  image.Image
	Params Params
	Path   string
	Err    error
}

// Runner runs jobs one at a time on its own goroutine. It owns the compute
// backend (opened once per backend setting) and the loaded pipeline
// (kept while the model, tokenizer, TAESD file and backend stay the
// same), so weights load once. Events go to the callback given to
// NewRunner, called on the runner's goroutine: it must return quickly.
type Runner struct {
	emit func(Event)

	mu     sync.Mutex
	queue  []queued
	nextID int
	closed bool
	wake   chan struct{}
	done   chan struct{}

	// Owned by the runner goroutine.
	backendName string
	backend     engine.Backend
	pipe        *pipeline.Pipeline
	pipeKey     pipeKey
	now         func() time.Time
}

type queued struct {
	ctx context.Context
	id  int
	job Job
}

type pipeKey struct {
	backend, model, tokenizer, taesd string
	loras                            string // loraKey of the LoRA set
	offload                          bool
}

// NewRunner starts a runner that reports to events.
func NewRunner(events func(Event)) *Runner {
	r := &Runner{emit: events, wake: make(chan struct{}, 1), done: make(chan struct{}), now: time.Now}
	go r.loop()
	return r
}

// Submit queues j and returns its id. Cancelling ctx stops the job between
// steps (or drops it while it waits).
func (r *Runner) Submit(ctx context.Context, j Job) int {
	r.mu.Lock()
	r.nextID++
	id := r.nextID
	if r.closed {
		r.mu.Unlock()
		r.emit(Event{Job: id, Kind: EventFailed, Err: errors.New("the runner is closed"), Message: "the runner is closed"})
		return id
	}
	r.queue = append(r.queue, queued{ctx: ctx, id: id, job: j})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return id
}

// Close stops the runner after the running job (cancel its context first
// to stop it early), drops queued jobs and frees the model and backend.
func (r *Runner) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return
	}
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	<-r.done
}

func (r *Runner) loop() {
	defer close(r.done)
	defer r.release()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		if len(r.queue) == 0 {
			r.mu.Unlock()
			<-r.wake
			continue
		}
		q := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		r.run(q)
	}
}

// release frees the pipeline and the backend.
func (r *Runner) release() {
	r.dropPipeline()
	if r.backend != nil {
		r.backend.Close()
		r.backend, r.backendName = nil, ""
	}
}

func (r *Runner) dropPipeline() {
	if r.pipe != nil {
		r.pipe.Close()
		r.pipe, r.pipeKey = nil, pipeKey{}
	}
}

// run does one job and emits exactly one final event for it.
func (r *Runner) run(q queued) {
	id := q.id
	send := func(e Event) {
		e.Job = id
		r.emit(e)
	}
	defer func() {
		if v := recover(); v != nil {
			// An engine bug: report it and start afresh on the next job.
			r.pipe, r.backend = nil, nil
			r.pipeKey, r.backendName = pipeKey{}, ""
			err := fmt.Errorf("internal error: %v", v)
			send(Event{Kind: EventFailed, Err: err, Message: oneLine(err.Error())})
		}
	}()
	err := r.work(q.ctx, q.job, send)
	switch {
	case err == nil:
		send(Event{Kind: EventFinished})
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		send(Event{Kind: EventCancelled, Message: "cancelled", Err: err})
	default:
		send(Event{Kind: EventFailed, Err: err, Message: oneLine(err.Error())})
	}
}

func (r *Runner) work(ctx context.Context, j Job, send func(Event)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !j.LoadOnly {
		if err := j.check(); err != nil {
			return err
		}
	}
	specs, notes, err := ResolveLoRAs(j.Params, nil, LoRADirs(j.Model, j.LoRADir))
	if err != nil {
		return err
	}
	for _, n := range notes {
		send(Event{Kind: EventNotice, Message: n})
	}
	p, err := r.load(j, specs, send)
	if err != nil {
		return err
	}
	if j.LoadOnly {
		return nil
	}
	preview := j.Preview
	if preview == pipeline.PreviewTAESD && p.TAESD == nil {
		send(Event{Kind: EventNotice, Message: "TAESD previews need a TAESD file (Settings); showing latent previews"})
		preview = pipeline.PreviewLatent
	}
	count := max(j.Count, 1)
	params, err := withLoRAs(j.Params, specs)
	if err != nil {
		return err
	}
	params.Model = modelName(j.Model)
	if params.Seed < 0 {
		params.Seed = randomSeed()
	}
	now := r.now()
	total := count * params.Steps
	for i := range count {
		if err := ctx.Err(); err != nil {
			return err
		}
		pi := params
		pi.Seed = params.Seed + int64(i)
		req := pi.Request()
		req.Preview = preview
		// The rate counts from the end of the first step, so the prompt
		// encoding (and a GL driver's first shader compiles) do not skew
		// it; the first step has only its own time.
		var first time.Duration
		onStep := func(s pipeline.Step) {
			rate := float64(s.Index) / s.Elapsed.Seconds()
			if s.Index == 1 {
				first = s.Elapsed
			} else if d := s.Elapsed - first; d > 0 {
				rate = float64(s.Index-1) / d.Seconds()
			}
			left := total - (i*pi.Steps + s.Index)
			var eta time.Duration
			if rate > 0 {
				eta = time.Duration(float64(left) / rate * float64(time.Second))
			}
			send(Event{Kind: EventStep, Index: i, Count: count, Step: s.Index, Steps: s.Total,
				Rate: rate, ETA: eta, Preview: s.Preview, Params: pi})
		}
		res, err := p.Generate(ctx, req, onStep)
		if err != nil {
			return err
		}
		path, serr := save(j, pi, res.Image, now, i)
		send(Event{Kind: EventImage, Index: i, Count: count, Image: res.Image, Params: pi, Path: path, Err: serr})
		if serr != nil {
			return serr
		}
	}
	return nil
}

// check validates a job's parameters with the CLI's rules.
func (j Job) check() error {
	if j.Model == "" {
		return errors.New("no model chosen")
	}
	if j.OutputDir == "" {
		return errors.New("no output folder set")
	}
	if err := CheckNameTemplate(j.template()); err != nil {
		return fmt.Errorf("file name template: %w", err)
	}
	g := genFlags{model: j.Model, backend: j.Backend, p: j.Params, seed: max(j.Params.Seed, -1)}
	if g.backend == "" {
		g.backend = "auto"
	}
	if g.p.ClipSkip == 0 {
		g.p.ClipSkip = 1
	}
	if strings.TrimSpace(g.p.Prompt) == "" {
		g.p.Prompt = "-" // an empty prompt is fine here (unconditional image)
	}
	if err := g.validate(""); err != nil {
		return err
	}
	if j.Count < 0 || j.Count > 1000 {
		return fmt.Errorf("batch count %d must be between 1 and 1000", j.Count)
	}
	return nil
}

func (j Job) template() string {
	if j.NameTemplate == "" {
		return DefaultNameTemplate
	}
	return j.NameTemplate
}

// load returns the pipeline for j with the LoRAs of specs merged in,
// reusing the loaded one when the backend, model, tokenizer, TAESD file
// and LoRA set (files unchanged) are the same.
func (r *Runner) load(j Job, specs []LoRASpec, send func(Event)) (*pipeline.Pipeline, error) {
	backend := j.Backend
	if backend == "" {
		backend = "auto"
	}
	key := pipeKey{backend: backend, model: j.Model, tokenizer: j.Tokenizer, taesd: j.TAESD, loras: loraKey(specs), offload: j.Offload}
	if r.pipe != nil && r.pipeKey == key {
		return r.pipe, nil
	}
	r.dropPipeline()
	if r.backend == nil || r.backendName != backend {
		if r.backend != nil {
			r.backend.Close()
			r.backend, r.backendName = nil, ""
		}
		send(Event{Kind: EventLoading, Message: "opening the " + backend + " backend"})
		b, notice, err := device.Open(backend)
		if err != nil {
			return nil, err
		}
		if notice != "" {
			send(Event{Kind: EventNotice, Message: notice})
		}
		r.backend, r.backendName = b, backend
	}
	if j.Model == "" {
		return nil, errors.New("no model chosen")
	}
	loras, err := ReadLoRAs(specs)
	if err != nil {
		return nil, err
	}
	start := r.now()
	p, err := pipeline.Load(j.Model, r.backend, pipeline.Options{Tokenizer: j.Tokenizer, TAESD: j.TAESD, LoRAs: loras, Offload: j.Offload},
		func(stage string) { send(Event{Kind: EventLoading, Message: "loading " + stage}) })
	if err != nil {
		return nil, err
	}
	r.pipe, r.pipeKey = p, key
	send(Event{Kind: EventLoaded, Message: fmt.Sprintf("loaded %s on %s in %.1fs",
		modelName(j.Model), r.backend.Name(), time.Since(start).Seconds())})
	return p, nil
}

// save writes img with its parameters to the job's output folder under a
// free name and returns the path.
func save(j Job, p Params, img image.Image, now time.Time, index int) (string, error) {
	data, err := EncodePNG(img, [][2]string{{"parameters", p.Format()}})
	if err != nil {
		return "", fmt.Errorf("encoding the PNG: %w", err)
	}
	if err := os.MkdirAll(j.OutputDir, 0o755); err != nil {
		return "", fmt.Errorf("output folder: %w", err)
	}
	name := ExpandName(j.template(), p, now, index)
	// FreeName then WriteNew: another writer may take the name in
	// between, so try the next free name a few times.
	var last error
	for range 5 {
		path := FreeName(filepath.Join(j.OutputDir, name))
		if last = WriteNew(path, data); last == nil {
			return path, nil
		}
		if _, err := os.Lstat(path); err != nil {
			break // not a name clash
		}
	}
	return "", fmt.Errorf("saving: %w", last)
}

// File names.

// DefaultNameTemplate names saved images by date, seed and prompt.
const DefaultNameTemplate = "{date}-{seed}-{prompt}"

// NameFields are the fields a file-name template may use.
var NameFields = []string{"date", "time", "seed", "prompt", "model", "sampler", "steps", "cfg", "width", "height", "index"}

// CheckNameTemplate accepts a non-empty template whose {fields} are all
// NameFields and that names no folder.
func CheckNameTemplate(t string) error {
	if strings.TrimSpace(t) == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(t, `/\`) {
		return errors.New("must not contain / or \\ (it names a file in the output folder)")
	}
	rest := t
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			return nil
		}
		if rest[i] == '}' {
			return errors.New("} without {")
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return errors.New("{ without }")
		}
		field := rest[i+1 : i+end]
		known := false
		for _, f := range NameFields {
			known = known || f == field
		}
		if !known {
			return fmt.Errorf("unknown field {%s} (known: {%s})", field, strings.Join(NameFields, "}, {"))
		}
		rest = rest[i+end+1:]
	}
}

// ExpandName fills a template (checked by CheckNameTemplate) for image
// index of a job started at now and returns a file name ending in .png
// that is safe on Windows, macOS and Linux: no path separators, no
// reserved characters or names, at most about 150 bytes.
func ExpandName(t string, p Params, now time.Time, index int) string {
	prompt := strings.Join(strings.Fields(p.Prompt), " ")
	if n := utf8.RuneCountInString(prompt); n > 60 {
		prompt = string([]rune(prompt)[:60])
	}
	r := strings.NewReplacer(
		"{date}", now.Format("2006-01-02"),
		"{time}", now.Format("150405"),
		"{seed}", strconv.FormatInt(p.Seed, 10),
		"{prompt}", prompt,
		"{model}", p.Model,
		"{sampler}", p.Sampler,
		"{steps}", strconv.Itoa(p.Steps),
		"{cfg}", strconv.FormatFloat(p.CFG, 'g', -1, 64),
		"{width}", strconv.Itoa(p.Width),
		"{height}", strconv.Itoa(p.Height),
		"{index}", strconv.Itoa(index+1),
	)
	return sanitizeName(r.Replace(t)) + ".png"
}

// sanitizeName makes s a portable file name stem.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c < 0x20 || c == 0x7f || strings.ContainsRune(`<>:"/\|?*`, c):
			b.WriteByte('_')
		case unicode.IsSpace(c):
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	for len(out) > 150 {
		_, size := utf8.DecodeLastRuneInString(out)
		out = out[:len(out)-size]
	}
	out = strings.TrimRight(out, ". ")
	out = strings.TrimLeft(out, ". ")
	if out == "" {
		return "image"
	}
	stem, _, _ := strings.Cut(out, ".")
	switch strings.ToUpper(strings.TrimSpace(stem)) {
	case "CON", "PRN", "AUX", "NUL",
		"COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		out = "_" + out
	}
	return out
}
