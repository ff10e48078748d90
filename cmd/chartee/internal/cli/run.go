package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"chartee/cmd/chartee/internal/api"
	"chartee/cmd/chartee/internal/config"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/cmd/chartee/internal/handover"
	"chartee/metrics"
	"chartee/tee"
	"chartee/watch"
)

const runUsage = `Usage: chartee run [FILE | -c FILE] [--port N]

Runs the daemon with the config FILE, or the built-in demo without one.
Signals: SIGHUP reloads FILE (a broken file is logged and the running
config stays), SIGUSR1 reopens capture files (after logrotate), SIGUSR2
hands the daemon over to its binary as it is on disk now (like chartee
ctl upgrade), SIGTERM/SIGINT shut down, draining legs for up to 10s (a
second one cuts that short).
`

// Bounds of the shutdown and of a reload.
const (
	shutdownTimeout    = 10 * time.Second
	apiShutdownTimeout = 3 * time.Second
	reloadTimeout      = 60 * time.Second
)

// readyInfo is what `run` serves once it is up.
type readyInfo struct {
	Socket     string            // control socket path ("" when none)
	ControlTCP string            // bound control TCP address ("" when none)
	MetricsURL string            // "" when metrics are off
	Listeners  map[string]string // "tee/backend" -> bound address of a listening backend
	WebURL     string            // the browser console ("" when none)
	Demo       *demoSetup        // nil unless running the built-in demo
}

func (a *app) run(args []string) int {
	fs := newFlagSet("chartee run", a.stderr, runUsage)
	var path string
	fs.StringVar(&path, "c", "", "config `FILE` (default: the built-in demo)")
	fs.StringVar(&path, "config", "", "same as -c (`FILE`)")
	port := fs.Int("port", demoDefaultPort, "the demo's telnet `port` on 127.0.0.1 (0: any free port)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	portSet := false
	fs.Visit(func(f *flag.Flag) { portSet = portSet || f.Name == "port" })
	// `chartee run FILE` is `chartee run -c FILE`, as for check.
	if path == "" && len(pos) > 0 {
		path, pos = pos[0], pos[1:]
	}
	if len(pos) > 0 {
		fmt.Fprintf(a.stderr, "chartee run: unexpected argument %q\n\n", pos[0])
		fmt.Fprint(a.stderr, runUsage)
		return exitUsage
	}
	if path != "" && portSet {
		fmt.Fprintln(a.stderr, "chartee run: --port applies to the built-in demo only; with -c the config says where to listen")
		return exitUsage
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(a.stderr, "chartee run: --port %d: want 0 to 65535\n", *port)
		return exitUsage
	}

	// A process started by an upgrade finds its handover socket: the
	// old process waits (bounded) for it to read and check the config.
	inh, err := inherit()
	if err != nil {
		fmt.Fprintf(a.stderr, "chartee: %v\n", err)
		return exitError
	}

	if path == "" {
		demoPort := *port
		if !portSet {
			demoPort = -1 // the default, which gives way when taken
		}
		return a.runDemo(demoPort, inh)
	}
	cfg, err := config.Load(path)
	if err != nil {
		inh.fail(err)
		printConfigError(a.stderr, err)
		return exitError
	}
	printWarnings(a.stderr, cfg.Warnings)
	return a.serve(cfg, path, nil, inh)
}

// runDemo serves the built-in demo. Its fixed default ports are only seen
// free before the daemon binds them: a program (another demo, started at
// the same moment) that binds one in between makes the start fail, and
// the demo then starts once more on free ports.
func (a *app) runDemo(port int, inh *inheritance) int {
	for anyPort := false; ; anyPort = true {
		demo, err := prepareDemo(port, a.getenv, anyPort)
		if err != nil {
			inh.fail(err)
			fmt.Fprintf(a.stderr, "chartee: %v\n", err)
			return exitError
		}
		cfg, err := config.Parse(demoFile, demo.YAML)
		if err != nil {
			inh.fail(err)
			printConfigError(a.stderr, err)
			return exitError
		}
		printWarnings(a.stderr, cfg.Warnings)
		if code := a.serve(cfg, "", demo, inh); code != exitDemoPortTaken {
			return code
		}
		os.RemoveAll(demo.Dir) // nothing was written there yet
	}
}

// exitDemoPortTaken is serve's word to runDemo that a fixed demo port was
// taken between its check and its bind (never a process exit code).
const exitDemoPortTaken = -1

// newLogger builds the daemon's logger from the log section. The config
// layer has validated the names; an empty one takes the default.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs cfg until a termination signal (or a.ctx ends).
func (a *app) serve(cfg *config.Config, path string, demo *demoSetup, inh *inheritance) int {
	log := newLogger(cfg.Log, a.stderr)
	fail := func(err error) int {
		if demo != nil && demo.fixedPort && addrInUseHint(err) != "" {
			fmt.Fprintf(a.stderr, "chartee: %v; the demo starts again on free ports\n", err)
			return exitDemoPortTaken
		}
		return a.startFailed(err, inh, demo)
	}

	// Everything that can be checked before starting a tee is, so that a
	// bad token file does not leave half a daemon behind.
	var token string
	if cfg.Control.Listen != "" {
		var err error
		if token, err = readToken(cfg.Control.TokenFile); err != nil {
			return fail(err)
		}
	}

	// Signals are caught before anything starts, so a SIGTERM during
	// startup is a clean shutdown rather than a kill.
	sigs := make(chan os.Signal, 8)
	a.notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	defer a.stopNotify(sigs)

	// The collector is made first so that the daemon's OnReload, called for
	// the initial load too, has somewhere to record it.
	var running atomic.Pointer[daemon.Daemon]
	collector := newCollector(&running)
	watchMetrics := watch.NewMetrics()

	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	var metricsHandler http.Handler
	if cfg.Metrics.Listen != "" {
		reg := metrics.NewRegistry(collector)
		reg.MustRegister(watchMetrics.Collectors()...)
		metricsHandler = metrics.Handler(reg, log)
	}

	// A process started by an upgrade has now started and checked its
	// config while the old one ran on: it says so, and the old process
	// stops at its cut and hands over its state and files. What follows
	// is the output pause: keep it short.
	if err := inh.receive(); err != nil {
		if errors.Is(err, handover.ErrWithdrawn) {
			fmt.Fprintf(a.stderr, "chartee: %v\n", err)
			return exitError
		}
		return fail(err)
	}

	// Every socket is bound before the daemon opens any device: a busy
	// port must fail the start before a capture file is created or
	// appended to (the daemon, in turn, binds its listeners before it
	// opens its captures).
	info := readyInfo{Demo: demo, Listeners: map[string]string{}}
	bs := &bindings{inh: inh, info: &info}
	if err := bs.bindAll(ctx, cfg, token, func() http.Handler { return metricsHandler }); err != nil {
		bs.close()
		return fail(err)
	}

	d, err := daemon.New(ctx, cfg, daemon.Options{
		Logger:       log,
		WatchMetrics: watchMetrics,
		Inherit:      inh.daemonInheritance(),
		Listener:     inh.listener,
		OnReload: func(ok bool, at time.Time, _ error) {
			collector.SetReload(metrics.ReloadState{Success: ok, Time: at})
		},
	})
	if err != nil {
		bs.close()
		return fail(err)
	}
	running.Store(d)
	collector.SetReload(metrics.ReloadState{Success: true, Time: time.Now()})
	d.SetConfigPath(path)

	upg := &upgrader{d: d, log: log, listeners: bs.carry}
	st := &services{log: log, d: d, stopMetrics: bs.stopMetrics,
		srv: api.NewServer(d, api.Options{Logger: log, Upgrade: upg.upgrade})}
	if err := st.start(cfg, bs); err != nil {
		ctx, c := context.WithTimeout(context.Background(), shutdownTimeout)
		defer c()
		st.shutdown(ctx)
		return fail(err)
	}
	if st.web != nil {
		info.WebURL = st.web.url
	}
	if inh != nil {
		inh.ready(log, d)
		for _, b := range bs.bound {
			b.Own()
		}
	}
	addListeners(info.Listeners, d)
	a.printReady(cfg, d, info)
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("systemd notification failed", "err", err)
	}
	if a.ready != nil {
		a.ready(info)
	}

	sig := a.waitForStop(ctx, sigs, d, upg, log)
	a.stop(sig, sigs, st, log)
	if demo != nil {
		fmt.Fprintf(a.stderr, "chartee: demo capture kept in %s (remove the directory when done)\n", demo.Capture)
	}
	log.Info("stopped")
	return exitOK
}

// startFailed reports why the daemon could not start (to a previous
// process handing over, too) and what to do about a busy address.
func (a *app) startFailed(err error, inh *inheritance, demo *demoSetup) int {
	inh.fail(err)
	fmt.Fprintf(a.stderr, "chartee: %v\n", err)
	if hint := addrInUseHint(err); hint != "" {
		if demo != nil {
			hint = "another program (perhaps another chartee demo) is listening there; `chartee --port 0` picks a free port"
		}
		fmt.Fprintf(a.stderr, "chartee: %s\n", hint)
	}
	return exitError
}

// newCollector is the metrics collector of the daemon running (nil
// before it has started: no tees).
func newCollector(running *atomic.Pointer[daemon.Daemon]) *metrics.Collector {
	return metrics.NewCollector(metrics.SourceFunc(func() []*tee.Tee {
		if d := running.Load(); d != nil {
			return d.Tees()
		}
		return nil
	}), version())
}

// addListeners records the address of every listening backend, by
// tee/backend.
func addListeners(into map[string]string, d *daemon.Daemon) {
	for _, t := range d.Tees() {
		st := t.Stats()
		for _, b := range st.Backends {
			if b.Source != "" {
				into[st.Name+"/"+b.Name] = b.Source
			}
		}
	}
}

// waitForStop handles signals until one asks to stop (or a.ctx ends,
// which counts as SIGTERM): SIGHUP reloads, SIGUSR1 reopens capture files,
// SIGUSR2 hands over to a new binary.
func (a *app) waitForStop(ctx context.Context, sigs chan os.Signal, d *daemon.Daemon, upg *upgrader, log *slog.Logger) os.Signal {
	for {
		var sig os.Signal
		select {
		case sig = <-sigs:
		case <-a.ctx.Done():
			sig = syscall.SIGTERM
		}
		switch sig {
		case syscall.SIGHUP:
			a.reload(d, log)
		case syscall.SIGUSR1:
			if err := d.Reopen(); err != nil {
				log.Error("reopening capture files failed", "err", err)
			} else {
				log.Info("capture files reopened")
			}
		case syscall.SIGUSR2:
			// The outcome is logged by upgrade itself.
			if _, exit, err := upg.upgrade(ctx, api.UpgradeRequest{}); err == nil {
				exit()
			}
		default:
			return sig
		}
	}
}

// stop shuts everything down after sig, draining legs for up to
// shutdownTimeout; a second SIGTERM or SIGINT cuts the drain short.
func (a *app) stop(sig os.Signal, sigs chan os.Signal, st *services, log *slog.Logger) {
	log.Info("shutting down", "signal", sig.String())
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGTERM || s == syscall.SIGINT {
					log.Warn("second signal: not waiting for legs to drain", "signal", s.String())
					scancel()
				}
			case <-done:
				return
			}
		}
	}()
	st.shutdown(sctx)
	close(done)
}

// reload re-reads the config file and logs what changed, or why nothing
// did.
func (a *app) reload(d *daemon.Daemon, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(a.ctx, reloadTimeout)
	defer cancel()
	rep, err := d.Reload(ctx)
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			log.Error("reload failed; the running config stays", "file", rep.File, "errors", len(list))
			for _, e := range list {
				log.Error("config error", "problem", e.Error())
			}
			return
		}
		log.Error("reload failed; the running config stays", "err", err)
		return
	}
	log.Info("config reloaded", "file", rep.File,
		"tees_started", rep.Started, "tees_stopped", rep.Stopped,
		"attached", rep.Attached, "detached", rep.Detached, "swapped", rep.Swapped,
		"updated", rep.Updated, "frontends_swapped", rep.Frontend, "duration", rep.Elapsed)
	for _, w := range rep.Warnings {
		log.Warn("config warning", "warning", w)
	}
}

// readToken reads the control API's bearer token. A missing or empty file
// is an error: the TCP listener must never run unauthenticated.
func readToken(path string) (string, error) {
	if path == "" {
		return "", errors.New("control: listen is set but token_file is not; the TCP control API needs a token")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("control: token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("control: token_file %s is empty", path)
	}
	return tok, nil
}

// listenControlSocket binds the control socket, making its directory
// when missing.
func listenControlSocket(sock string) (*api.Bound, error) {
	if err := ensureDir(filepath.Dir(sock)); err != nil {
		return nil, err
	}
	return api.ListenUnix(sock)
}

// ensureDir creates the socket's directory, private, when it is missing
// (as /run/chartee is when chartee runs outside systemd). An existing one
// is left as it is.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control: socket directory: %w", err)
	}
	return nil
}

// addrInUseHint explains an "address already in use" error.
func addrInUseHint(err error) string {
	if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
		return ""
	}
	return "another program (perhaps another chartee) is listening there; `ss -ltnp` shows which, or change the address in the config (port 0 picks a free one)"
}

// printReady tells the user where everything is, on stderr.
func (a *app) printReady(cfg *config.Config, d *daemon.Daemon, info readyInfo) {
	w := a.stderr
	file := cfg.File
	if file == "" {
		file = "?"
	}
	fmt.Fprintf(w, "chartee %s running %s\n", version(), file)
	describe := map[string]string{}
	for _, t := range cfg.Tees {
		describe[t.Name] = t.Frontend.Describe()
		for _, b := range t.Backends {
			describe[t.Name+"/"+b.Name] = b.Describe()
		}
	}
	for _, t := range d.Tees() {
		st := t.Stats()
		state := "up"
		if !st.Frontend.Up {
			state = "connecting"
			if e := st.Frontend.LastError; e != "" {
				state = "connecting: " + e + "; retrying, see the log and chartee ctl list"
			}
		}
		fmt.Fprintf(w, "  tee %s: frontend %s (%s)\n", st.Name, describe[st.Name], state)
		for _, b := range st.Backends {
			where := describe[st.Name+"/"+b.Name]
			if b.Source != "" {
				where = "listening on " + b.Source
			}
			fmt.Fprintf(w, "    backend %-12s %s\n", b.Name, where)
		}
	}
	if info.Socket != "" {
		fmt.Fprintf(w, "  control socket: %s\n", info.Socket)
	} else if info.ControlTCP == "" {
		fmt.Fprintln(w, "  control socket: none (control.socket is not set: chartee ctl cannot reach this daemon)")
	}
	if info.ControlTCP != "" {
		fmt.Fprintf(w, "  control API:    http://%s (bearer token)\n", info.ControlTCP)
	}
	if info.MetricsURL != "" {
		fmt.Fprintf(w, "  metrics:        %s\n", info.MetricsURL)
	}
	if info.WebURL != "" {
		fmt.Fprintf(w, "  web console:    %s\n", info.WebURL)
	}
	if demo := info.Demo; demo != nil {
		for _, n := range demo.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "This is the built-in demo: a simulated console, nothing in it is real. Try:")
		if addr, ok := info.Listeners["console/telnet"]; ok {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				host, port = addr, ""
			}
			fmt.Fprintf(w, "  telnet %s %s                       # log in as anyone\n", host, port)
		}
		sock := "--socket " + info.Socket
		if def, _ := demoSocketPath(a.getenv, false); def == info.Socket {
			sock = "" // ctl finds it by itself
		}
		self, note := a.selfCommand()
		ctl := strings.Join(strings.Fields(self+" ctl "+sock), " ")
		fmt.Fprintf(w, "  %s list\n", ctl)
		fmt.Fprintf(w, "  %s show console\n", ctl)
		fmt.Fprintf(w, "  %s tail -f console recent\n", ctl)
		fmt.Fprintf(w, "  %s attach console file,name=copy,path=%s,format=raw\n", ctl, filepath.Join(demo.Dir, "copy.log"))
		fmt.Fprintf(w, "  %s swap console copy file,path=%s,format=raw   # byte-exact handover\n", ctl, filepath.Join(demo.Dir, "copy2.log"))
		fmt.Fprintf(w, "  %s events\n", ctl)
		if note != "" {
			fmt.Fprintf(w, "  (%s)\n", note)
		}
		if info.MetricsURL != "" {
			fmt.Fprintf(w, "  curl %s\n", info.MetricsURL)
		}
		if info.WebURL != "" {
			fmt.Fprintf(w, "  open %s in a browser and log in as %s, password %s\n", info.WebURL, demo.User, demo.Password)
		}
		fmt.Fprintf(w, "The capture is written to %s. Ctrl-C stops the demo.\n", demo.Capture)
	}
}

// selfCommand is how the user can run this very chartee again, for the
// commands the demo prints: "chartee" when that is what $PATH finds, "go
// run ./cmd/chartee" for a temporary `go run` build (with a note that it
// works from the source tree), else the binary's absolute path.
func (a *app) selfCommand() (cmd, note string) {
	if a.self != nil {
		return a.self()
	}
	exe, err := os.Executable()
	if err != nil {
		return "chartee", ""
	}
	return selfCommandFor(exe, exec.LookPath)
}

func selfCommandFor(exe string, lookPath func(string) (string, error)) (cmd, note string) {
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	if p, err := lookPath("chartee"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && real == exe {
			return "chartee", ""
		}
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/chartee", "run from the source tree; go install ./cmd/chartee puts chartee on your PATH"
	}
	return exe, ""
}
