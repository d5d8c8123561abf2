//go:build linux

package app

import (
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"glimmer/engine/fixtures"
	"glimmer/engine/model/modeltest"
	"glimmer/engine/safetensors"
)

// TestInfoFullSizeSD15 is the done-when check end to end: `glimmer info`
// on a full-size SD 1.5 single file (all 1,130 tensors, real LDM names
// and shapes, F32: 4.27 GB) answers in under a second and grows the
// process by under 200 MB. The file is sparse (header written, data a
// hole), so it costs no disk and the test always runs.
func TestInfoFullSizeSD15(t *testing.T) {
	rows, err := modeltest.ReadTSV(fixtures.Path(t, "refdata", "sd15_tensor_names.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var layout []modeltest.Stored
	for _, r := range rows {
		layout = append(layout, modeltest.Stored{Key: r.LDMKey, Shape: r.LDMShape})
	}
	path := filepath.Join(t.TempDir(), "v1-5-pruned.safetensors")
	size, err := modeltest.WriteSparse(path, layout, safetensors.F32)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == nil && st.Blocks*512 > 64<<20 {
		t.Skipf("the temp file system does not keep files sparse (%d MB on disk)", st.Blocks*512>>20)
	}
	runtime.GC()
	rss0 := modeltest.VmRSS(t)
	start := time.Now()
	code, out, stderr := glimmerInfo(t, "--model", path)
	elapsed := time.Since(start)
	rss1 := modeltest.VmRSS(t)
	t.Logf("glimmer info on a %.2f GB SD 1.5 file: %v, RSS +%.1f MB", float64(size)/1e9, elapsed, float64(rss1-rss0)/(1<<20))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if elapsed > time.Second {
		t.Errorf("took %v, want < 1s", elapsed)
	}
	if rss1-rss0 > 200<<20 {
		t.Errorf("RSS grew %d MB, want < 200 MB", (rss1-rss0)>>20)
	}
	for _, want := range []string{
		"parameters    1,066,235,307 (4.26 GB of weights)",
		"unet               686     859,520,964  F32",
		"vae                248      83,653,863  F32",
		"text_encoder       196     123,060,480  F32",
		"levels 320 640 1280 1280",
		"CLIP width 768, 12 layers, 12 heads of 64, MLP 3072, quick_gelu",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
}
