package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers JPEG with image.Decode
	_ "image/png"  // registers PNG with image.Decode
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	_ "golang.org/x/image/webp" // registers WebP with image.Decode

	"glimmer/engine/internal/splitmix"
)

// Item is one training example: an image file and its caption.
type Item struct{ Path, Caption string }

// Dataset is a captioned image folder, listed by Folder.
type Dataset struct {
	Dir   string
	Items []Item // sorted by file name
	// Warnings are one-line notes about the folder that do not stop
	// training: images without a caption file, caption files whose extra
	// lines were ignored. Show them to the user.
	Warnings []string
}

// ImageExts are the image file extensions Folder takes (compared
// case-insensitively).
var ImageExts = []string{".png", ".jpg", ".jpeg", ".webp"}

// MaxPixels bounds the size of one image (width × height) so that a huge
// or hostile file fails with a clear error instead of exhausting memory.
const MaxPixels = 64 << 20

// Folder lists the images directly inside dir (ImageExts, any case; sub
// folders and hidden files, whose names start with ".", are not read),
// sorted by file name, each with the caption in the text file of the same
// base name: photo.png ↔ photo.txt (kohya's convention; the .txt extension
// may be in any case).
//
// A caption file is UTF-8 (a leading byte-order mark is dropped); its first
// line, trimmed of white space, is the caption, as kohya's scripts read it.
// Further non-empty lines are ignored with a warning.
//
// An image with no caption file trains with the empty caption, as kohya's
// scripts do: it is kept and named in Warnings (so is an empty caption
// file). A folder where some images lack captions is usually a mistake, so
// callers should show the warnings before training starts.
//
// Errors, one line naming the path: dir missing or not a folder, no image
// in it, a caption file that cannot be read or is not UTF-8.
//
// Images are not opened here; a corrupt image is reported by Batches when
// it is decoded.
func Folder(dir string) (*Dataset, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("train: dataset folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("train: dataset folder %s is not a folder", dir)
	}
	entries, err := os.ReadDir(dir) // sorted by file name
	if err != nil {
		return nil, fmt.Errorf("train: dataset folder: %w", err)
	}
	captionOf := map[string]string{} // base name → caption file name
	var images []string
	subfolders := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
				isDir = st.IsDir()
			}
		}
		if isDir {
			subfolders++
			continue
		}
		ext := filepath.Ext(name)
		base := strings.TrimSuffix(name, ext)
		switch {
		case strings.EqualFold(ext, ".txt"):
			// photo.txt wins over photo.TXT when both exist.
			if prev, ok := captionOf[base]; !ok || filepath.Ext(prev) != ".txt" {
				captionOf[base] = name
			}
		case isImageExt(ext):
			images = append(images, name)
		}
	}
	if len(images) == 0 {
		hint := ""
		if subfolders > 0 {
			hint = fmt.Sprintf(" (its %d sub folders are not read: put the images and captions directly in it)", subfolders)
		}
		return nil, fmt.Errorf("train: dataset folder %s holds no images (%s)%s", dir, strings.Join(ImageExts, ", "), hint)
	}

	d := &Dataset{Dir: dir, Items: make([]Item, 0, len(images))}
	for _, name := range images {
		path := filepath.Join(dir, name)
		base := strings.TrimSuffix(name, filepath.Ext(name))
		capName, ok := captionOf[base]
		if !ok {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s: no caption file %s.txt; it trains with an empty caption", path, base))
			d.Items = append(d.Items, Item{Path: path})
			continue
		}
		capPath := filepath.Join(dir, capName)
		caption, extra, err := readCaption(capPath)
		if err != nil {
			return nil, err
		}
		if caption == "" {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s: the caption is empty", capPath))
		}
		if extra {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s: only the first line is the caption; the other lines are ignored", capPath))
		}
		d.Items = append(d.Items, Item{Path: path, Caption: caption})
	}
	return d, nil
}

func isImageExt(ext string) bool {
	for _, e := range ImageExts {
		if strings.EqualFold(ext, e) {
			return true
		}
	}
	return false
}

// readCaption reads a caption file: its first line, trimmed, and whether
// any later line holds text.
func readCaption(path string) (caption string, extra bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("train: caption: %w", err)
	}
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	if !utf8.Valid(b) {
		return "", false, fmt.Errorf("train: caption %s is not valid UTF-8 text", path)
	}
	first, rest, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(first), strings.TrimSpace(rest) != "", nil
}

// Batch is one batch of training examples.
type Batch struct {
	Images   []float32 // [B, 3, size, size], RGB, values in [-1, 1]
	Captions []string  // B captions, in the order of the images
	Paths    []string  // B image paths
	// Epoch counts passes over the dataset from 0; Index counts the
	// batches within the epoch from 0.
	Epoch, Index int
	// Err, when set, is the reason the stream ended (an image that could
	// not be decoded, named in the message); the other fields are empty
	// and it is the last batch sent.
	Err error
}

// Batches streams batches of the dataset, decoded from disk by a goroutine
// that works ahead of the reader (at most two batches wait in the
// channel), each batch's images decoded in parallel. It runs epoch after
// epoch until ctx is done, then closes the channel and exits; the reader
// must either read until the channel closes or cancel ctx, and cancelling
// never leaves the goroutine behind.
//
// Each epoch visits every item once, in an order shuffled afresh from
// (seed, epoch) with a generator owned by this package, so a seed gives the
// same batches on every machine and Go release. batchSize items make a
// batch; the last batch of an epoch holds the remainder (B =
// len(Captions) may be smaller than batchSize).
//
// Each image is decoded (PNG, JPEG, WebP), converted to RGB (alpha is
// dropped, keeping the colour under it, as PIL's convert("RGB") does),
// scaled so that its short side is size and cropped to the centred
// size×size square. Scaling averages the covered source area when
// shrinking (a box filter with fractional edge weights) and interpolates
// bilinearly when enlarging; it is done in sRGB values, as PIL and kohya's
// scripts do. Pixels become v/255·2−1 per channel.
//
// A file that fails to decode, or exceeds MaxPixels, ends the stream with a
// Batch whose Err names the file. It panics if batchSize or size is below 1
// (a programmer error).
func (d *Dataset) Batches(ctx context.Context, batchSize, size int, seed uint64) <-chan Batch {
	if batchSize < 1 || size < 1 {
		panic(fmt.Sprintf("train: Batches(batchSize %d, size %d): both must be at least 1", batchSize, size))
	}
	out := make(chan Batch, 2)
	items := d.Items
	go func() {
		defer close(out)
		send := func(b Batch) bool {
			select {
			case out <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if len(items) == 0 {
			send(Batch{Err: fmt.Errorf("train: dataset %s has no images", d.Dir)})
			return
		}
		plane := 3 * size * size
		workers := make([]scaler, decodeWorkers())
		for epoch := 0; ; epoch++ {
			order := Shuffle(len(items), seed, epoch)
			for index, start := 0, 0; start < len(order); index, start = index+1, start+batchSize {
				idx := order[start:min(start+batchSize, len(order))]
				b := Batch{
					Images:   make([]float32, len(idx)*plane), // [B, 3, size, size]
					Captions: make([]string, len(idx)),
					Paths:    make([]string, len(idx)),
					Epoch:    epoch,
					Index:    index,
				}
				for k, i := range idx {
					b.Captions[k], b.Paths[k] = items[i].Caption, items[i].Path
				}
				if err := decodeBatch(ctx, workers, b.Paths, size, b.Images); err != nil {
					if ctx.Err() == nil {
						send(Batch{Err: err, Epoch: epoch, Index: index})
					}
					return
				}
				if !send(b) {
					return
				}
			}
		}
	}()
	return out
}

// decodeWorkers is how many images Batches decodes at once, so that
// decoding large batches keeps ahead of the device's steps.
func decodeWorkers() int { return max(1, min(runtime.GOMAXPROCS(0), 8)) }

// decodeBatch decodes paths into images ([len(paths), 3, size, size]),
// spreading them over the workers' scalers. The error is that of the
// first path in batch order that failed, so the message does not depend
// on scheduling.
func decodeBatch(ctx context.Context, workers []scaler, paths []string, size int, images []float32) error {
	plane := 3 * size * size
	errs := make([]error, len(paths))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func(sc *scaler) {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= len(paths) || ctx.Err() != nil {
					return
				}
				errs[k] = sc.load(paths[k], size, images[k*plane:(k+1)*plane])
			}
		}(&workers[w])
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Shuffle is the item order of an epoch: a permutation of 0..n-1 drawn
// from (seed, epoch) by a Fisher–Yates shuffle on a splitmix64 stream.
func Shuffle(n int, seed uint64, epoch int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	r := splitmix.Source{State: seed ^ (uint64(epoch)+1)*0xd1b54a32d192ed03}
	r.Next()
	for i := n - 1; i > 0; i-- {
		hi, _ := bits.Mul64(r.Next(), uint64(i+1)) // uniform in [0, i]
		j := int(hi)
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// scaler holds the buffers reused from one image to the next.
type scaler struct {
	row []float32 // one source row of the crop, RGB interleaved, [s, 3]
	mid []float32 // after the horizontal pass, [s, size, 3]
}

// load decodes the image at path into dst ([3, size, size], values in
// [-1, 1]): centred square crop, scaled to size×size.
func (sc *scaler) load(path string, size int, dst []float32) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("train: image: %w", err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("train: image %s: %w", path, decodeErr(err))
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return fmt.Errorf("train: image %s: %dx%d pixels is outside 1 to %d megapixels", path, cfg.Width, cfg.Height, MaxPixels>>20)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("train: image %s: %w", path, decodeErr(err))
	}
	sc.scale(img, size, dst)
	return nil
}

// decodeErr makes image.Decode's unknown-format error say what is wanted.
func decodeErr(err error) error {
	if errors.Is(err, image.ErrFormat) {
		return errors.New("not a PNG, JPEG or WebP image (or a damaged one)")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the file is cut short (unexpected end of file)")
	}
	return err
}

// scale crops the centred square of img (side s = the short side) and
// resamples it to size×size into dst ([3, size, size], [-1, 1]). Cropping
// the centred square and then scaling it to size is the same as scaling
// the short side to size and cropping the centre.
func (sc *scaler) scale(img image.Image, size int, dst []float32) {
	b := img.Bounds()
	s := min(b.Dx(), b.Dy())
	x0, y0 := b.Min.X+(b.Dx()-s)/2, b.Min.Y+(b.Dy()-s)/2
	tx := taps(s, size) // the same filter both ways: the crop is square

	sc.row = grow(sc.row, 3*s)
	sc.mid = grow(sc.mid, s*size*3)
	for y := 0; y < s; y++ {
		readRow(img, x0, y0+y, s, sc.row) // [s, 3]
		mid := sc.mid[y*size*3 : (y+1)*size*3]
		for j, t := range tx {
			var r, g, bl float64
			for k, w := range t.w {
				p := sc.row[3*(t.start+k):]
				r += w * float64(p[0])
				g += w * float64(p[1])
				bl += w * float64(p[2])
			}
			mid[3*j], mid[3*j+1], mid[3*j+2] = float32(r), float32(g), float32(bl)
		}
	}
	plane := size * size
	for i, t := range tx { // output row i
		for j := 0; j < size; j++ {
			var r, g, bl float64
			for k, w := range t.w {
				p := sc.mid[((t.start+k)*size+j)*3:]
				r += w * float64(p[0])
				g += w * float64(p[1])
				bl += w * float64(p[2])
			}
			o := i*size + j
			dst[o] = float32(2*r - 1)
			dst[plane+o] = float32(2*g - 1)
			dst[2*plane+o] = float32(2*bl - 1)
		}
	}
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// tap is the filter of one output pixel: weights of the source pixels
// start, start+1, …, summing to 1.
type tap struct {
	start int
	w     []float64
}

// taps is the 1-D resampling filter from src pixels to dst pixels: a copy
// when equal, the area average when shrinking, bilinear when enlarging
// (pixel centres aligned, edges clamped).
func taps(src, dst int) []tap {
	t := make([]tap, dst)
	switch {
	case src == dst:
		for j := range t {
			t[j] = tap{j, []float64{1}}
		}
	case src > dst:
		// Output pixel j covers [j·src/dst, (j+1)·src/dst) of the source.
		for j := range t {
			a := float64(j*src) / float64(dst)
			e := float64((j+1)*src) / float64(dst)
			i0, i1 := int(math.Floor(a)), min(int(math.Ceil(e)), src)
			w := make([]float64, 0, i1-i0)
			sum := 0.0
			for i := i0; i < i1; i++ {
				c := math.Min(e, float64(i+1)) - math.Max(a, float64(i))
				w = append(w, c)
				sum += c
			}
			for k := range w {
				w[k] /= sum
			}
			t[j] = tap{i0, w}
		}
	default:
		for j := range t {
			x := (float64(j)+0.5)*float64(src)/float64(dst) - 0.5
			x = math.Max(0, math.Min(x, float64(src-1)))
			i0 := int(math.Floor(x))
			f := x - float64(i0)
			if i0+1 >= src || f == 0 {
				t[j] = tap{i0, []float64{1}}
			} else {
				t[j] = tap{i0, []float64{1 - f, f}}
			}
		}
	}
	return t
}

// readRow writes the RGB values, in [0, 1], of n pixels of row y from
// column x0 into row ([n, 3]).
func readRow(img image.Image, x0, y, n int, row []float32) {
	const by255 = 1.0 / 255
	switch m := img.(type) {
	case *image.NRGBA:
		p := m.Pix[m.PixOffset(x0, y):]
		for i := 0; i < n; i++ {
			row[3*i] = float32(float64(p[4*i]) * by255)
			row[3*i+1] = float32(float64(p[4*i+1]) * by255)
			row[3*i+2] = float32(float64(p[4*i+2]) * by255)
		}
	case *image.RGBA:
		p := m.Pix[m.PixOffset(x0, y):]
		for i := 0; i < n; i++ {
			r, g, b, a := p[4*i], p[4*i+1], p[4*i+2], p[4*i+3]
			if a == 255 {
				row[3*i] = float32(float64(r) * by255)
				row[3*i+1] = float32(float64(g) * by255)
				row[3*i+2] = float32(float64(b) * by255)
			} else { // premultiplied: undo it (transparent → black)
				d := math.Max(float64(a), 1)
				row[3*i] = float32(float64(r) / d)
				row[3*i+1] = float32(float64(g) / d)
				row[3*i+2] = float32(float64(b) / d)
			}
		}
	case *image.Gray:
		p := m.Pix[m.PixOffset(x0, y):]
		for i := 0; i < n; i++ {
			v := float32(float64(p[i]) * by255)
			row[3*i], row[3*i+1], row[3*i+2] = v, v, v
		}
	case *image.YCbCr:
		for i := 0; i < n; i++ {
			yi, ci := m.YOffset(x0+i, y), m.COffset(x0+i, y)
			r, g, b := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			row[3*i] = float32(float64(r) * by255)
			row[3*i+1] = float32(float64(g) * by255)
			row[3*i+2] = float32(float64(b) * by255)
		}
	default:
		const by65535 = 1.0 / 65535
		for i := 0; i < n; i++ {
			c := color.NRGBA64Model.Convert(img.At(x0+i, y)).(color.NRGBA64)
			row[3*i] = float32(float64(c.R) * by65535)
			row[3*i+1] = float32(float64(c.G) * by65535)
			row[3*i+2] = float32(float64(c.B) * by65535)
		}
	}
}
