package train

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"glimmer/engine/tmpfile"
)

// Chart colours. The moving average's colour is used by nothing else, so
// its pixels can be found in the image (the tests do).
var (
	chartBackground = color.RGBA{255, 255, 255, 255}
	chartFrame      = color.RGBA{120, 120, 120, 255}
	chartGrid       = color.RGBA{232, 232, 232, 255}
	chartText       = color.RGBA{30, 30, 30, 255}
	chartRaw        = color.RGBA{160, 190, 235, 255} // raw loss: light blue
	chartEMA        = color.RGBA{200, 50, 20, 255}   // moving average: bold red-orange
)

// Default size of the chart WriteChart draws.
const (
	ChartWidth  = 800
	ChartHeight = 450
)

// WriteChart draws the loss curve (see Chart) at ChartWidth×ChartHeight
// and writes it to path as a PNG. The file is written to a temporary file
// beside path and renamed over it, so a reader never sees a half-written
// chart. It replaces an existing file at path: the chart belongs to the
// training run, which redraws it as training goes, so the caller must give
// a path inside the run's own output, not a user's file.
func WriteChart(path string, losses []float64, title string) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, Chart(losses, ChartWidth, ChartHeight, title)); err != nil {
		return fmt.Errorf("train: loss chart: %w", err)
	}
	f, err := tmpfile.Create(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("train: loss chart: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("train: loss chart %s: %w", path, err)
	}
	return nil
}

// Chart draws a loss curve on a w×h image: loss i is the loss of step
// i+1. The raw losses are a thin light line (with dots when there are few),
// their exponential moving average (EMA) a bold line on top. The y axis is
// logarithmic when the losses are positive and span more than a factor of
// ten, else linear; the chart says which. Non-finite losses (NaN, ±Inf) are
// skipped: they leave a gap in neither curve and do not stretch the axis.
// An empty or all-non-finite series gives the frame and "no loss values
// yet". It panics if w or h is below 1.
func Chart(losses []float64, w, h int, title string) *image.RGBA {
	if w < 1 || h < 1 {
		panic(fmt.Sprintf("train: Chart size %dx%d", w, h))
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), chartBackground)

	ax := newYAxis(losses)
	labels := make([]string, len(ax.ticks))
	labelW := 0
	for i, v := range ax.ticks {
		labels[i] = tickLabel(v)
		labelW = max(labelW, textWidth(labels[i]))
	}
	// Plot area: room for the title above, tick labels left and below.
	plot := image.Rect(labelW+14, 30, w-16, h-36)
	if plot.Dx() < 2 || plot.Dy() < 2 {
		plot = image.Rect(0, 0, w, h) // too small for axes: the curves alone
	}

	n := len(losses)
	xLo, xHi := 1.0, float64(max(n, 2))
	if n == 1 {
		xLo, xHi = 0, 2
	}
	px := func(step float64) float64 {
		return float64(plot.Min.X) + (step-xLo)/(xHi-xLo)*float64(plot.Dx()-1)
	}
	py := func(v float64) float64 {
		return float64(plot.Max.Y-1) - (ax.pos(v)-ax.lo)/(ax.hi-ax.lo)*float64(plot.Dy()-1)
	}

	// Grid and tick labels.
	for i, v := range ax.ticks {
		y := int(math.Round(py(v)))
		hline(img, plot.Min.X, plot.Max.X, y, chartGrid)
		drawText(img, plot.Min.X-6-textWidth(labels[i]), y+4, labels[i], chartText)
	}
	for _, s := range xTicks(n) {
		x := int(math.Round(px(float64(s))))
		vline(img, x, plot.Min.Y, plot.Max.Y, chartGrid)
		l := strconv.Itoa(s)
		drawText(img, x-textWidth(l)/2, plot.Max.Y+15, l, chartText)
	}
	frame(img, plot, chartFrame)
	drawText(img, plot.Min.X+plot.Dx()/2-textWidth("step")/2, plot.Max.Y+30, "step", chartText)
	drawText(img, plot.Min.X, 18, title, chartText)
	scale := "loss, linear scale"
	if ax.log {
		scale = "loss, log scale"
	}
	drawText(img, plot.Max.X-textWidth(scale), 18, scale, chartText)

	if ax.empty {
		msg := "no loss values yet"
		drawText(img, plot.Min.X+plot.Dx()/2-textWidth(msg)/2, plot.Min.Y+plot.Dy()/2, msg, chartText)
		return img
	}

	clip := img.SubImage(plot).(*image.RGBA) // curves stay inside the frame
	finite := 0
	for _, v := range losses {
		if isFinite(v) {
			finite++
		}
	}
	// Raw losses.
	prevX, prevY, have := 0.0, 0.0, false
	for i, v := range losses {
		if !isFinite(v) {
			continue
		}
		x, y := px(float64(i+1)), py(v)
		if have {
			line(clip, prevX, prevY, x, y, 1, chartRaw)
		}
		if finite <= 60 {
			line(clip, x, y, x, y, 3, chartRaw)
		}
		prevX, prevY, have = x, y, true
	}
	// Moving average, bold, on top.
	ema := EMA(losses)
	have = false
	for i, v := range ema {
		if !isFinite(v) {
			continue
		}
		x, y := px(float64(i+1)), py(v)
		if have {
			line(clip, prevX, prevY, x, y, 3, chartEMA)
		} else if finite == 1 {
			line(clip, x, y, x, y, 7, chartEMA) // a lone point: a visible dot
		}
		prevX, prevY, have = x, y, true
	}
	return img
}

// EMA is the exponential moving average of the finite losses, over a span
// of a tenth of the series (at least 1, at most 200 steps; diffusion losses
// swing with the sampled timestep, so the average must be long): α =
// 2/(span+1), started at the first finite value. Entries at non-finite
// losses are NaN.
func EMA(losses []float64) []float64 {
	span := min(max(len(losses)/10, 1), 200)
	alpha := 2 / (float64(span) + 1)
	out := make([]float64, len(losses))
	ema, started := 0.0, false
	for i, v := range losses {
		if !isFinite(v) {
			out[i] = math.NaN()
			continue
		}
		if !started {
			ema, started = v, true
		} else {
			ema += alpha * (v - ema)
		}
		out[i] = ema
	}
	return out
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// yAxis maps losses to the plot's vertical axis: pos(v) is linear in v or
// in log10(v); [lo, hi] is the visible range of pos.
type yAxis struct {
	log, empty bool
	lo, hi     float64
	ticks      []float64 // loss values to label
}

func (a yAxis) pos(v float64) float64 {
	if a.log {
		return math.Log10(v)
	}
	return v
}

func newYAxis(losses []float64) yAxis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range losses {
		if isFinite(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if lo > hi { // nothing finite
		return yAxis{empty: true, lo: 0, hi: 1} // no ticks: nothing to measure
	}
	if lo > 0 && hi/lo > 10 {
		a := yAxis{log: true, lo: math.Log10(lo), hi: math.Log10(hi)}
		pad := 0.04 * (a.hi - a.lo)
		a.lo, a.hi = a.lo-pad, a.hi+pad
		decades := a.hi - a.lo
		mults := []float64{1}
		if decades < 2.5 {
			mults = []float64{1, 2, 5}
		}
		for e := math.Floor(a.lo); e <= math.Ceil(a.hi); e++ {
			for _, m := range mults {
				v := m * math.Pow(10, e)
				if p := math.Log10(v); p >= a.lo && p <= a.hi {
					a.ticks = append(a.ticks, v)
				}
			}
		}
		// Many decades: keep at most about eight labels.
		if k := (len(a.ticks) + 7) / 8; k > 1 {
			var kept []float64
			for i := 0; i < len(a.ticks); i += k {
				kept = append(kept, a.ticks[i])
			}
			a.ticks = kept
		}
		return a
	}
	a := yAxis{lo: lo, hi: hi}
	if a.hi-a.lo < 1e-12*math.Max(1, math.Abs(lo)) { // flat: a band around it
		d := math.Max(math.Abs(lo)*0.1, 1e-3)
		a.lo, a.hi = lo-d, hi+d
	}
	pad := 0.05 * (a.hi - a.lo)
	a.lo, a.hi = a.lo-pad, a.hi+pad
	step := niceStep((a.hi - a.lo) / 5)
	for v := math.Ceil(a.lo/step) * step; v <= a.hi; v += step {
		a.ticks = append(a.ticks, math.Round(v/step)*step)
	}
	return a
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// xTicks are the labelled steps of a series of n losses: about six round
// numbers between 1 and n.
func xTicks(n int) []int {
	if n < 1 {
		return nil
	}
	if n == 1 {
		return []int{1}
	}
	step := max(int(niceStep(float64(n)/6)), 1)
	ticks := []int{1}
	for s := step; s <= n; s += step {
		if s > 1 {
			ticks = append(ticks, s)
		}
	}
	return ticks
}

func tickLabel(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

var chartFace = basicfont.Face7x13

func textWidth(s string) int {
	return font.MeasureString(chartFace, s).Ceil()
}

// drawText writes s with its baseline at y, starting at x.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: chartFace, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	fill(img, image.Rect(x0, y, x1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	fill(img, image.Rect(x, y0, x+1, y1), c)
}

func frame(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	hline(img, r.Min.X, r.Max.X, r.Min.Y, c)
	hline(img, r.Min.X, r.Max.X, r.Max.Y-1, c)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, c)
	vline(img, r.Max.X-1, r.Min.Y, r.Max.Y, c)
}

// line draws from (x0, y0) to (x1, y1) with a square pen of the given
// width in pixels, clipped to img's bounds. A zero-length line is a dot.
func line(img *image.RGBA, x0, y0, x1, y1 float64, width int, c color.RGBA) {
	n := int(math.Ceil(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))))
	lo, hi := -(width-1)/2, width/2
	for i := 0; i <= n; i++ {
		t := 0.0
		if n > 0 {
			t = float64(i) / float64(n)
		}
		cx := int(math.Round(x0 + t*(x1-x0)))
		cy := int(math.Round(y0 + t*(y1-y0)))
		fill(img, image.Rect(cx+lo, cy+lo, cx+hi+1, cy+hi+1), c)
	}
}
