package train

import (
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// emaPixels returns the mean row of the moving average's pixels in the
// columns [x0, x1), and how many there are.
func emaPixels(img *image.RGBA, x0, x1 int) (meanY float64, n int) {
	b := img.Bounds()
	sum := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := x0; x < x1; x++ {
			if img.RGBAAt(x, y) == chartEMA {
				sum += y
				n++
			}
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return float64(sum) / float64(n), n
}

func falling(n int) []float64 {
	l := make([]float64, n)
	for i := range l {
		// From 2 down to about 0.05, with a deterministic wiggle.
		l[i] = 2*math.Exp(-float64(i)/60) + 0.05 + 0.03*math.Sin(float64(i)*1.7)
	}
	return l
}

func TestChartFallingCurve(t *testing.T) {
	losses := falling(300)
	img := Chart(losses, 800, 450, "test run")
	if img.Bounds() != image.Rect(0, 0, 800, 450) {
		t.Fatalf("bounds %v", img.Bounds())
	}
	left, nl := emaPixels(img, 0, 250)
	right, nr := emaPixels(img, 550, 800)
	if nl == 0 || nr == 0 {
		t.Fatalf("moving-average pixels: %d on the left, %d on the right", nl, nr)
	}
	// Image rows grow downwards: a falling loss sits higher (smaller y) on
	// the left.
	if !(left < right-50) {
		t.Errorf("mean EMA row %.1f on the left, %.1f on the right: want the left clearly higher", left, right)
	}
	// Raw points are drawn too, and the axis is logarithmic (2 to 0.05 is
	// more than a decade).
	raw := 0
	for i := 0; i < len(img.Pix); i += 4 {
		if img.Pix[i] == chartRaw.R && img.Pix[i+1] == chartRaw.G && img.Pix[i+2] == chartRaw.B {
			raw++
		}
	}
	if raw < 300 {
		t.Errorf("%d raw-loss pixels, want a line of at least 300", raw)
	}
	if ax := newYAxis(losses); !ax.log || len(ax.ticks) < 3 {
		t.Errorf("axis %+v: want a log axis with ticks", ax)
	}
}

func TestChartAxes(t *testing.T) {
	if ax := newYAxis([]float64{1, 0.8, 0.5}); ax.log {
		t.Errorf("1 to 0.5 is under a decade: want linear, got %+v", ax)
	}
	if ax := newYAxis([]float64{10, 0.5, -0.1}); ax.log {
		t.Errorf("a negative loss cannot be on a log axis: %+v", ax)
	}
	// Ticks of a linear axis are round and inside the range.
	ax := newYAxis([]float64{0.13, 0.21, 0.17})
	if len(ax.ticks) < 3 {
		t.Errorf("ticks %v", ax.ticks)
	}
	for _, v := range ax.ticks {
		if v < ax.lo || v > ax.hi {
			t.Errorf("tick %v outside [%v, %v]", v, ax.lo, ax.hi)
		}
	}
	// A flat series still gets a non-empty range.
	if ax := newYAxis([]float64{0.3, 0.3}); !(ax.hi > ax.lo) || len(ax.ticks) == 0 {
		t.Errorf("flat series axis %+v", ax)
	}
	if got := xTicks(1000); !slices.Equal(got, []int{1, 200, 400, 600, 800, 1000}) {
		t.Errorf("xTicks(1000) = %v", got)
	}
	if got := xTicks(3); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("xTicks(3) = %v", got)
	}
	for _, c := range []struct{ x, want float64 }{{0.13, 0.2}, {1, 1}, {3, 5}, {7, 10}, {0.0021, 0.005}} {
		if got := niceStep(c.x); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("niceStep(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

func TestChartSkipsNonFinite(t *testing.T) {
	clean := falling(100)
	dirty := slices.Clone(clean)
	dirty[10], dirty[50], dirty[70] = math.NaN(), math.Inf(1), math.Inf(-1)
	// The axis comes from the finite values only: the same as without the
	// three bad points, since none of them was an extreme.
	a, b := newYAxis(dirty), newYAxis(slices.Delete(slices.Clone(clean), 10, 11))
	if a.log != b.log || a.lo != b.lo || a.hi != b.hi {
		t.Errorf("axis with non-finite values %+v, without %+v", a, b)
	}
	ema := EMA(dirty)
	for i, v := range ema {
		bad := i == 10 || i == 50 || i == 70
		if bad != math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("EMA[%d] = %v", i, v)
		}
	}
	img := Chart(dirty, 400, 300, "")
	if _, n := emaPixels(img, 0, 400); n == 0 {
		t.Errorf("no moving-average pixels")
	}
	// All non-finite: like an empty series.
	img = Chart([]float64{math.NaN(), math.Inf(1)}, 400, 300, "")
	if _, n := emaPixels(img, 0, 400); n != 0 {
		t.Errorf("%d moving-average pixels for a series without a finite value", n)
	}
}

func TestEMA(t *testing.T) {
	// 40 values: span 4, α = 2/5; float64 reference computed directly.
	l := make([]float64, 40)
	for i := range l {
		l[i] = float64(i % 7)
	}
	got := EMA(l)
	want := l[0]
	for i, v := range l {
		if i > 0 {
			want = want + 2.0/5*(v-want)
		}
		if math.Abs(got[i]-want) > 1e-12 { // same operations, rounding only
			t.Fatalf("EMA[%d] = %v, want %v", i, got[i], want)
		}
	}
}

func TestChartEdgeCases(t *testing.T) {
	// Empty: a valid image, no curve.
	img := Chart(nil, 320, 200, "nothing yet")
	if img.Bounds().Dx() != 320 || img.Bounds().Dy() != 200 {
		t.Fatalf("bounds %v", img.Bounds())
	}
	if _, n := emaPixels(img, 0, 320); n != 0 {
		t.Errorf("empty series drew %d curve pixels", n)
	}
	// One point: a dot.
	img = Chart([]float64{0.25}, 320, 200, "")
	if _, n := emaPixels(img, 0, 320); n == 0 {
		t.Errorf("one point drew no curve")
	}
	// Too small for axes: no panic, the curve alone.
	img = Chart(falling(50), 12, 9, "tiny")
	if _, n := emaPixels(img, 0, 12); n == 0 {
		t.Errorf("tiny chart drew no curve")
	}
	// Huge range and many decades.
	img = Chart([]float64{1e6, 1e3, 1, 1e-3, 1e-6}, 320, 200, "")
	if _, n := emaPixels(img, 0, 320); n == 0 {
		t.Errorf("wide-range chart drew no curve")
	}
}

func TestWriteChart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loss.png")
	if err := WriteChart(path, nil, "empty"); err != nil {
		t.Fatal(err)
	}
	// Redrawn over the previous chart as training goes.
	if err := WriteChart(path, falling(500), "run"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, ChartWidth, ChartHeight) {
		t.Errorf("bounds %v", img.Bounds())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only loss.png (no temporary files left)", len(entries))
	}
	if err := WriteChart(filepath.Join(dir, "missing", "loss.png"), nil, ""); err == nil {
		t.Errorf("writing into a missing folder succeeded")
	}
}
