// Package settings holds Glimmer's persisted user settings: the model and
// the recently used ones, the output folder and file-name template, the
// form's defaults, the compute backend and the preview mode. Load
// validates what was stored: a bad value falls back to its default and
// yields a notice for the user, never a silent reset.
//
// Values live in a Store, a subset of fyne.Preferences (which satisfies it
// as is), so this package builds without fyne and its tests need no UI.
package settings

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"glimmer/app"
	"glimmer/engine/device"
	"glimmer/engine/rng"
	"glimmer/engine/sample"
)

// Store is where settings persist. fyne.Preferences implements it; every
// value is kept as a string so that "never set" ("") is told apart from
// a stored zero.
type Store interface {
	String(key string) string
	SetString(key, value string)
	StringList(key string) []string
	SetStringList(key string, value []string)
	RemoveValue(key string)
}

// Bounds of the form's values (the window enforces the same).
const (
	MinSteps, MaxSteps = 1, 150
	MinCFG, MaxCFG     = 1.0, 30.0
	CFGStep            = 0.5
	MinSize, MaxSize   = 64, 2048
	SizeMultiple       = 8
	MaxRecent          = 8
)

// Preview modes (the engine's pipeline.Preview by name).
var PreviewModes = []string{"none", "latent", "taesd"}

// Settings are the user's choices.
type Settings struct {
	Model     string   // model file or diffusers folder; "" until one is picked
	Recent    []string // recently used models, most recent first
	Tokenizer string   // optional tokenizer overriding the one found beside the model
	OutputDir string   // every image is saved here
	// NameTemplate names saved images, e.g. "{date}-{seed}-{prompt}"
	// (see app.ExpandName).
	NameTemplate string

	// Defaults of the form.
	Sampler       string
	Schedule      string
	Steps         int
	CFG           float64
	Width, Height int

	Backend string // auto, gl, cpu
	Preview string // none, latent, taesd
	TAESD   string // TAESD decoder file for taesd previews
	// Offload keeps idle weights off the GPU (pipeline.Options.Offload):
	// less GPU memory, an upload per image.
	Offload bool
}

// Defaults are the settings of a first start.
func Defaults() Settings {
	p := app.DefaultParams()
	return Settings{
		OutputDir:    DefaultOutputDir(),
		NameTemplate: app.DefaultNameTemplate,
		Sampler:      p.Sampler, Schedule: p.Schedule, Steps: p.Steps, CFG: p.CFG,
		Width: p.Width, Height: p.Height,
		Backend: "auto",
		Preview: "latent",
	}
}

// DefaultOutputDir is Pictures/Glimmer in the user's home folder (the
// working folder when there is no home).
func DefaultOutputDir() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		if wd, err := os.Getwd(); err == nil {
			return filepath.Join(wd, "glimmer-images")
		}
		return "glimmer-images"
	}
	return filepath.Join(home, "Pictures", "Glimmer")
}

// Keys in the store.
const (
	keyModel     = "model"
	keyRecent    = "recent_models"
	keyTokenizer = "tokenizer"
	keyOutputDir = "output_dir"
	keyTemplate  = "name_template"
	keySampler   = "sampler"
	keySchedule  = "schedule"
	keySteps     = "steps"
	keyCFG       = "cfg"
	keyWidth     = "width"
	keyHeight    = "height"
	keyBackend   = "backend"
	keyPreview   = "preview"
	keyTAESD     = "taesd"
	keyOffload   = "offload"
)

// Load reads the settings from st. Every stored value is checked; one that
// is not valid is replaced by its default and described in a notice (one
// line each) for the user. Values never stored take their defaults
// silently.
func Load(st Store) (Settings, []string) {
	s := Defaults()
	var notices []string
	bad := func(what, value, why string) {
		notices = append(notices, fmt.Sprintf("Setting %s %q: %s; using the default.", what, value, why))
	}
	str := func(key string, dst *string, check func(string) error) {
		v := st.String(key)
		if v == "" {
			return
		}
		if check != nil {
			if err := check(v); err != nil {
				bad(key, v, err.Error())
				return
			}
		}
		*dst = v
	}
	num := func(key string, dst *int, check func(int) error) {
		v := st.String(key)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err == nil {
			err = check(n)
		}
		if err != nil {
			bad(key, v, errText(err))
			return
		}
		*dst = n
	}

	if m := st.String(keyModel); m != "" {
		if _, err := os.Stat(m); err != nil {
			notices = append(notices, fmt.Sprintf("The last model %s is no longer there; pick a model.", m))
		} else {
			s.Model = m
		}
	}
	for _, r := range st.StringList(keyRecent) {
		if _, err := os.Stat(r); err == nil && r != "" && !slices.Contains(s.Recent, r) {
			s.Recent = append(s.Recent, r)
		}
	}
	if len(s.Recent) > MaxRecent {
		s.Recent = s.Recent[:MaxRecent]
	}
	str(keyTokenizer, &s.Tokenizer, existing)
	str(keyOutputDir, &s.OutputDir, CheckOutputDir)
	str(keyTemplate, &s.NameTemplate, app.CheckNameTemplate)
	str(keySampler, &s.Sampler, oneOf(sample.Names()))
	str(keySchedule, &s.Schedule, oneOf(sample.Schedules()))
	num(keySteps, &s.Steps, CheckSteps)
	if v := st.String(keyCFG); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err == nil {
			err = CheckCFG(f)
		}
		if err != nil {
			bad(keyCFG, v, errText(err))
		} else {
			s.CFG = f
		}
	}
	num(keyWidth, &s.Width, CheckSize)
	num(keyHeight, &s.Height, CheckSize)
	str(keyBackend, &s.Backend, oneOf(device.Names))
	str(keyPreview, &s.Preview, oneOf(PreviewModes))
	str(keyTAESD, &s.TAESD, existing)
	switch v := st.String(keyOffload); v {
	case "", "false":
	case "true":
		s.Offload = true
	default:
		bad(keyOffload, v, "not true or false")
	}

	if err := CheckSampler(s.Sampler, s.Schedule); err != nil {
		notices = append(notices, fmt.Sprintf("Settings: %v; using the default sampler and schedule.", err))
		d := Defaults()
		s.Sampler, s.Schedule = d.Sampler, d.Schedule
	}
	if s.Preview == "taesd" && s.TAESD == "" {
		notices = append(notices, "Settings: TAESD previews need a TAESD file; using latent previews.")
		s.Preview = "latent"
	}
	return s, notices
}

// Save writes s to st.
func (s Settings) Save(st Store) {
	set := func(key, v string) {
		if v == "" {
			st.RemoveValue(key)
			return
		}
		st.SetString(key, v)
	}
	set(keyModel, s.Model)
	st.SetStringList(keyRecent, s.Recent)
	set(keyTokenizer, s.Tokenizer)
	set(keyOutputDir, s.OutputDir)
	set(keyTemplate, s.NameTemplate)
	set(keySampler, s.Sampler)
	set(keySchedule, s.Schedule)
	set(keySteps, strconv.Itoa(s.Steps))
	set(keyCFG, strconv.FormatFloat(s.CFG, 'g', -1, 64))
	set(keyWidth, strconv.Itoa(s.Width))
	set(keyHeight, strconv.Itoa(s.Height))
	set(keyBackend, s.Backend)
	set(keyPreview, s.Preview)
	set(keyTAESD, s.TAESD)
	set(keyOffload, strconv.FormatBool(s.Offload))
}

// Validate checks every field as Load does and returns the first problem,
// for the settings dialog.
func (s Settings) Validate() error {
	if s.Tokenizer != "" {
		if err := existing(s.Tokenizer); err != nil {
			return fmt.Errorf("tokenizer: %v", err)
		}
	}
	if err := CheckOutputDir(s.OutputDir); err != nil {
		return fmt.Errorf("output folder: %v", err)
	}
	if err := app.CheckNameTemplate(s.NameTemplate); err != nil {
		return fmt.Errorf("file name template: %v", err)
	}
	if err := CheckSampler(s.Sampler, s.Schedule); err != nil {
		return err
	}
	if err := CheckSteps(s.Steps); err != nil {
		return fmt.Errorf("steps: %v", err)
	}
	if err := CheckCFG(s.CFG); err != nil {
		return fmt.Errorf("CFG: %v", err)
	}
	if err := CheckSize(s.Width); err != nil {
		return fmt.Errorf("width: %v", err)
	}
	if err := CheckSize(s.Height); err != nil {
		return fmt.Errorf("height: %v", err)
	}
	if err := oneOf(device.Names)(s.Backend); err != nil {
		return fmt.Errorf("backend: %v", err)
	}
	if err := oneOf(PreviewModes)(s.Preview); err != nil {
		return fmt.Errorf("preview: %v", err)
	}
	if s.TAESD != "" {
		if err := existing(s.TAESD); err != nil {
			return fmt.Errorf("TAESD: %v", err)
		}
	}
	if s.Preview == "taesd" && s.TAESD == "" {
		return fmt.Errorf("TAESD previews need a TAESD file")
	}
	return nil
}

// UseModel makes path the current model and puts it first in Recent.
func (s *Settings) UseModel(path string) {
	s.Model = path
	s.Recent = slices.DeleteFunc(s.Recent, func(r string) bool { return r == path })
	s.Recent = append([]string{path}, s.Recent...)
	if len(s.Recent) > MaxRecent {
		s.Recent = s.Recent[:MaxRecent]
	}
}

// CheckSteps accepts MinSteps..MaxSteps.
func CheckSteps(n int) error {
	if n < MinSteps || n > MaxSteps {
		return fmt.Errorf("%d is not between %d and %d", n, MinSteps, MaxSteps)
	}
	return nil
}

// CheckCFG accepts MinCFG..MaxCFG in steps of CFGStep.
func CheckCFG(f float64) error {
	if !(f >= MinCFG && f <= MaxCFG) {
		return fmt.Errorf("%g is not between %g and %g", f, MinCFG, MaxCFG)
	}
	if f/CFGStep != float64(int(f/CFGStep)) {
		return fmt.Errorf("%g is not a multiple of %g", f, CFGStep)
	}
	return nil
}

// CheckSize accepts image sides MinSize..MaxSize that are multiples of
// SizeMultiple.
func CheckSize(n int) error {
	if n < MinSize || n > MaxSize {
		return fmt.Errorf("%d is not between %d and %d", n, MinSize, MaxSize)
	}
	if n%SizeMultiple != 0 {
		return fmt.Errorf("%d is not a multiple of %d", n, SizeMultiple)
	}
	return nil
}

// CheckSampler accepts a known sampler and schedule that work together
// (ddim and euler_a have no karras schedule).
func CheckSampler(sampler, schedule string) error {
	if _, err := sample.New(sampler, schedule, 20, sample.ScheduleConfig{}, rng.New(0)); err != nil {
		return err
	}
	return nil
}

// CheckOutputDir accepts an absolute path that is a folder or does not
// exist yet (it is made on the first save).
func CheckOutputDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("empty")
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s is not an absolute path", dir)
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("%s is a file, not a folder", dir)
	}
	return nil
}

func existing(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s does not exist", path)
	}
	return nil
}

func oneOf(list []string) func(string) error {
	return func(v string) error {
		if slices.Contains(list, v) {
			return nil
		}
		return fmt.Errorf("not one of %s", strings.Join(list, ", "))
	}
}

func errText(err error) string {
	if ne, ok := err.(*strconv.NumError); ok {
		return "not a number: " + ne.Err.Error()
	}
	return err.Error()
}
