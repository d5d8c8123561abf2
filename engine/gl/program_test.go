package gl

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"glimmer/engine"

	gl "github.com/go-gl/gl/v4.3-core/gl"
)

// A shader that does not compile names the op, carries the driver's log
// and quotes the line the log points at.
func TestCompileErrorNamesOpAndLine(t *testing.T) {
	b := openGL(t)
	src := "#version 430 core\nlayout(local_size_x = 1) in;\nvoid main() {\n\tfloat x = no_such_function(1.0);\n}\n"
	var err error
	b.call(func() { _, err = compile("broken_op", src) })
	if err == nil {
		t.Fatal("a broken shader compiled")
	}
	msg := err.Error()
	for _, want := range []string{"broken_op.comp does not compile", "no_such_function", "line 4: float x = no_such_function(1.0);"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

// Dispatches larger than the driver's per-dimension limit are split over
// the grid's other dimensions.
func TestSplitStaysWithinLimits(t *testing.T) {
	lim := [3]int{65535, 65535, 65535}
	for _, n := range []int{1, 65535, 65536, 65535*65535 + 7, 300000} {
		x, y, z := split(n, lim)
		if x > lim[0] || y > lim[1] || z > lim[2] || x*y*z < n {
			t.Errorf("split(%d) = %d x %d x %d", n, x, y, z)
		}
	}
}

// An op over more work groups than one grid dimension allows (llvmpipe:
// 65,535) still writes every element.
func TestLargeDispatchWritesEverything(t *testing.T) {
	b := openGL(t)
	n := 256*70000 + 13 // 70,001 groups of 256
	x := b.New(engine.F32, n)
	y := b.New(engine.F32, n)
	defer b.Free(x)
	defer b.Free(y)
	xs := make([]float32, n)
	poison := make([]float32, n)
	for i := range xs {
		xs[i] = float32(i % 1000)
		poison[i] = float32(math.NaN())
	}
	b.Write(x, xs)
	b.Write(y, poison)
	b.Scale(y, x, 2, 1)
	out, err := b.Read(y)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if v != 2*xs[i]+1 {
			t.Fatalf("element %d = %v, want %v", i, v, 2*xs[i]+1)
		}
	}
}

// GLIMMER_GL_DUMP writes each program's source and the driver's binary
// when it is compiled.
func TestDumpWritesSourceAndBinary(t *testing.T) {
	b := openGL(t)
	dir := t.TempDir()
	dumpDir = dir
	defer func() { dumpDir = "" }()
	x := b.New(engine.F32, 3)
	defer b.Free(x)
	b.Write(x, []float32{1, 2, 3})
	b.Scale(x, x, 2, 0) // compiles scale's program, first use in this backend
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "scale_.comp"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(src), "#version 430 core") {
		t.Errorf("dumped source begins %q", string(src[:min(len(src), 40)]))
	}
	// A driver may offer no binary formats (Mesa without its shader cache,
	// e.g. MESA_SHADER_CACHE_DISABLE=true): then only the source is dumped.
	var formats int32
	b.call(func() { gl.GetIntegerv(gl.NUM_PROGRAM_BINARY_FORMATS, &formats) })
	st, err := os.Stat(filepath.Join(dir, "scale_.bin"))
	switch {
	case formats > 0 && (err != nil || st.Size() == 0):
		t.Errorf("no program binary though the driver offers %d formats: %v", formats, err)
	case formats == 0 && err == nil:
		t.Errorf("a program binary was written though the driver offers no binary formats")
	}
}
