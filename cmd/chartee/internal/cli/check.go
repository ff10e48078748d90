package cli

import (
	"errors"
	"fmt"
	"io"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
)

const checkUsage = `Usage: chartee check FILE (or -c FILE)

Validates FILE the way "chartee run" would load it — every key, type, name
and combination — and prints every problem with its file:line:col, and
every warning. It opens no device and binds no socket. Exit status 0 means
the file is valid.
`

func (a *app) check(args []string) int {
	fs := newFlagSet("chartee check", a.stderr, checkUsage)
	var path string
	fs.StringVar(&path, "c", "", "config `FILE` to validate")
	fs.StringVar(&path, "config", "", "same as -c (`FILE`)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	// `chartee check FILE` is accepted too: there is nothing else a
	// positional argument could mean.
	if path == "" && len(pos) > 0 {
		path, pos = pos[0], pos[1:]
	}
	if path == "" {
		fmt.Fprint(a.stderr, "chartee check: no config file given: chartee check FILE (or -c FILE); chartee help check says more\n")
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(a.stderr, "chartee check: one config file at a time: unexpected %q (chartee help check)\n", pos[0])
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(a.stderr, err)
		return exitError
	}
	printWarnings(a.stderr, cfg.Warnings)
	host := hostWarnings(cfg)
	for _, w := range host {
		fmt.Fprintf(a.stderr, "warning: %s\n", w)
	}
	backends := 0
	for _, t := range cfg.Tees {
		backends += len(t.Backends)
	}
	warned := ""
	if n := len(cfg.Warnings) + len(host); n > 0 {
		warned = "; " + plural(n, "warning") + " above"
	}
	fmt.Fprintf(a.stdout, "%s: ok (%s, %s%s)\n", path, plural(len(cfg.Tees), "tee"), plural(backends, "backend"), warned)
	return exitOK
}

// hostWarnings checks what the config needs on this host now: device
// paths that do not exist, capture and socket directories that were never
// made. They are warnings, not errors: a device may be plugged in later
// and systemd makes LogsDirectory= before the start.
func hostWarnings(cfg *config.Config) []string {
	var out []string
	check := func(d *config.Device, where string) {
		for _, err := range chardev.CheckHost(d.Spec) {
			out = append(out, fmt.Sprintf("%s: %s (%s): %v", d.Pos, where, d.Type, err))
		}
	}
	for _, t := range cfg.Tees {
		check(&t.Frontend.Device, "tee "+t.Name+" frontend")
		for i := range t.Frontend.Failover {
			check(&t.Frontend.Failover[i], fmt.Sprintf("tee %s failover #%d", t.Name, i+1))
		}
		for _, b := range t.Backends {
			check(&b.Device, "tee "+t.Name+" backend "+b.Name)
		}
	}
	return out
}

// printConfigError prints every problem of a config error, one per line
// (each with its file:line:col), then how many there were.
func printConfigError(w io.Writer, err error) {
	var list config.ErrorList
	if !errors.As(err, &list) {
		fmt.Fprintf(w, "chartee: %v\n", err)
		return
	}
	for _, e := range list {
		fmt.Fprintln(w, e.Error())
	}
	fmt.Fprintf(w, "chartee: the config has %s\n", plural(len(list), "error"))
}

// printWarnings prints non-fatal config findings.
func printWarnings(w io.Writer, warnings config.ErrorList) {
	for _, e := range warnings {
		fmt.Fprintf(w, "warning: %s\n", e.Error())
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
