package settings

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// mapStore is an in-memory Store.
type mapStore struct {
	s map[string]string
	l map[string][]string
}

func newMapStore() *mapStore {
	return &mapStore{s: map[string]string{}, l: map[string][]string{}}
}

func (m *mapStore) String(k string) string             { return m.s[k] }
func (m *mapStore) SetString(k, v string)              { m.s[k] = v }
func (m *mapStore) StringList(k string) []string       { return m.l[k] }
func (m *mapStore) SetStringList(k string, v []string) { m.l[k] = append([]string(nil), v...) }
func (m *mapStore) RemoveValue(k string)               { delete(m.s, k); delete(m.l, k) }

func TestFirstStartIsDefaultsWithoutNotices(t *testing.T) {
	s, notices := Load(newMapStore())
	if len(notices) != 0 {
		t.Errorf("notices on a first start: %q", notices)
	}
	if !reflect.DeepEqual(s, Defaults()) {
		t.Errorf("first start %+v, want the defaults %+v", s, Defaults())
	}
	if err := s.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.safetensors")
	other := filepath.Join(dir, "other")
	for _, p := range []string{model, filepath.Join(dir, "taesd.safetensors")} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	s := Defaults()
	s.UseModel(other)
	s.UseModel(model)
	s.OutputDir = filepath.Join(dir, "out")
	s.NameTemplate = "{seed}-{prompt}"
	s.Sampler, s.Schedule, s.Steps, s.CFG, s.Width, s.Height = "dpmpp_2m", "karras", 30, 6.5, 768, 512
	s.Backend, s.Preview, s.TAESD = "cpu", "taesd", filepath.Join(dir, "taesd.safetensors")
	s.Offload = true
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	st := newMapStore()
	s.Save(st)
	got, notices := Load(st)
	if len(notices) != 0 {
		t.Errorf("notices: %q", notices)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, s)
	}
	if want := []string{model, other}; !reflect.DeepEqual(got.Recent, want) {
		t.Errorf("recent %q, want %q", got.Recent, want)
	}
}

func TestInvalidValuesFallBackWithNotices(t *testing.T) {
	st := newMapStore()
	bad := map[string]string{
		keyModel:     "/nowhere/model.safetensors",
		keyOutputDir: "relative/dir",
		keyTemplate:  "{nope}",
		keySampler:   "plms",
		keySteps:     "0",
		keyCFG:       "7.3",
		keyWidth:     "513",
		keyHeight:    "abc",
		keyBackend:   "vulkan",
		keyPreview:   "fancy",
		keyTAESD:     "/nowhere/taesd.safetensors",
		keyOffload:   "sometimes",
	}
	for k, v := range bad {
		st.SetString(k, v)
	}
	st.SetStringList(keyRecent, []string{"/nowhere/a", "/nowhere/b"})
	s, notices := Load(st)
	d := Defaults()
	if !reflect.DeepEqual(s, d) {
		t.Errorf("with invalid values\n got %+v\nwant the defaults %+v", s, d)
	}
	// One notice per bad value (the recent list is pruned silently).
	if len(notices) != len(bad) {
		t.Errorf("%d notices for %d bad values:\n%s", len(notices), len(bad), strings.Join(notices, "\n"))
	}
	for k, v := range bad {
		found := false
		for _, n := range notices {
			found = found || strings.Contains(n, v)
		}
		if !found {
			t.Errorf("no notice names the bad %s %q", k, v)
		}
	}
}

func TestSamplerScheduleCombination(t *testing.T) {
	st := newMapStore()
	st.SetString(keySampler, "ddim")
	st.SetString(keySchedule, "karras")
	s, notices := Load(st)
	if s.Sampler != Defaults().Sampler || s.Schedule != Defaults().Schedule || len(notices) != 1 {
		t.Errorf("ddim+karras loaded as %s+%s with notices %q", s.Sampler, s.Schedule, notices)
	}
	st = newMapStore()
	st.SetString(keyPreview, "taesd")
	if s, notices := Load(st); s.Preview != "latent" || len(notices) != 1 {
		t.Errorf("taesd previews without a file: %s, notices %q", s.Preview, notices)
	}
}

func TestChecks(t *testing.T) {
	for _, n := range []int{1, 150} {
		if CheckSteps(n) != nil {
			t.Errorf("steps %d refused", n)
		}
	}
	for _, n := range []int{0, 151, -1} {
		if CheckSteps(n) == nil {
			t.Errorf("steps %d accepted", n)
		}
	}
	for _, f := range []float64{1, 7.5, 30} {
		if CheckCFG(f) != nil {
			t.Errorf("CFG %g refused", f)
		}
	}
	for _, f := range []float64{0.5, 7.25, 30.5} {
		if CheckCFG(f) == nil {
			t.Errorf("CFG %g accepted", f)
		}
	}
	for _, n := range []int{64, 72, 512, 2048} {
		if CheckSize(n) != nil {
			t.Errorf("size %d refused", n)
		}
	}
	for _, n := range []int{0, 56, 100, 2056} {
		if CheckSize(n) == nil {
			t.Errorf("size %d accepted", n)
		}
	}
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if CheckOutputDir(f) == nil || CheckOutputDir("") == nil || CheckOutputDir(filepath.Join(f, "..", "new")) != nil {
		t.Error("CheckOutputDir: a file and an empty path must fail, a new folder must pass")
	}
}

func TestRecentIsCapped(t *testing.T) {
	s := Defaults()
	for i := range MaxRecent + 3 {
		s.UseModel(filepath.Join("m", string(rune('a'+i))))
	}
	s.UseModel(filepath.Join("m", "c"))
	if len(s.Recent) != MaxRecent || s.Recent[0] != filepath.Join("m", "c") || s.Model != filepath.Join("m", "c") {
		t.Errorf("recent %q", s.Recent)
	}
}
