package ui

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fyneapp "fyne.io/fyne/v2/app"

	"glimmer/app"
	"glimmer/engine/fixtures"
	"glimmer/settings"
)

// The real-window test: the test binary runs itself again as a child
// with a real Fyne window (GLFW on X11, drawn with OpenGL) on an Xvfb
// display, generates with the sd1-tiny fixture on the default backend
// (OpenGL compute through EGL where there is one, as for users), checks
// that the result is shown and quits. Fyne's driver must own the main thread, which
// only TestMain's goroutine has, hence the child process.

const childEnv = "GLIMMER_UI_REAL_WINDOW"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(realWindowChild(dir))
	}
	os.Exit(m.Run())
}

func TestRealWindowUnderXvfb(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Xvfb and a real window")
	}
	model := fixtures.Path(t, "fixtures", "sd1-tiny", "sd1-tiny.safetensors")
	tok := fixtures.Path(t, "refdata", "bpe_simple_vocab_16e6.txt.gz")
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("Xvfb is missing (make test installs the xvfb package)")
		}
		t.Skip("Xvfb not installed")
	}
	display := startXvfb(t, xvfb)

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, "DISPLAY="+display, "WAYLAND_DISPLAY=",
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"GLIMMER_TEST_MODEL="+model, "GLIMMER_TEST_TOKENIZER="+tok)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("child (start, load, generate, quit): %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("real window: %v\n%s", err, out)
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.txt"))
	if err != nil {
		t.Fatalf("no report: %v\n%s", err, out)
	}
	t.Logf("child: %s", report)
	saved, _, _ := strings.Cut(string(report), "\n")
	p, err := app.ReadParams(saved)
	if err != nil || p.Prompt != "a lighthouse at dusk" || p.Seed != 77 {
		t.Errorf("saved image %s: %+v, %v", saved, p, err)
	}
}

// startXvfb starts Xvfb on a free display and returns its name.
func startXvfb(t *testing.T, xvfb string) string {
	t.Helper()
	for n := 90 + os.Getpid()%50; n < 200; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		display := fmt.Sprintf(":%d", n)
		cmd := exec.Command(xvfb, display, "-screen", "0", "1280x860x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		for range 100 {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
				return display
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("Xvfb %s did not start", display)
	}
	t.Fatal("no free X display")
	return ""
}

// realWindowChild is the child: it opens the real window, generates one
// image, checks that the window shows it, writes the saved path to
// report.txt and quits. Its exit status is the result.
func realWindowChild(dir string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	go func() {
		time.Sleep(4 * time.Minute)
		fmt.Fprintln(os.Stderr, "child: timed out")
		os.Exit(3)
	}()
	a := fyneapp.NewWithID("io.glimmer.test")
	s := settings.Defaults()
	s.UseModel(os.Getenv("GLIMMER_TEST_MODEL"))
	s.Tokenizer = os.Getenv("GLIMMER_TEST_TOKENIZER")
	s.OutputDir = filepath.Join(dir, "out")
	s.Width, s.Height, s.Steps = 64, 64, 3
	s.Save(a.Preferences())
	w := New(a, Options{})
	w.form.prompt.SetText("a lighthouse at dusk")
	w.form.lock.SetChecked(true)
	w.form.seed.SetText("77")

	status := 1
	var problem, loaded string
	inner := w.bridge.onEvent
	w.bridge.onEvent = func(e app.Event) {
		inner(e)
		switch e.Kind {
		case app.EventLoaded:
			loaded = e.Message
		case app.EventImage:
			if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(e.Path+"\n"+loaded), 0o644); err != nil {
				problem = err.Error()
			}
		case app.EventFailed, app.EventCancelled:
			problem = fmt.Sprintf("job %v: %s", e.Kind, e.Message)
			a.Quit()
		case app.EventFinished:
			g := w.gallery
			switch {
			case len(g.items) != 1 || w.view.shown != g.items[0].img:
				problem = fmt.Sprintf("%d images in the gallery; the large view shows %v", len(g.items), w.view.shown)
			case !strings.HasPrefix(w.progress.text, "done: 1 image in "):
				problem = "progress says " + w.progress.text
			case problem == "":
				status = 0
			}
			// Let a few frames with the result be drawn, then quit.
			go func() {
				time.Sleep(time.Second)
				w.bridge.run(a.Quit)
			}()
		}
	}
	a.Lifecycle().SetOnStarted(w.generate)
	w.win.ShowAndRun()
	w.Close()
	if problem != "" {
		return fail("child: %s", problem)
	}
	return status
}
