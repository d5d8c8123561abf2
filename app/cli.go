// Package app is what Glimmer does for a user, with no UI: the command-line
// commands, generation jobs, saving and reading PNG metadata, history.
// It never imports fyne, so the CLI builds and runs headless.
package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
)

// Exit codes, a stable contract (DESIGN.md).
const (
	ExitOK    = 0
	ExitError = 1 // any failure other than usage
	ExitUsage = 2
)

// command is one `glimmer NAME` sub-command.
type command struct {
	summary string
	run     func(env *Env, args []string) error
}

// Env is what a command writes to.
type Env struct {
	Stdout, Stderr io.Writer
}

// commands is filled by each cmd_*.go file's init.
var commands = map[string]command{}

func register(name, summary string, run func(env *Env, args []string) error) {
	if _, dup := commands[name]; dup {
		panic("app: command registered twice: " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

// UsageError marks a bad command line: exit code 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// OpenWindow is set by the UI package when it is linked in; with no
// arguments Main calls it.
var OpenWindow func() error

// Main runs the command line and returns the process exit code. Errors are
// printed as one line on stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	env := &Env{Stdout: stdout, Stderr: stderr}
	if len(args) == 0 {
		if OpenWindow == nil {
			usage(stderr)
			return ExitUsage
		}
		return finish(env, OpenWindow())
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		usage(stdout)
		return ExitOK
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "glimmer: unknown command %q\n", name)
		usage(stderr)
		return ExitUsage
	}
	// GLIMMER_CPUPROFILE=FILE writes a Go CPU profile of the command (for
	// finding host-side costs, e.g. of a training step).
	if path := os.Getenv("GLIMMER_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return finish(env, fmt.Errorf("GLIMMER_CPUPROFILE: %w", err))
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return finish(env, fmt.Errorf("GLIMMER_CPUPROFILE: %w", err))
		}
		defer pprof.StopCPUProfile()
	}
	return finish(env, cmd.run(env, args[1:]))
}

func finish(env *Env, err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "glimmer: %s\n", oneLine(err.Error()))
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitError
}

// oneLine makes text from a file (a tensor's name, a path) safe to print
// on one terminal line: line breaks and tabs become spaces, and other
// control characters, which a hostile file could use to move the cursor
// or recolour the terminal, are written as \xNN.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var sb strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			sb.WriteByte(' ')
		case isControl(r):
			fmt.Fprintf(&sb, "\\x%02x", r)
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: glimmer [command] [flags]")
	fmt.Fprintln(w, "With no command, glimmer opens its window.")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'glimmer COMMAND -h' for a command's flags.")
}

// newFlags makes a FlagSet that reports errors instead of exiting, and
// whose -h prints the command's flags.
func newFlags(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("glimmer "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parseFlags parses args, turning flag errors into usage errors. Flags may
// follow positional arguments (`tokenize --model X TEXT --all`).
// A bad flag gives one usage line, not the flag list the flag package
// prints with its error: -h prints the list.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				fs.Usage()
				return nil, err
			}
			cmd := strings.TrimPrefix(fs.Name(), "glimmer ")
			return nil, usagef("%s: %v (glimmer %s -h lists its flags)", cmd, err, cmd)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
