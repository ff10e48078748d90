// Package cli is the chartee command line: the daemon (`chartee run`), the
// built-in demo (`chartee` with no config), config validation (`chartee
// check`), `chartee version`, and the control client (`chartee ctl`). It
// takes its arguments, output streams, environment and signals as
// parameters so that tests can run every command in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed (bad config, API error, ...)
	exitUsage = 2 // the command line itself is wrong
)

// Version is the chartee version, set at build time with
// -ldflags "-X chartee/cmd/chartee/internal/cli.Version=v1.2.3". Empty
// means: ask the Go build information.
var Version = ""

// Main runs the command line args (without the program name), writing to
// stdout and stderr, and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	a := &app{
		stdin:      os.Stdin,
		stdout:     stdout,
		stderr:     stderr,
		ctx:        context.Background(),
		getenv:     os.Getenv,
		notify:     signal.Notify,
		stopNotify: signal.Stop,
	}
	return a.main(args)
}

// app carries what a command needs from its surroundings. Tests replace the
// signal plumbing with their own channel and the environment with a map.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// ctx ends long-running client commands (ctl tail -f, ctl events) and
	// the daemon; tests cancel it.
	ctx    context.Context
	getenv func(string) string
	// notify and stopNotify are signal.Notify and signal.Stop.
	notify     func(c chan<- os.Signal, sig ...os.Signal)
	stopNotify func(c chan<- os.Signal)
	// ready, when set, is called once `run` serves everything, with what
	// it printed as readiness information (tests use it instead of
	// scraping stderr).
	ready func(readyInfo)
	// systemSocket, when set, replaces defaultSocket (tests point it into
	// a temporary directory, so a packaged daemon on the machine running
	// them changes nothing).
	systemSocket string
	// self, when set, replaces selfCommand (tests).
	self func() (cmd, note string)
}

const usageText = `chartee: one character device (serial console, QEMU chardev, pty, program)
fanned out to many backends (telnet, TCP, files, ptys, ring buffers), any of
them hot-swappable.

Usage:
  chartee                        run the built-in demo (a simulated console)
  chartee run FILE               run the daemon with a config file (also: -c FILE)
  chartee check FILE             validate a config file without running it
  chartee ctl [flags] COMMAND    control a running daemon
  chartee types [TYPE]           the backend types, or one type's keys
  chartee console --nats URL SUBJECT
                                 attach to a console published on NATS
  chartee passwd [--bcrypt]      read a password, print its hash for access.users
  chartee completion bash|zsh|fish
                                 print a shell completion script
  chartee version                print the version
  chartee help [COMMAND]         this help, or a command's (same as COMMAND --help)

Run flags:
  -c, --config FILE   config file (without it: the built-in demo)
  --port N            the demo's telnet port on 127.0.0.1 (default 7000;
                      0 picks a free one; a busy 7000 falls back to a free one)

Install: go install ./cmd/chartee (into $(go env GOPATH)/bin), or make build
(bin/chartee). Man page: docs/chartee.1 (man ./docs/chartee.1).
`

func (a *app) usage(w io.Writer) { fmt.Fprint(w, usageText) }

func (a *app) main(args []string) int {
	if len(args) == 0 {
		return a.run(nil)
	}
	cmd, rest := args[0], args[1:]
	if _, ok := commands[cmd]; ok && helpRequested(rest) {
		return a.commandHelp(cmd)
	}
	switch cmd {
	case "version", "--version", "-version", "-v":
		fmt.Fprintf(a.stdout, "chartee %s\n", version())
		return exitOK
	case "help", "-h", "-help", "--help":
		return a.help(rest)
	}
	if run, ok := commands[cmd]; ok {
		return run(a, rest)
	}
	if strings.HasPrefix(cmd, "-") {
		// `chartee -c FILE` is `chartee run -c FILE`.
		return a.run(args)
	}
	fmt.Fprintf(a.stderr, "chartee: unknown command %q\n\n", cmd)
	a.usage(a.stderr)
	return exitUsage
}

// version is Version, or what the Go build information knows: the module
// version of an installed release, or the VCS revision of a source build.
func version() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev + dirty
}

// errUsage marks a command line error: exit code 2, and the usage is worth
// showing.
var errUsage = errors.New("usage")

// usageError formats a command line error.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// parseInterspersed parses flags anywhere among the positional arguments
// (`ctl swap TEE NAME SPEC --mode overlap`), which package flag alone does
// not: it stops at the first positional one. "--" ends the flags; what
// follows is positional even when it starts with "-".
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse swallowed a "--" just before rest: everything left
		// is positional.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting, and
// prints its usage (for -h) to w.
func newFlagSet(name string, w io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, usage)
		if usage != "" && !strings.HasSuffix(usage, "\n\n") {
			fmt.Fprintln(out)
		}
		fmt.Fprintln(out, "Flags:")
		printFlags(out, fs)
	}
	return fs
}

// flagExit turns a flag parsing error into an exit code: -h is a success,
// anything else a usage error (package flag already printed it).
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}
