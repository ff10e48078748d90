package harness

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a program started by a test, in its own process group, with its
// stdout and stderr collected. It is killed (the whole group) when the
// test ends, whatever happened.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error // valid once done is closed
}

// Start runs program with args. The process group is SIGKILLed at cleanup
// unless it already exited; its output is logged when the test failed.
func Start(t testing.TB, name, program string, args ...string) *Proc {
	t.Helper()
	return StartCmd(t, name, exec.Command(program, args...))
}

// StartCmd is Start for a prepared command (Dir, Env, Stdin set by the
// caller); Stdout and Stderr are taken over when nil.
func StartCmd(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = &p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.out
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if !cmd.SysProcAttr.Setsid {
		cmd.SysProcAttr.Setpgid = true
	}
	// A grandchild holding our output pipe must not hang Wait forever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: starting %s: %v", name, err)
	}
	return adoptStarted(t, p)
}

// adopt takes over a command something else started (pty.Start): it must
// have been started in its own session or process group.
func adopt(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	return adoptStarted(t, &Proc{Name: name, Cmd: cmd, done: make(chan struct{})})
}

func adoptStarted(t testing.TB, p *Proc) *Proc {
	name, cmd := p.Name, p.Cmd
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("e2e: output of %s (%s):\n%s", name, cmd.Path, p.Output())
		}
	})
	return p
}

// Pid is the process id (and process group id).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Output is what the process wrote to stdout and stderr so far (when the
// caller did not redirect them).
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process (not the group).
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("e2e: %s already exited", p.Name)
	}
	return p.Cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the process to end and returns its exit
// error (nil on exit status 0).
func (p *Proc) Wait(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("e2e: %s still running after %v", p.Name, timeout)
	}
}

// Kill SIGKILLs the whole process group and waits for the process to be
// reaped. It is safe to call more than once.
func (p *Proc) Kill() {
	// Even when the leader is gone, its group may not be.
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
