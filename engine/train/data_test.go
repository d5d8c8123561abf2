package train

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"glimmer/engine/dataset"
)

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func solid(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// collect reads n batches (failing on an error batch) and cancels.
func collect(t *testing.T, d *Dataset, n, batchSize, size int, seed uint64) []Batch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := d.Batches(ctx, batchSize, size, seed)
	var out []Batch
	for b := range ch {
		if b.Err != nil {
			t.Fatalf("batch %d: %v", len(out), b.Err)
		}
		out = append(out, b)
		if len(out) == n {
			break
		}
	}
	if len(out) != n {
		t.Fatalf("stream ended after %d batches, want %d", len(out), n)
	}
	return out
}

// scaleOne runs the scaler on one in-memory image.
func scaleOne(img image.Image, size int) []float32 {
	dst := make([]float32, 3*size*size) // [3, size, size]
	for i := range dst {
		dst[i] = float32(math.NaN()) // unwritten elements fail the checks
	}
	var sc scaler
	sc.scale(img, size, dst)
	return dst
}

func TestFolderOfShapes(t *testing.T) {
	dir := t.TempDir()
	const n = 10
	if err := dataset.WriteFolder(dir, n, 64, 7, dataset.Train); err != nil {
		t.Fatal(err)
	}
	d, err := Folder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Items) != n || len(d.Warnings) != 0 {
		t.Fatalf("%d items, warnings %q; want %d items, none", len(d.Items), d.Warnings, n)
	}
	for i, it := range d.Items {
		_, caption, _ := dataset.Sample(dataset.ItemSeed(7, i), 64)
		if it.Path != filepath.Join(dir, fmt.Sprintf("%05d.png", i)) || it.Caption != caption {
			t.Errorf("item %d = %+v, want %05d.png with caption %q", i, it, i, caption)
		}
	}
	if !slices.IsSortedFunc(d.Items, func(a, b Item) int { return strings.Compare(a.Path, b.Path) }) {
		t.Errorf("items are not sorted by name")
	}

	// Two epochs of batches of 4 (4, 4, 2 per epoch), 64 → 32 pixels.
	const size = 32
	batches := collect(t, d, 6, 4, size, 1)
	for e := 0; e < 2; e++ {
		seen := map[string]int{}
		for k, b := range batches[3*e : 3*e+3] {
			wantB := []int{4, 4, 2}[k]
			if b.Epoch != e || b.Index != k || len(b.Captions) != wantB || len(b.Paths) != wantB || len(b.Images) != wantB*3*size*size {
				t.Fatalf("epoch %d batch %d: epoch %d index %d, %d captions, %d paths, %d floats", e, k, b.Epoch, b.Index, len(b.Captions), len(b.Paths), len(b.Images))
			}
			for i, p := range b.Paths {
				seen[p]++
				// The caption travels with its image.
				want, _ := os.ReadFile(strings.TrimSuffix(p, ".png") + ".txt")
				if b.Captions[i] != string(want) {
					t.Errorf("%s: caption %q, want %q", p, b.Captions[i], want)
				}
				// Pixels against a float64 reference: halving averages each 2x2
				// block. Tolerance 1e-6: the value goes through float32 twice
				// (after each pass), relative error below 2^-23 each time.
				img := decodePNG(t, p)
				got := b.Images[i*3*size*size : (i+1)*3*size*size] // [3, size, size]
				for c := 0; c < 3; c++ {
					for y := 0; y < size; y++ {
						for x := 0; x < size; x++ {
							sum := 0.0
							for dy := 0; dy < 2; dy++ {
								for dx := 0; dx < 2; dx++ {
									px := color.NRGBAModel.Convert(img.At(2*x+dx, 2*y+dy)).(color.NRGBA)
									sum += float64([]uint8{px.R, px.G, px.B}[c])
								}
							}
							want := sum/4/255*2 - 1
							if g := float64(got[(c*size+y)*size+x]); !(math.Abs(g-want) <= 1e-6) {
								t.Fatalf("%s: channel %d (%d,%d) = %v, want %v", p, c, x, y, g, want)
							}
						}
					}
				}
			}
		}
		if len(seen) != n {
			t.Errorf("epoch %d saw %d distinct items, want %d", e, len(seen), n)
		}
		for p, k := range seen {
			if k != 1 {
				t.Errorf("epoch %d saw %s %d times", e, p, k)
			}
		}
	}
	// A fresh shuffle each epoch.
	if slices.Equal(batches[0].Paths, batches[3].Paths) && slices.Equal(batches[1].Paths, batches[4].Paths) {
		t.Errorf("epochs 0 and 1 have the same order")
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBatchesDeterministic(t *testing.T) {
	dir := t.TempDir()
	if err := dataset.WriteFolder(dir, 9, 64, 3, dataset.Train); err != nil {
		t.Fatal(err)
	}
	d, err := Folder(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := collect(t, d, 8, 2, 16, 42)
	b := collect(t, d, 8, 2, 16, 42)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two streams with seed 42 differ")
	}
	c := collect(t, d, 8, 2, 16, 43)
	same := true
	for i := range a {
		same = same && slices.Equal(a[i].Paths, c[i].Paths)
	}
	if same {
		t.Errorf("seeds 42 and 43 give the same order")
	}
	// Shuffle is a permutation, pinned so that it never changes silently.
	got := Shuffle(8, 42, 0)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if !slices.Equal(sorted, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("Shuffle(8, 42, 0) = %v is not a permutation", got)
	}
	if again := Shuffle(8, 42, 0); !slices.Equal(got, again) {
		t.Errorf("Shuffle is not deterministic: %v, %v", got, again)
	}
}

func TestPixelsExact(t *testing.T) {
	// Pure red at an awkward size, shrunk: exactly (1, -1, -1) everywhere,
	// because the filter weights sum to 1 and 255/255 is 1.
	got := scaleOne(solid(37, 23, color.NRGBA{255, 0, 0, 255}), 16)
	plane := 16 * 16
	for i, v := range got {
		want := float32(-1)
		if i < plane {
			want = 1
		}
		if v != want {
			t.Fatalf("red: element %d = %v, want %v", i, v, want)
		}
	}
	// Enlarged too.
	got = scaleOne(solid(5, 3, color.NRGBA{255, 0, 0, 255}), 7)
	for i, v := range got {
		if want := map[bool]float32{true: 1, false: -1}[i < 49]; v != want {
			t.Fatalf("red enlarged: element %d = %v, want %v", i, v, want)
		}
	}

	// A one-pixel black/white checkerboard halved: every output pixel
	// averages two black and two white pixels, 127.5 → exactly 0.
	cb := image.NewGray(image.Rect(0, 0, 32, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			if (x+y)%2 == 0 {
				cb.SetGray(x, y, color.Gray{255})
			}
		}
	}
	for i, v := range scaleOne(cb, 16) {
		if v != 0 {
			t.Fatalf("checkerboard: element %d = %v, want 0", i, v)
		}
	}

	// Bilinear enlargement of a 2x2 image whose columns are 0 and 255:
	// output centres fall at source x = -0.25 (clamped to 0), 0.25, 0.75,
	// 1.25 (clamped to 1), so the columns read -1, -0.5, 0.5, 1 exactly
	// (each is a sum of two dyadic fractions).
	g := image.NewGray(image.Rect(0, 0, 2, 2))
	g.SetGray(1, 0, color.Gray{255})
	g.SetGray(1, 1, color.Gray{255})
	got = scaleOne(g, 4)
	for c := 0; c < 3; c++ {
		for y := 0; y < 4; y++ {
			for x, want := range []float32{-1, -0.5, 0.5, 1} {
				if v := got[(c*4+y)*4+x]; v != want {
					t.Fatalf("ramp: channel %d (%d,%d) = %v, want %v", c, x, y, v, want)
				}
			}
		}
	}

	// Non-square: the centred square is kept. A 60x20 image, red outer
	// thirds, green middle third: the crop is all green.
	wide := solid(60, 20, color.NRGBA{255, 0, 0, 255})
	for y := 0; y < 20; y++ {
		for x := 20; x < 40; x++ {
			wide.SetNRGBA(x, y, color.NRGBA{0, 255, 0, 255})
		}
	}
	got = scaleOne(wide, 10)
	for i, v := range got {
		want := float32(-1)
		if i/100 == 1 {
			want = 1
		}
		if v != want {
			t.Fatalf("wide: element %d = %v, want %v", i, v, want)
		}
	}
	// The same rotated (a tall image).
	tall := image.NewNRGBA(image.Rect(0, 0, 20, 60))
	for y := 0; y < 60; y++ {
		for x := 0; x < 20; x++ {
			tall.SetNRGBA(x, y, wide.NRGBAAt(y, x))
		}
	}
	if got2 := scaleOne(tall, 10); !slices.Equal(got, got2) {
		t.Errorf("tall image crops differently from the wide one")
	}
}

func TestTapsSumToOne(t *testing.T) {
	for _, src := range []int{1, 2, 3, 7, 16, 33, 100, 513} {
		for _, dst := range []int{1, 2, 5, 16, 32, 64, 77} {
			for j, tp := range taps(src, dst) {
				sum := 0.0
				for _, w := range tp.w {
					if w < 0 {
						t.Fatalf("taps(%d, %d)[%d] has a negative weight %v", src, dst, j, w)
					}
					sum += w
				}
				// 1e-12: float64 rounding of a few dozen additions.
				if math.Abs(sum-1) > 1e-12 || tp.start < 0 || tp.start+len(tp.w) > src {
					t.Fatalf("taps(%d, %d)[%d] = %+v (sum %v)", src, dst, j, tp, sum)
				}
			}
		}
	}
}

func TestOddFiles(t *testing.T) {
	dir := t.TempDir()
	// A JPEG with an upper-case extension and caption extension.
	f, err := os.Create(filepath.Join(dir, "a_photo.JPG"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, solid(24, 24, color.NRGBA{30, 60, 220, 255}), &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	writeText(t, filepath.Join(dir, "a_photo.TXT"), "\uFEFF  a blue photo \r\nsecond line\n")
	// A non-square PNG, a PNG without caption, a hidden file and a sub
	// folder (both ignored), a text file with no image.
	writePNG(t, filepath.Join(dir, "b_wide.png"), solid(30, 10, color.NRGBA{255, 255, 255, 255}))
	writeText(t, filepath.Join(dir, "b_wide.txt"), "wide\n")
	writePNG(t, filepath.Join(dir, "c_nocap.png"), solid(8, 8, color.NRGBA{0, 0, 0, 255}))
	writePNG(t, filepath.Join(dir, ".hidden.png"), solid(8, 8, color.NRGBA{0, 0, 0, 255}))
	if err := os.Mkdir(filepath.Join(dir, "sub.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeText(t, filepath.Join(dir, "notes.txt"), "not a caption")

	d, err := Folder(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{
		{filepath.Join(dir, "a_photo.JPG"), "a blue photo"},
		{filepath.Join(dir, "b_wide.png"), "wide"},
		{filepath.Join(dir, "c_nocap.png"), ""},
	}
	if !reflect.DeepEqual(d.Items, want) {
		t.Fatalf("items %+v, want %+v", d.Items, want)
	}
	if len(d.Warnings) != 2 || !strings.Contains(d.Warnings[0], "a_photo.TXT") || !strings.Contains(d.Warnings[1], "c_nocap.png") {
		t.Errorf("warnings %q: want the ignored second line and the missing caption", d.Warnings)
	}

	b := collect(t, d, 1, 3, 8, 0)[0]
	for i, p := range b.Paths {
		img := b.Images[i*192 : (i+1)*192] // [3, 8, 8]
		var rgb [3]float64
		switch filepath.Base(p) {
		case "a_photo.JPG":
			rgb = [3]float64{30, 60, 220}
		case "b_wide.png":
			rgb = [3]float64{255, 255, 255}
		case "c_nocap.png":
			rgb = [3]float64{0, 0, 0}
		}
		for c := 0; c < 3; c++ {
			for k := 0; k < 64; k++ {
				// JPEG at quality 100 of a flat colour is within a few levels
				// (chroma rounding); the PNGs are exact.
				tol := 0.0
				if strings.HasSuffix(p, ".JPG") {
					tol = 4.0 / 255 * 2
				}
				if v, w := float64(img[c*64+k]), rgb[c]/255*2-1; !(math.Abs(v-w) <= tol) {
					t.Fatalf("%s: channel %d pixel %d = %v, want %v ± %v", p, c, k, v, w, tol)
				}
			}
		}
	}

	// A corrupt PNG ends the stream with an error naming it.
	bad := filepath.Join(dir, "d_corrupt.png")
	writeText(t, bad, "\x89PNG\r\n\x1a\nthis is not the rest of a PNG")
	d, err = Folder(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last Batch
	n := 0
	for b := range d.Batches(ctx, 1, 8, 0) {
		last = b
		n++
		if n > 4 {
			t.Fatalf("stream went on past the corrupt file")
		}
	}
	if last.Err == nil || !strings.Contains(last.Err.Error(), bad) {
		t.Fatalf("last batch error %v, want one naming %s", last.Err, bad)
	}
	t.Logf("corrupt file: %v", last.Err)
	// A file that is no image at all.
	d2 := &Dataset{Dir: dir, Items: []Item{{Path: filepath.Join(dir, "notes.txt")}}}
	for b := range d2.Batches(ctx, 1, 8, 0) {
		if b.Err == nil || !strings.Contains(b.Err.Error(), "notes.txt") || !strings.Contains(b.Err.Error(), "not a PNG") {
			t.Errorf("err %v", b.Err)
		}
	}
}

func TestFolderErrors(t *testing.T) {
	dir := t.TempDir()
	check := func(name, path, want string) {
		t.Helper()
		_, err := Folder(path)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line containing %q", name, err, want)
		}
	}
	check("missing", filepath.Join(dir, "nope"), filepath.Join(dir, "nope"))
	writeText(t, filepath.Join(dir, "file"), "x")
	check("a file", filepath.Join(dir, "file"), "is not a folder")
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(filepath.Join(empty, "10_shapes"), 0o755)
	writeText(t, filepath.Join(empty, "only.txt"), "caption")
	check("no images", empty, "holds no images")
	check("no images, sub folder", empty, "sub folders are not read")

	badCap := filepath.Join(dir, "badcap")
	os.Mkdir(badCap, 0o755)
	writePNG(t, filepath.Join(badCap, "x.png"), solid(4, 4, color.NRGBA{0, 0, 0, 255}))
	writeText(t, filepath.Join(badCap, "x.txt"), "caf\xe9")
	check("latin-1 caption", badCap, filepath.Join(badCap, "x.txt")+" is not valid UTF-8")
	// An unreadable caption (a folder where the caption file should be).
	os.Remove(filepath.Join(badCap, "x.txt"))
	os.Mkdir(filepath.Join(badCap, "x.txt"), 0o755)
	d, err := Folder(badCap)
	if err != nil || len(d.Warnings) != 1 {
		// A folder named x.txt is not a caption file: the image has none.
		t.Errorf("caption folder: %v, %v", d, err)
	}
}

func TestBatchesCancel(t *testing.T) {
	dir := t.TempDir()
	if err := dataset.WriteFolder(dir, 6, 64, 1, dataset.Train); err != nil {
		t.Fatal(err)
	}
	d, err := Folder(dir)
	if err != nil {
		t.Fatal(err)
	}
	waitClosed := func(ch <-chan Batch) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("the channel did not close after cancel: the goroutine is still running")
			}
		}
	}
	// Cancel after one batch; the producer is blocked on a full channel.
	ctx, cancel := context.WithCancel(context.Background())
	ch := d.Batches(ctx, 2, 16, 0)
	if b := <-ch; b.Err != nil || len(b.Paths) != 2 {
		t.Fatalf("first batch %+v", b)
	}
	time.Sleep(50 * time.Millisecond) // let it fill the buffer and block
	cancel()
	waitClosed(ch)

	// Cancel before reading anything; it may have sent a few batches, but
	// it must stop.
	ctx, cancel = context.WithCancel(context.Background())
	ch = d.Batches(ctx, 1, 16, 0)
	cancel()
	waitClosed(ch)

	// An empty dataset reports it and closes.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var errs []error
	for b := range (&Dataset{Dir: dir}).Batches(ctx, 1, 16, 0) {
		errs = append(errs, b.Err)
	}
	if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "no images") {
		t.Errorf("empty dataset: %v", errs)
	}
}

// BenchmarkBatches measures decoding and scaling: 1024x768 JPEGs (photo-like
// gradients) to 512x512, batches of 4.
func BenchmarkBatches(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 8; i++ {
		img := image.NewNRGBA(image.Rect(0, 0, 1024, 768))
		for y := 0; y < 768; y++ {
			for x := 0; x < 1024; x++ {
				img.SetNRGBA(x, y, color.NRGBA{uint8(x + i), uint8(y), uint8(x ^ y), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.jpg", i)))
		if err != nil {
			b.Fatal(err)
		}
		jpeg.Encode(f, img, &jpeg.Options{Quality: 90})
		f.Close()
	}
	d, err := Folder(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := d.Batches(ctx, 4, 512, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if bt := <-ch; bt.Err != nil {
			b.Fatal(bt.Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/4, "ms/image")
}
