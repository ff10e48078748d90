package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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
}

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
	if blockers := u.d.UpgradeBlockers(); len(blockers) > 0 {
		u.log.Warn("upgrade refused: something cannot be carried to the new binary", "blockers", blockers)
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409,
			Message: "upgrade: refused, nothing changed: " + blockers[0], Details: blockers}
	}
	binary, err := upgradeBinary(binary)
	if err != nil {
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409, Message: err.Error()}
	}
	// The cut: from here until the commit (or the rollback) no tee
	// reads its frontend, accepts or takes input.
	cut := time.Now()
	fz, err := u.d.Freeze(ctx)
	if err != nil {
		u.log.Warn("upgrade refused: the tees could not stop at a cut", "err", err)
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeRefused, Status: 409,
			Message: "upgrade: refused, nothing changed: " + strings.TrimPrefix(err.Error(), "upgrade: refused, nothing changed: ")}
	}
	st := upgradeState{Version: version(), PID: os.Getpid(), Cut: cut}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, l := range u.listeners {
		f, err := l.file()
		if err != nil {
			fz.Thaw()
			return api.UpgradeReport{}, nil, fmt.Errorf("upgrade: %s: %w", l.name, err)
		}
		st.Listeners = append(st.Listeners, carriedListener{Name: l.name, Addr: l.addr, File: len(files)})
		files = append(files, f)
	}
	st.Tees, st.TeeFiles = fz.State, len(files)
	all := append(slices.Clone(files), fz.Files...)
	doc, err := json.Marshal(st)
	if err != nil {
		fz.Thaw()
		return api.UpgradeReport{}, nil, fmt.Errorf("upgrade: state: %w", err)
	}
	start := time.Now()
	u.log.Info("upgrade: starting the new binary", "binary", binary, "files", len(all), "cuts", fz.Offsets)
	child, err := handover.Start(handover.Request{
		Binary: binary, Args: os.Args[1:], Files: all, State: doc, Timeout: timeout,
	})
	if err != nil {
		// Rollback: every tee reads on from its cut, as if nothing
		// had happened.
		fz.Thaw()
		u.log.Error("upgrade failed; rolled back, this process carries on", "binary", binary, "err", err)
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeFailed, Status: 502,
			Message: "upgrade: rolled back, this daemon carries on: " + err.Error()}
	}
	if err := child.Commit(); err != nil {
		// The new process may or may not have heard the commit: a new
		// process without it exits untouched, so carrying on is safe.
		child.Abort()
		fz.Thaw()
		return api.UpgradeReport{}, nil, &api.Error{Code: api.CodeUpgradeFailed, Status: 502,
			Message: "upgrade: rolled back, this daemon carries on: " + err.Error()}
	}
	rep := api.UpgradeReport{
		Binary: binary, OldVersion: version(), NewVersion: child.Info,
		OldPID: os.Getpid(), NewPID: child.Pid(), Files: len(all), Elapsed: time.Since(start),
		Pause: time.Since(cut), Cuts: fz.Offsets,
	}
	u.log.Info("upgrade", "old_version", rep.OldVersion, "new_version", rep.NewVersion,
		"new_pid", rep.NewPID, "pause", rep.Pause, "files", rep.Files, "cuts", rep.Cuts, "bytes_carried", 0)
	// The new process owns every carried socket now: exit without
	// closing anything (a Close would unlink the control socket).
	// systemd follows the new process (Type=notify, see sdNotify).
	if err := sdNotify(fmt.Sprintf("MAINPID=%d", rep.NewPID)); err != nil {
		u.log.Warn("systemd notification failed", "err", err)
	}
	return rep, func() { os.Exit(exitOK) }, nil
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

// inheritance is what a process started by an upgrade was handed.
type inheritance struct {
	in    *handover.Inherited
	state upgradeState
	files map[string]*os.File // by listener name, until taken
	addrs map[string]string
	tees  *daemon.Inheritance
}

// inherit reads what an upgrade handed this process, or returns nil when
// it was started normally.
func inherit() (*inheritance, error) {
	in, err := handover.Inherit()
	if in == nil || err != nil {
		return nil, err
	}
	h := &inheritance{in: in, files: map[string]*os.File{}, addrs: map[string]string{}}
	if err := json.Unmarshal(in.State, &h.state); err != nil {
		err = fmt.Errorf("upgrade: the state document: %w", err)
		in.Fail(err)
		return nil, err
	}
	if h.state.TeeFiles < 0 || h.state.TeeFiles > len(in.Files) {
		err := fmt.Errorf("upgrade: tee files start at %d of %d", h.state.TeeFiles, len(in.Files))
		in.Fail(err)
		return nil, err
	}
	if len(h.state.Tees) > 0 {
		if h.tees, err = daemon.ParseInheritance(h.state.Tees, in.Files[h.state.TeeFiles:]); err != nil {
			in.Fail(err)
			return nil, err
		}
	}
	for _, l := range h.state.Listeners {
		if l.File < 0 || l.File >= len(in.Files) {
			err := fmt.Errorf("upgrade: listener %s: file %d not handed over", l.Name, l.File)
			in.Fail(err)
			return nil, err
		}
		h.files[l.Name], h.addrs[l.Name] = in.Files[l.File], l.Addr
	}
	return h, nil
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
// daemon's tees run on from their cuts.
func (h *inheritance) ready(log *slog.Logger, d *daemon.Daemon) {
	for name, f := range h.files {
		log.Info("upgrade: no longer listening", "listener", name, "addr", h.addrs[name])
		f.Close()
	}
	if err := h.in.Ready(version()); err != nil {
		fmt.Fprintln(os.Stderr, "chartee:", err)
		os.Exit(exitError)
	}
	d.Activate(daemon.Upgraded{OldVersion: h.state.Version, NewVersion: version(), OldPID: h.state.PID,
		Pause: time.Since(h.state.Cut)})
	log.Info("upgrade: took over", "old_version", h.state.Version, "old_pid", h.state.PID, "version", version())
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
	fmt.Fprintf(r.out, "upgraded %s -> %s: pid %d -> %d, %d files handed over, output paused %v (%s)\n",
		rep.OldVersion, rep.NewVersion, rep.OldPID, rep.NewPID, rep.Files, rep.Pause.Round(time.Millisecond), rep.Binary)
	return nil
}
