package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"chartee/cmd/chartee/internal/api"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/cmd/chartee/internal/handover"
)

// upgradeTimeout bounds how long the running daemon waits for a new
// binary to report ready before it kills it and carries on.
var upgradeTimeout = handover.DefaultTimeout

// Names of the listeners an upgrade hands over, in the state document.
const (
	carryControlUnix = "control-unix"
	carryControlTCP  = "control-tcp"
	carryMetrics     = "metrics"
	carryWeb         = "web" // the listener; its sessions are not carried
)

// upgradeState is the state document an upgrade hands to the new binary.
type upgradeState struct {
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Cut     time.Time `json:"cut"` // when the tees stopped
	// Listeners are the carried listening sockets; File indexes the
	// carried files.
	Listeners []carriedListener `json:"listeners"`
	// Tees is the daemon's state document (daemon.Freeze); its file
	// indexes count from TeeFiles.
	Tees     json.RawMessage `json:"tees"`
	TeeFiles int             `json:"tee_files"`
}

type carriedListener struct {
	Name string `json:"name"`
	Addr string `json:"addr"` // the config's address or socket path
	File int    `json:"file"`
}

// carried is a listener the running daemon can hand over.
type carried struct {
	name, addr string
	file       func() (*os.File, error)
}

// upgrader hands the running daemon over to a new binary.
type upgrader struct {
	d         *daemon.Daemon
	log       *slog.Logger
	listeners []carried
	mu        sync.Mutex // one upgrade at a time
	getpid    func() int // os.Getpid when nil
}

func (u *upgrader) pid() int {
	if u.getpid != nil {
		return u.getpid()
	}
	return os.Getpid()
}

// pidOneRefusal is why a daemon that is PID 1 does not upgrade: the old
// process exits at the commit, and PID 1's exit ends its PID namespace
// (the container), new process and all.
const pidOneRefusal = "upgrade: refused, nothing changed: chartee runs as PID 1 (a container's init), " +
	"and PID 1's exit stops the container; run it under an init (docker run --init, tini) to upgrade in place"

// upgrade starts binary ("" is our own path, re-read from disk) with our
// listeners and state, and commits once it is ready. On success the old
// process must exit (the returned function does); on failure nothing has
// changed.
func (u *upgrader) upgrade(ctx context.Context, req api.UpgradeRequest) (api.UpgradeReport, func(), error) {
	binary, timeout := req.Binary, req.Timeout
	if timeout <= 0 {
		timeout = upgradeTimeout
	}
	if !u.mu.TryLock() {
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409,
			Message: "upgrade: another upgrade is running"}
	}
	defer u.mu.Unlock()
	if u.pid() == 1 {
		u.log.Warn("upgrade refused: this process is PID 1")
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409, Message: pidOneRefusal}
	}
	if blockers := u.d.UpgradeBlockers(); len(blockers) > 0 {
		u.log.Warn("upgrade refused: something cannot be carried to the new binary", "blockers", blockers)
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409,
			Message: "upgrade: refused, nothing changed: " + blockers[0], Details: blockers}
	}
	binary, err := upgradeBinary(binary)
	if err != nil {
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409, Message: err.Error()}
	}
	// Phase 1: the new binary starts and reads and checks the config
	// while every tee runs on.
	start := time.Now()
	u.log.Info("upgrade: starting the new binary", "binary", binary)
	child, err := handover.Start(handover.Request{Binary: binary, Args: os.Args[1:], Timeout: timeout})
	if err != nil {
		u.log.Error("upgrade failed before the cut (nothing was frozen); this process carries on", "binary", binary, "err", err)
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeFailed, Status: 502,
			Message: "upgrade: rolled back, this daemon carries on (nothing was frozen): " + err.Error()}
	}
	prepare := time.Since(start)
	// Phase 2: the cut. From here until the commit (or the rollback) no
	// tee reads its frontend, accepts or takes input; nothing in
	// between waits for a garbage collection.
	gc := debug.SetGCPercent(-1)
	cut := time.Now()
	steps := &upgradeSteps{cut: cut}
	rollback := func(fz *daemon.Frozen, err error) (api.UpgradeReport, func(), error) {
		child.Abort()
		if fz != nil {
			fz.Thaw()
		}
		debug.SetGCPercent(gc)
		u.log.Error("upgrade failed; rolled back, this process carries on", "binary", binary, "err", err)
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeFailed, Status: 502,
			Message: "upgrade: rolled back, this daemon carries on: " + err.Error()}
	}
	fz, err := u.d.Freeze(ctx)
	if err != nil {
		child.Abort()
		debug.SetGCPercent(gc)
		u.log.Warn("upgrade refused: the tees could not stop at a cut", "err", err)
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409,
			Message: "upgrade: refused, nothing changed: " + strings.TrimPrefix(err.Error(), "upgrade: refused, nothing changed: ")}
	}
	steps.add("frozen")
	doc, all, closeFiles, err := u.state(fz, cut)
	defer closeFiles()
	if err != nil {
		return rollback(fz, err)
	}
	steps.add("state")
	if err := child.Hand(doc, all); err != nil {
		return rollback(fz, err)
	}
	newVersion := child.Info
	steps.add("ready")
	if err := child.Commit(); err != nil {
		// The new process may or may not have heard the commit: a new
		// process without it exits untouched, so carrying on is safe.
		return rollback(fz, err)
	}
	steps.add("committed")
	// The new process owns every carried device now. Its word that the
	// tees read on ends the pause.
	if err := child.Running(); err != nil {
		u.log.Warn("upgrade: the new process did not say its tees run; the pause is unknown", "err", err)
	} else {
		steps.addNew(child.Info)
	}
	rep := api.UpgradeReport{
		Binary: binary, OldVersion: version(), NewVersion: newVersion,
		OldPID: os.Getpid(), NewPID: child.Pid(), Files: len(all), Elapsed: time.Since(start),
		Prepare: prepare, Pause: time.Since(cut), Cut: cut, Steps: steps.list, Cuts: fz.Offsets,
		Carried: fz.Carried, Closed: fz.Left(),
	}
	u.log.Info("upgrade", "old_version", rep.OldVersion, "new_version", rep.NewVersion,
		"new_pid", rep.NewPID, "prepare", rep.Prepare, "pause", rep.Pause, "steps", formatSteps(rep.Steps),
		"files", rep.Files, "cuts", rep.Cuts, "bytes_carried", rep.Carried,
		"sessions_closed", rep.Closed)
	// Exit without closing anything (a Close would unlink the control
	// socket). systemd follows the new process (Type=notify, see
	// sdNotify).
	if err := sdNotify(fmt.Sprintf("MAINPID=%d", rep.NewPID)); err != nil {
		u.log.Warn("systemd notification failed", "err", err)
	}
	return rep, func() {
		// Sessions that cannot be carried (their keys live in this
		// process) get everything up to the cut, then the notice,
		// then a close; their clients reconnect to the new process.
		fz.CloseLeft(fmt.Sprintf("chartee: upgrading to %s, reconnect", rep.NewVersion), leaveBound)
		os.Exit(exitOK)
	}, nil
}

// leaveBound bounds how long the old process, after the commit, gives
// the sessions it could not carry their last bytes and notice.
const leaveBound = 2 * time.Second

// state builds the state document and the files to hand over: the
// listeners', then the tees'. closeFiles closes this process's
// duplicates of the listeners (the tees' are fz's).
func (u *upgrader) state(fz *daemon.Frozen, cut time.Time) (doc []byte, all []*os.File, closeFiles func(), err error) {
	st := upgradeState{Version: version(), PID: os.Getpid(), Cut: cut}
	var files []*os.File
	closeFiles = func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, l := range u.listeners {
		f, err := l.file()
		if err != nil {
			return nil, nil, closeFiles, fmt.Errorf("upgrade: %s: %w", l.name, err)
		}
		st.Listeners = append(st.Listeners, carriedListener{Name: l.name, Addr: l.addr, File: len(files)})
		files = append(files, f)
	}
	// The SSH service's socket (its sessions are closed with a notice
	// and reconnect to it at once).
	if addr, f, err := u.d.SSHListener(); err != nil {
		return nil, nil, closeFiles, fmt.Errorf("upgrade: ssh: %w", err)
	} else if f != nil {
		st.Listeners = append(st.Listeners, carriedListener{Name: daemon.CarrySSH, Addr: addr, File: len(files)})
		files = append(files, f)
	}
	st.Tees, st.TeeFiles = fz.State, len(files)
	doc, err = json.Marshal(st)
	if err != nil {
		return nil, nil, closeFiles, fmt.Errorf("upgrade: state: %w", err)
	}
	return doc, append(slices.Clone(files), fz.Files...), closeFiles, nil
}

// upgradeSteps times the steps of a pause from the cut.
type upgradeSteps struct {
	cut  time.Time
	list []api.UpgradeStep
}

func (s *upgradeSteps) add(name string) {
	s.list = append(s.list, api.UpgradeStep{Name: name, At: time.Since(s.cut)})
}

// addNew adds the new process's steps (its running message, JSON);
// what does not parse is left out: they only explain the pause.
func (s *upgradeSteps) addNew(info string) {
	var theirs []api.UpgradeStep
	if json.Unmarshal([]byte(info), &theirs) != nil {
		return
	}
	s.list = append(s.list, theirs...)
	slices.SortStableFunc(s.list, func(a, b api.UpgradeStep) int { return cmp.Compare(a.At, b.At) })
}

// formatSteps is "frozen +2ms, state +3ms, ...".
func formatSteps(steps []api.UpgradeStep) string {
	parts := make([]string, len(steps))
	for i, st := range steps {
		parts[i] = fmt.Sprintf("%s +%v", st.Name, roundStep(st.At))
	}
	return strings.Join(parts, ", ")
}

func roundStep(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}

// upgradeBinary resolves the binary to start: path, or our own
// executable's path as it is on disk now (a package upgrade replaced the
// file, so /proc/self/exe reads "... (deleted)").
func upgradeBinary(path string) (string, error) {
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("upgrade: finding our own binary: %w", err)
		}
		path = strings.TrimSuffix(self, " (deleted)")
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("upgrade: binary %q: give an absolute path", path)
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("upgrade: binary: %w", err)
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("upgrade: binary %s is not an executable file", path)
	}
	return path, nil
}

// gcResume is how long after its tees run a new process turns the
// garbage collector back on.
const gcResume = time.Second

// inheritance is what a process started by an upgrade was handed.
type inheritance struct {
	in    *handover.Inherited
	state upgradeState
	files map[string]*os.File // by listener name, until taken
	addrs map[string]string
	tees  *daemon.Inheritance
	steps []api.UpgradeStep // this process's steps of the pause
	gc    int               // the GC percent to restore once running
}

// inherit finds the handover socket when this process was started by an
// upgrade (nil otherwise). Nothing is handed over yet: the process reads
// and checks its config first, then calls receive.
func inherit() (*inheritance, error) {
	in, err := handover.Inherit()
	if in == nil || err != nil {
		return nil, err
	}
	return &inheritance{in: in, files: map[string]*os.File{}, addrs: map[string]string{}}, nil
}

// receive tells the old process this one is prepared and waits for the
// state and files it hands over after its cut. From here to running,
// nothing waits for a garbage collection.
func (h *inheritance) receive() error {
	if h == nil {
		return nil
	}
	h.gc = debug.SetGCPercent(-1)
	if err := h.in.Prepared(version()); err != nil {
		return err
	}
	if err := h.parse(); err != nil {
		h.in.Fail(err)
		return err
	}
	h.step("received")
	return nil
}

func (h *inheritance) parse() error {
	in := h.in
	if err := json.Unmarshal(in.State, &h.state); err != nil {
		return fmt.Errorf("upgrade: the state document: %w", err)
	}
	if h.state.TeeFiles < 0 || h.state.TeeFiles > len(in.Files) {
		return fmt.Errorf("upgrade: tee files start at %d of %d", h.state.TeeFiles, len(in.Files))
	}
	if len(h.state.Tees) > 0 {
		var err error
		if h.tees, err = daemon.ParseInheritance(h.state.Tees, in.Files[h.state.TeeFiles:]); err != nil {
			return err
		}
	}
	for _, l := range h.state.Listeners {
		if l.File < 0 || l.File >= len(in.Files) {
			return fmt.Errorf("upgrade: listener %s: file %d not handed over", l.Name, l.File)
		}
		h.files[l.Name], h.addrs[l.Name] = in.Files[l.File], l.Addr
	}
	return nil
}

// step notes when one of this process's steps ended, from the old
// process's cut (both read the same clock).
func (h *inheritance) step(name string) {
	if h != nil {
		h.steps = append(h.steps, api.UpgradeStep{Name: name, At: time.Since(h.state.Cut)})
	}
}

// take returns the inherited listener name if it listens on addr.
func (h *inheritance) take(name, addr string) *os.File {
	if h == nil || h.addrs[name] != addr {
		return nil
	}
	f := h.files[name]
	delete(h.files, name)
	return f
}

// listener is the daemon's Options.Listener: the socket handed over
// under name if it listened on addr, or nil.
func (h *inheritance) listener(name, addr string) (net.Listener, error) {
	f := h.take(name, addr)
	if f == nil {
		return nil, nil
	}
	return inheritedListener(f)
}

// fail tells the old process why this one cannot take over.
func (h *inheritance) fail(err error) {
	if h != nil {
		h.in.Fail(err)
	}
}

// daemonInheritance is what the daemon takes over (nil without one).
func (h *inheritance) daemonInheritance() *daemon.Inheritance {
	if h == nil {
		return nil
	}
	return h.tees
}

// ready closes what was handed over but not taken (the config no longer
// listens there) and waits for the old process's commit. A process that
// does not get it exits at once without touching anything. Then the
// daemon's tees run on from their cuts, and the old process hears when.
func (h *inheritance) ready(log *slog.Logger, d *daemon.Daemon) {
	for name, f := range h.files {
		log.Info("upgrade: no longer listening", "listener", name, "addr", h.addrs[name])
		f.Close()
	}
	h.step("built")
	if err := h.in.Ready(version()); err != nil {
		fmt.Fprintln(os.Stderr, "chartee:", err)
		os.Exit(exitError)
	}
	d.Activate(daemon.Upgraded{OldVersion: h.state.Version, NewVersion: version(), OldPID: h.state.PID,
		Pause: time.Since(h.state.Cut)})
	h.step("running")
	steps, _ := json.Marshal(h.steps)
	h.in.Running(string(steps))
	// The collector comes back a little later: switched on now, it would
	// start at once on what the build allocated and compete with the
	// first bytes out.
	gc := h.gc
	time.AfterFunc(gcResume, func() { debug.SetGCPercent(gc) })
	log.Info("upgrade: took over", "old_version", h.state.Version, "old_pid", h.state.PID, "version", version(),
		"steps", formatSteps(h.steps))
}

// inheritedListener makes a net.Listener of an inherited file.
func inheritedListener(f *os.File) (net.Listener, error) {
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, errors.New("upgrade: inherited listener: " + err.Error())
	}
	return ln, nil
}

// upgrade runs `ctl upgrade`.
func (r *ctlRun) upgrade(ctx context.Context) error {
	bin := r.f.binary
	if bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		bin = abs
	}
	rep, err := r.c.Upgrade(ctx, api.UpgradeRequest{Binary: bin, Timeout: r.f.timeout})
	if err != nil {
		return err
	}
	if r.f.json {
		return r.printJSON(rep)
	}
	fmt.Fprintf(r.out, "upgraded %s -> %s: pid %d -> %d, %d files handed over, output paused %v, %d bytes carried, %d sessions closed to reconnect (%s)\n",
		rep.OldVersion, rep.NewVersion, rep.OldPID, rep.NewPID, rep.Files, roundStep(rep.Pause),
		rep.Carried, rep.Closed, rep.Binary)
	fmt.Fprintf(r.out, "  the new binary started and checked the config in %v before the cut; from the cut: %s\n",
		roundStep(rep.Prepare), formatSteps(rep.Steps))
	return nil
}
