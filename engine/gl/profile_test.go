package gl

import (
	"strconv"
	"strings"
	"testing"

	"glimmer/engine"
)

// TestProfileStamps: GLIMMER_GL_PROFILE=ts's report counts every dispatch
// under its shader variant, gives each a time, and starts afresh after
// each report; the values computed under profiling are the unprofiled
// ones. The pending queries are read once 3 dispatches wait (maxPending
// in small), and the report still counts all 5.
func TestProfileStamps(t *testing.T) {
	b := openGL(t)
	b.call(func() { b.profile = newProfile(true); b.profile.maxPending = 3 })
	defer b.call(func() { b.profile = nil })
	x := b.New(engine.F32, 64, 1024) // [64, 1024]
	v := make([]float32, x.Numel())
	for i := range v {
		v[i] = float32(i%97) - 48
	}
	b.Write(x, v)
	for range 5 {
		b.Scale(x, x, 2, 0) // each waits on the one before: a chain of dependent dispatches
	}
	got, err := b.Read(x)
	if err != nil {
		t.Fatal(err)
	}
	var pending int
	b.call(func() { pending = len(b.profile.pending) })
	if pending >= 3 {
		t.Fatalf("%d dispatches' queries pending, want fewer than 3", pending)
	}
	for i := range v {
		if got[i] != v[i]*32 {
			t.Fatalf("[%d] = %g, want %g", i, got[i], v[i]*32)
		}
	}
	report := b.Profile()
	t.Logf("report:\n%s", report)
	var scaleCalls int
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(line, "scale") {
			continue
		}
		n, err := strconv.Atoi(f[len(f)-3])
		if err != nil {
			t.Fatalf("report line %q: %v", line, err)
		}
		ms, err := strconv.ParseFloat(f[len(f)-2], 64)
		if err != nil || ms < 0 {
			t.Fatalf("report line %q: time %q", line, f[len(f)-2])
		}
		scaleCalls += n
	}
	if scaleCalls != 5 {
		t.Fatalf("report counts %d scale dispatches, want 5:\n%s", scaleCalls, report)
	}
	if !strings.Contains(report, "total") {
		t.Fatalf("report has no total:\n%s", report)
	}
	if again := b.Profile(); strings.Contains(again, "scale") {
		t.Fatalf("second report still holds the first's dispatches:\n%s", again)
	}
}
