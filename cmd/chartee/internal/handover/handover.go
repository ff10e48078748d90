// Package handover hands a running chartee process over to a new binary:
// the old process starts the new one, gives it open file descriptors and a
// state document, waits (bounded) for it to say it is ready, and then
// either commits (the new process takes over and the old one exits) or
// rolls back (the new process is killed and the old one carries on as if
// nothing happened).
//
// The exchange runs over a socketpair the new process inherits as fd 3;
// the carried files follow as fd 4, 5, ... in the order the old process
// listed them. The old process writes the state document (length-prefixed)
// on the socket; the new process answers one line, "ready INFO" or "fail
// REASON", and on "ready" waits for the old process's "commit" line before
// it touches any device. That second step is what makes a rollback safe:
// a new process that reports ready just as the old one gives up on it
// never reads a byte the old process also reads. A new process that loses
// the old one before the commit exits without touching anything.
//
// Why not github.com/cloudflare/tableflip, which handles inheritance of
// listeners and files and a readiness handshake: it always re-executes
// os.Args[0] (`chartee ctl upgrade --binary PATH` must start another
// file), allows one Upgrader per process (the daemon's tests run many
// daemons in one process), carries no state document and no reason for a
// failure (a new binary that cannot parse the config must be reported as
// such by `ctl upgrade`), and lets the new process run as soon as it is
// ready, while the old one must first confirm it has stopped for good.
// The file passing itself is plain exec ExtraFiles, which is all
// tableflip uses too.
package handover

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables the new process finds its inheritance by.
const (
	EnvFD    = "CHARTEE_HANDOVER_FD"    // the socketpair end ("3")
	EnvFiles = "CHARTEE_HANDOVER_FILES" // how many carried files follow it
)

// DefaultTimeout bounds how long the old process waits for the new one to
// report ready.
const DefaultTimeout = 10 * time.Second

// maxState bounds the state document a new process accepts.
const maxState = 256 << 20

// Request is what the old process hands over.
type Request struct {
	// Binary is the program to start; Args its arguments (without the
	// program name).
	Binary string
	Args   []string
	// Env is the new process's environment (nil: this process's), to
	// which the handover variables are added.
	Env []string
	// Files are passed as fd 4, 5, ... in this order. The caller keeps
	// its own copies open: on a rollback it needs them.
	Files []*os.File
	// State is the state document.
	State []byte
	// Timeout bounds the wait for ready (DefaultTimeout when 0).
	Timeout time.Duration
	// Stdout and Stderr of the new process (nil: this process's).
	Stdout, Stderr *os.File
}

// Child is a new process that has reported ready and waits for Commit.
type Child struct {
	// Info is what the new process said with its ready (its version).
	Info   string
	cmd    *exec.Cmd
	conn   *os.File
	exited chan struct{} // closed when the process has been reaped
	err    error         // its exit status, once exited is closed
}

// Pid is the new process's id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Commit tells the new process to take over. The caller must not read or
// write any carried device after it, and should exit.
func (c *Child) Commit() error {
	_, err := io.WriteString(c.conn, "commit\n")
	c.conn.Close()
	if err != nil {
		return fmt.Errorf("handover: commit: %w", err)
	}
	return nil
}

// Abort kills the new process (a rollback after it reported ready).
func (c *Child) Abort() {
	c.conn.Close()
	c.cmd.Process.Kill()
	<-c.exited
}

// Start starts the new process and waits until it reports ready. Any
// error means the new process is gone (killed and reaped) and the caller
// should resume; the error says why: it did not start, it exited (with
// the reason it gave), or it was not ready in time.
func Start(req Request) (*Child, error) {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("handover: socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(pair[0]), "handover")
	theirs := os.NewFile(uintptr(pair[1]), "handover-child")
	defer theirs.Close()

	cmd := exec.Command(req.Binary, req.Args...)
	env := req.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(withoutHandover(env), EnvFD+"=3", EnvFiles+"="+strconv.Itoa(len(req.Files)))
	cmd.ExtraFiles = append([]*os.File{theirs}, req.Files...)
	cmd.Stdin = nil
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
	// Starting a process puts its ExtraFiles in blocking mode, and
	// O_NONBLOCK belongs to the open file description that our own
	// sockets share with their duplicates: put back what was non-blocking,
	// or after a rollback no read deadline (and so no later freeze) would
	// work on them.
	restore := nonblocking(req.Files)
	err = cmd.Start()
	restore()
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("handover: starting %s: %w", req.Binary, err)
	}
	theirs.Close()
	c := &Child{cmd: cmd, conn: ours, exited: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.exited) }()
	if err := c.await(req); err != nil {
		c.Abort()
		return nil, err
	}
	return c, nil
}

// await sends the state and waits for the answer, the process's end or
// the timeout.
func (c *Child) await(req Request) error {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	go func() {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(req.State)))
		if _, err := c.conn.Write(n[:]); err == nil {
			c.conn.Write(req.State)
		}
	}()
	answer := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(c.conn).ReadString('\n')
		if err != nil {
			line = ""
		}
		answer <- strings.TrimSuffix(line, "\n")
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-answer:
		if info, ok := strings.CutPrefix(a, "ready"); ok {
			c.Info = strings.TrimPrefix(info, " ")
			return nil
		}
		if reason, ok := strings.CutPrefix(a, "fail "); ok {
			return fmt.Errorf("handover: the new process failed: %s", reason)
		}
		// The socket closed without an answer: the process is dying.
		// Its exit status is the best reason there is; a big process
		// (a race-detector build) can take seconds to be reaped on a
		// loaded machine, so wait for it as long as for the answer.
		select {
		case <-c.exited:
			return fmt.Errorf("handover: the new process exited before it was ready: %v", exitReason(c.err))
		case <-time.After(max(timeout, 5*time.Second)):
			return errors.New("handover: the new process closed the handover socket before it was ready")
		}
	case <-timer.C:
		return fmt.Errorf("handover: the new process was not ready within %s; killed it", timeout)
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
		if !strings.HasPrefix(kv, EnvFD+"=") && !strings.HasPrefix(kv, EnvFiles+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// nonblocking notes which files are in non-blocking mode and returns the
// function that puts them back into it.
func nonblocking(files []*os.File) func() {
	var nb []*os.File
	for _, f := range files {
		if fl, err := fcntl(f, unix.F_GETFL, 0); err == nil && fl&unix.O_NONBLOCK != 0 {
			nb = append(nb, f)
		}
	}
	return func() {
		for _, f := range nb {
			if fl, err := fcntl(f, unix.F_GETFL, 0); err == nil {
				fcntl(f, unix.F_SETFL, fl|unix.O_NONBLOCK)
			}
		}
	}
}

// fcntl runs fcntl on f's descriptor without Fd (which would itself put
// f into blocking mode).
func fcntl(f *os.File, cmd, arg int) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var res int
	var ferr error
	if err := rc.Control(func(fd uintptr) { res, ferr = unix.FcntlInt(fd, cmd, arg) }); err != nil {
		return 0, err
	}
	return res, ferr
}
