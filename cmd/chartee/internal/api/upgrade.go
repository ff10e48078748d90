package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Error codes of POST /v1/upgrade.
const (
	// CodeUpgradeRefused: the running daemon cannot hand everything over
	// (Details: what would be dropped); nothing was started.
	CodeUpgradeRefused = "upgrade_refused"
	// CodeUpgradeFailed: the new binary did not take over (it would not
	// start, failed, or was not ready in time); the running daemon rolled
	// back and carries on. The message says why.
	CodeUpgradeFailed = "upgrade_failed"
)

// UpgradeRequest is the body of POST /v1/upgrade.
type UpgradeRequest struct {
	// Binary is the program to hand over to; empty means the running
	// daemon's own path, re-read from disk (a package upgrade replaced
	// it).
	Binary string `json:"binary,omitempty"`
	// Timeout bounds each wait for the new binary: until it has
	// started and checked the config (before the cut), and then until it
	// is ready (0: the daemon's default, 10s each).
	Timeout time.Duration `json:"timeout_ns,omitempty"`
}

// UpgradeReport is the answer to POST /v1/upgrade: the new process has
// taken over and the old one exits once the answer is sent.
type UpgradeReport struct {
	Binary     string `json:"binary"`
	OldVersion string `json:"old_version"`
	NewVersion string `json:"new_version"`
	OldPID     int    `json:"old_pid"`
	NewPID     int    `json:"new_pid"`
	// Files is how many file descriptors were handed over.
	Files int `json:"files"`
	// Elapsed is how long the handover took, from starting the new
	// binary to its commit.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Prepare is how long the new binary took to start and read and
	// check its config, before the cut: the tees ran on meanwhile.
	Prepare time.Duration `json:"prepare_ns"`
	// Pause is how long the tees were stopped: from the cut to the new
	// process's word that its tees read on.
	Pause time.Duration `json:"pause_ns"`
	// Cut is when the old process stopped its tees (the pause began).
	Cut time.Time `json:"cut"`
	// Steps say where the pause went: when each step ended, counted
	// from the cut.
	Steps []UpgradeStep `json:"steps,omitempty"`
	// Cuts is each tee's stream offset at the cut; the new process
	// continues every stream from there.
	Cuts map[string]uint64 `json:"cuts,omitempty"`
	// Carried is how many bytes the new process writes first: output
	// legs had not written when the drain bound expired, typed input.
	Carried uint64 `json:"bytes_carried"`
	// Closed is how many sessions could not be carried (TLS, SSH,
	// browser): they got everything up to the cut and a notice, and
	// reconnect to the new process.
	Closed int `json:"sessions_closed"`
}

// UpgradeStep is one step of an upgrade's pause.
type UpgradeStep struct {
	// Name is the step: in the old process "frozen" (every tee stopped
	// at its cut), "state" (the state document and files collected),
	// "ready" (the new process said so), "committed"; in the new one
	// "received" (state and files read), "built" (daemon and listeners
	// built on them), "running" (its tees read on).
	Name string `json:"name"`
	// At is when it ended, from the cut.
	At time.Duration `json:"at_ns"`
}

// Upgrader hands the running process over to binary. On success the
// returned function is called once the answer has been sent (the old
// process exits there). Errors are *Error with CodeUpgradeRefused or
// CodeUpgradeFailed.
type Upgrader func(ctx context.Context, req UpgradeRequest) (UpgradeReport, func(), error)

// ErrNoUpgrade is the answer of a server without an Upgrader.
var errNoUpgrade = newError(CodeUnsupported, "this daemon cannot upgrade itself (it runs in-process, not as chartee run)")

func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	var req UpgradeRequest
	if err == nil && len(body) > 0 {
		if jerr := json.Unmarshal(body, &req); jerr != nil {
			err = newError(CodeBadRequest, "upgrade request: %s", jerr)
		}
	}
	if err == nil && s.opts.Upgrade == nil {
		err = errNoUpgrade
	}
	var rep UpgradeReport
	var after func()
	if err == nil {
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.OpTimeout + s.opts.WriteTimeout))
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.OpTimeout)
		rep, after, err = s.opts.Upgrade(ctx, req)
		cancel()
	}
	if err != nil {
		var ae *Error
		if !errors.As(err, &ae) {
			ae = newError(CodeUpgradeFailed, "%s", err)
		}
		s.writeError(w, r, ae.Status, ae)
		return
	}
	s.writeJSON(w, http.StatusOK, rep)
	_ = http.NewResponseController(w).Flush()
	if after != nil {
		after()
	}
}

// File returns a duplicate of b's listening socket, to hand to the
// process an upgrade starts.
func (b *Bound) File() (*os.File, error) {
	ln := b.ln
	if b.sock != nil {
		ln = b.sock.Listener
	}
	fl, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("api: %s: listener %T has no file", b.name, b.ln)
	}
	return fl.File()
}

// InheritUnix makes a Bound of the control socket at path from f, a
// listening socket inherited from the process an upgrade took over from.
// Until Own is called, closing it never removes the socket file, which
// the old process still serves if the upgrade rolls back.
func InheritUnix(path string, f *os.File) (*Bound, error) {
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("api: inherited %s: %w", path, err)
	}
	ul, ok := ln.(*net.UnixListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("api: inherited %s: not a unix socket", path)
	}
	ul.SetUnlinkOnClose(false)
	sock := &unixSocket{Listener: ul, path: path}
	return &Bound{ln: sock, sock: sock, name: "unix:" + path}, nil
}

// InheritTCP makes a Bound of the TCP control listener from f, inherited
// as InheritUnix's.
func InheritTCP(f *os.File, token string) (*Bound, error) {
	if token == "" {
		return nil, errors.New("api: a TCP listener requires a token")
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("api: inherited TCP listener: %w", err)
	}
	return &Bound{ln: ln, name: "tcp:" + ln.Addr().String(), token: token}, nil
}

// Own makes the process that inherited b its owner: from now on closing
// it removes the socket file, as for a socket it bound itself.
func (b *Bound) Own() {
	if b.sock != nil && b.sock.info == nil {
		if info, err := os.Lstat(b.sock.path); err == nil {
			b.sock.info = info
		}
	}
}
