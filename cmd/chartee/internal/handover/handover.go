// Package handover hands a running chartee process over to a new binary
// in two phases, so that the output pause holds none of the new binary's
// start:
//
//  1. Prepare, before the cut. The old process starts the new binary with
//     one inherited socket (fd 3) and nothing else. The new process starts
//     its runtime, reads and checks its config, builds whatever needs no
//     inherited device, and says "prepared" (or "fail REASON"). The old
//     process runs on meanwhile; a failure here means nothing was frozen.
//  2. Hand over, after the cut. The old process stops every tee at its
//     cut and sends "state FILES BYTES", the files (SCM_RIGHTS, in the
//     order it listed them) and the state document. The new process
//     builds on them and says "ready" (or "fail"). The old process sends
//     "commit"; only then does the new one touch any device. It says
//     "running" once its tees read on, which ends the pause.
//
// Every wait of the old process is bounded (Request.Timeout per phase)
// and watches the new process's exit: a new process that fails, exits or
// hangs in either phase is killed, and the old one carries on (Thaw) as
// if nothing happened. The commit step is what makes that safe: a new
// process that reports ready just as the old one gives up on it never
// reads a byte the old process also reads; one that loses the old
// process before the commit exits without touching anything.
//
// Why not github.com/cloudflare/tableflip, which handles inheritance of
// listeners and files and a readiness handshake: it always re-executes
// os.Args[0] (`chartee ctl upgrade --binary PATH` must start another
// file), allows one Upgrader per process (the daemon's tests run many
// daemons in one process), passes files at exec time (so the new binary
// could not start before the cut, and the pause would hold its whole
// start), carries no state document and no reason for a failure (a new
// binary that cannot parse the config must be reported as such by `ctl
// upgrade`), and lets the new process run as soon as it is ready, while
// the old one must first confirm it has stopped for good.
package handover

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment variables the new process finds its handover by.
const (
	EnvFD       = "CHARTEE_HANDOVER_FD"       // the socket ("3")
	EnvProtocol = "CHARTEE_HANDOVER_PROTOCOL" // protocol
	protocol    = "2"                         // prepare, then state and files
)

// DefaultTimeout bounds each wait of the old process for the new one:
// until it is prepared, and from the handover until it is ready.
const DefaultTimeout = 10 * time.Second

// runningTimeout bounds the wait for "running" after the commit (only
// the report of the pause depends on it).
const runningTimeout = 5 * time.Second

// Request is how to start the new process.
type Request struct {
	// Binary is the program to start; Args its arguments (without the
	// program name).
	Binary string
	Args   []string
	// Env is the new process's environment (nil: this process's), to
	// which the handover variables are added.
	Env []string
	// Timeout bounds each phase (DefaultTimeout when 0);
	// PrepareTimeout, when set, the first one instead.
	Timeout, PrepareTimeout time.Duration
	// Stdout and Stderr of the new process (nil: this process's).
	Stdout, Stderr *os.File
}

// Child is a new process between its start and the commit.
type Child struct {
	// Info is what the new process said last (prepared, ready: its
	// version; running: its steps).
	Info    string
	cmd     *exec.Cmd
	conn    *net.UnixConn
	timeout time.Duration
	lines   chan message  // closed at the socket's end
	lineErr error         // why it ended, once lines is closed
	done    chan struct{} // closed with the socket (readLines stops)
	once    sync.Once
	exited  chan struct{}
	err     error // its exit status, once exited is closed
}

// Pid is the new process's id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Start starts the new process and waits until it is prepared (phase 1).
// Any error means the new process is gone (killed and reaped); the error
// says why: it did not start, it failed (its reason), it exited, or it was
// not prepared in time.
func Start(req Request) (*Child, error) {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("handover: socketpair: %w", err)
	}
	theirs := os.NewFile(uintptr(pair[1]), "handover-child")
	defer theirs.Close()
	conn, err := unixConn(os.NewFile(uintptr(pair[0]), "handover"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(req.Binary, req.Args...)
	env := req.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(withoutHandover(env), EnvFD+"=3", EnvProtocol+"="+protocol)
	cmd.ExtraFiles = []*os.File{theirs}
	// Typed nil *os.File in an io.Writer is not nil: choose the files
	// first.
	stdout, stderr := req.Stdout, req.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("handover: starting %s: %w", req.Binary, err)
	}
	theirs.Close()
	c := &Child{cmd: cmd, conn: conn, timeout: req.Timeout, lines: make(chan message, 4),
		done: make(chan struct{}), exited: make(chan struct{})}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	go func() { c.err = cmd.Wait(); close(c.exited) }()
	go c.readLines()
	prepare := cmp.Or(req.PrepareTimeout, c.timeout)
	m, err := c.expect(msgPrepared, "prepared", prepare, prepare)
	if err != nil {
		c.Abort()
		return nil, err
	}
	c.Info = m.arg
	return c, nil
}

// Hand sends the state document and the files (phase 2, after the cut)
// and waits until the new process is ready. The caller keeps its files
// open: on a rollback it needs them. Any error means the new process is
// gone and the caller should resume.
func (c *Child) Hand(state []byte, files []*os.File) error {
	if len(state) > maxState || len(files) > maxFiles {
		c.Abort()
		return fmt.Errorf("handover: %d bytes of state and %d files are over the limits", len(state), len(files))
	}
	deadline := time.Now().Add(c.timeout)
	c.conn.SetWriteDeadline(deadline)
	err := c.send(state, files)
	c.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		// A new process that died or hung explains a failed send
		// better than the send itself.
		if _, why := c.expect(msgReady, "ready", time.Until(deadline), c.timeout); why != nil {
			err = why
		}
		c.Abort()
		return err
	}
	m, err := c.expect(msgReady, "ready", time.Until(deadline), c.timeout)
	if err != nil {
		c.Abort()
		return err
	}
	c.Info = m.arg
	return nil
}

func (c *Child) send(state []byte, files []*os.File) error {
	if _, err := io.WriteString(c.conn, formatStateHeader(len(files), len(state))); err != nil {
		return fmt.Errorf("handover: sending the state: %w", err)
	}
	if err := sendFiles(c.conn, files); err != nil {
		return err
	}
	if _, err := c.conn.Write(state); err != nil {
		return fmt.Errorf("handover: sending the state: %w", err)
	}
	return nil
}

// Commit tells the new process to take over. The caller must not read or
// write any carried device after it, and should exit. An error means the
// new process may not have heard it: Abort and resume (a new process
// without the commit exits untouched). After a nil return, call Running.
func (c *Child) Commit() error {
	if _, err := io.WriteString(c.conn, formatMessage(msgCommit, "")); err != nil {
		return fmt.Errorf("handover: commit: %w", err)
	}
	return nil
}

// Running waits (bounded) for the committed new process to say its tees
// run, which ends the pause, and lets go of the handover socket. The
// new process has taken over either way; an error only means the moment
// is unknown.
func (c *Child) Running() error {
	defer c.close()
	m, err := c.expect(msgRunning, "running", runningTimeout, runningTimeout)
	if err != nil {
		return err
	}
	c.Info = m.arg
	return nil
}

// Abort kills the new process (a rollback) and reaps it.
func (c *Child) Abort() {
	c.close()
	c.cmd.Process.Kill()
	<-c.exited
}

func (c *Child) close() {
	c.once.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

// readLines delivers the new process's messages until the socket ends.
func (c *Child) readLines() {
	defer close(c.lines)
	rd := bufio.NewReaderSize(c.conn, 4096)
	for {
		line, err := readLine(rd)
		if err != nil {
			c.lineErr = err
			return
		}
		m, err := parseMessage(line)
		if err != nil {
			c.lineErr = err
			return
		}
		select {
		case c.lines <- m:
		case <-c.done:
			return
		}
	}
}

// expect waits for the message want, the new process's end, or the end
// of wait, and says which in terms of phase and its nominal timeout.
func (c *Child) expect(want, phase string, wait, timeout time.Duration) (message, error) {
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	select {
	case m, ok := <-c.lines:
		if ok {
			return c.answer(m, want, phase)
		}
		return message{}, c.gone(phase)
	case <-c.exited:
		// Its last words may still be in flight.
		select {
		case m, ok := <-c.lines:
			if ok && m.kind == msgFail {
				return c.answer(m, want, phase)
			}
		case <-time.After(time.Second):
		}
		return message{}, fmt.Errorf("handover: the new process exited before it was %s: %v", phase, exitReason(c.err))
	case <-timer.C:
		return message{}, fmt.Errorf("handover: the new process was not %s within %s; killed it", phase, timeout.Round(time.Millisecond))
	}
}

func (c *Child) answer(m message, want, phase string) (message, error) {
	switch m.kind {
	case want:
		return m, nil
	case msgFail:
		return m, fmt.Errorf("handover: the new process failed: %s", m.arg)
	}
	return m, fmt.Errorf("handover: the new process said %q before it was %s", m.kind, phase)
}

// gone explains a socket that ended: the process died (its exit status
// is the best reason there is) or spoke out of turn.
func (c *Child) gone(phase string) error {
	if c.lineErr != nil && !errors.Is(c.lineErr, io.EOF) && errors.Is(c.lineErr, errBadMessage) {
		return fmt.Errorf("handover: the new process broke the protocol before it was %s: %w", phase, c.lineErr)
	}
	// A big process (a race-detector build) can take seconds to be
	// reaped on a loaded machine: wait as long as for an answer.
	select {
	case <-c.exited:
		return fmt.Errorf("handover: the new process exited before it was %s: %v", phase, exitReason(c.err))
	case <-time.After(max(c.timeout, 5*time.Second)):
		return fmt.Errorf("handover: the new process closed the handover socket before it was %s", phase)
	}
}

func readLine(rd *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, err := rd.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > maxLine+1 {
			return "", fmt.Errorf("%w: a line over %d bytes", errBadMessage, maxLine)
		}
		if err == nil {
			return string(b[:len(b)-1]), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func withoutHandover(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvFD+"=") && !strings.HasPrefix(kv, EnvProtocol+"=") {
			out = append(out, kv)
		}
	}
	return out
}
