package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

func init() {
	chardev.Register("exec", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewExecSpec() },
		Open:    opener("exec", StartExec),
		Input:   true,
		// A child process cannot change parents: it would be killed (or
		// orphaned, its pty closed) when the old chartee exits.
		NotCarried: "its child process cannot be re-parented to the new chartee",
	})
}

var (
	_ chardev.Chardev   = (*Exec)(nil)
	_ chardev.Describer = (*Exec)(nil)
)

// execKillGrace is how long a program gets to exit after SIGTERM before
// its process group is killed.
const execKillGrace = time.Second

// ExecSpec is the configuration of a program whose terminal is the device,
// such as `ipmitool -I lanplus -H bmc sol activate` or `virsh console vm`.
type ExecSpec struct {
	// Command is the program and its arguments. It is executed directly,
	// never through a shell: no word splitting, globbing or variables. A
	// name without a slash is looked up in chartee's own PATH. The command
	// line shows in status output and error messages (and in ps), so pass
	// secrets through Env (ipmitool -E reads IPMI_PASSWORD) or a file.
	Command []string `yaml:"command" json:"command"`
	// Env holds KEY=VALUE entries added to chartee's environment.
	Env []string `yaml:"env" json:"env"`
	// Dir is the working directory; empty means chartee's.
	Dir string `yaml:"dir" json:"dir"`
	// Pty gives the program a pseudo-terminal (80x24, the kernel's default
	// cooked mode, as a terminal emulator would) as its controlling
	// terminal and stdin, stdout and stderr. Console programs expect that
	// and switch it to raw mode themselves. With false the program gets
	// pipes instead, and its stderr is merged into the device's output so
	// its error messages reach the legs.
	Pty bool `yaml:"pty" json:"pty"`
}

// NewExecSpec returns the defaults: run on a pty.
func NewExecSpec() *ExecSpec { return &ExecSpec{Pty: true} }

// Validate checks the options; errors name the key.
func (s *ExecSpec) Validate() error {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return errors.New("exec: command: required (a program and its arguments, as a list)")
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("exec: env: %q: want KEY=VALUE", kv)
		}
	}
	return nil
}

// Exec is a running program used as a device: what it prints is read,
// what is written is typed into it.
//
// The program runs in its own session and process group, so Close can end
// it together with everything it started. Its exit is noticed with
// waitid(WNOWAIT), which leaves it a zombie until Close reaps it: as long
// as the zombie exists its pid cannot be reused, so signalling the process
// group by that number in Close can never hit an unrelated process.
type Exec struct {
	argv []string
	cmd  *exec.Cmd
	out  *os.File // pty master or read end of the output pipe
	in   *os.File // pty master (same file) or write end of the input pipe

	exited chan struct{} // closed when the program has exited (not yet reaped)

	closeOnce sync.Once
	closeErr  error
}

// StartExec starts the program spec describes.
func StartExec(ctx context.Context, spec *ExecSpec) (*Exec, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	// Checked here because a failed chdir in the child comes back as
	// "fork/exec <program>: no such file or directory", blaming the program.
	if spec.Dir != "" {
		if st, err := os.Stat(spec.Dir); err != nil {
			return nil, fmt.Errorf("exec: dir: %w", err)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("exec: dir: %s: not a directory", spec.Dir)
		}
	}
	// Not exec.CommandContext: the device outlives the context used to
	// open it.
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	e := &Exec{argv: spec.Command, cmd: cmd, exited: make(chan struct{})}

	var err error
	if spec.Pty {
		err = e.startPty()
	} else {
		err = e.startPipes()
	}
	if err != nil {
		return nil, fmt.Errorf("exec: start %s: %w", execQuote(spec.Command), err)
	}
	go e.awaitExit(cmd.Process.Pid)
	return e, nil
}

// startPty runs the program on a new pty; creack/pty makes it a session
// leader with the pty as controlling terminal (Setsid, Setctty).
func (e *Exec) startPty() error {
	master, err := pty.StartWithSize(e.cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		return err
	}
	// creack/pty leaves the master blocking; Close must wake Read.
	pm, err := tty.Pollable(master)
	master.Close() // hangs up the pty if Pollable failed, ending the program
	if err != nil {
		e.killGroup(syscall.SIGKILL)
		e.cmd.Wait()
		return err
	}
	e.out, e.in = pm, pm
	return nil
}

// startPipes runs the program on pipes, stderr merged into stdout, in a
// new session with no controlling terminal.
func (e *Exec) startPipes() error {
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return err
	}
	e.cmd.Stdin, e.cmd.Stdout, e.cmd.Stderr = inR, outW, outW
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = e.cmd.Start()
	// The child has its copies; ours would keep the pipes from reporting
	// EOF and EPIPE.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return err
	}
	e.out, e.in = outR, inW
	return nil
}

// awaitExit closes e.exited when the program exits, without reaping it.
func (e *Exec) awaitExit(pid int) {
	defer close(e.exited)
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

func (e *Exec) killGroup(sig syscall.Signal) {
	// The program is a session and group leader: its pgid is its pid.
	unix.Kill(-e.cmd.Process.Pid, sig)
}

// Describe names the program.
func (e *Exec) Describe() string { return "exec " + execQuote(e.argv) }

// Read returns the program's output. Once the program has exited and its
// output is drained, Read returns io.EOF (a pty master reports EIO there,
// which is translated).
func (e *Exec) Read(p []byte) (int, error) {
	n, err := e.out.Read(p)
	switch {
	case err == nil || err == io.EOF:
	case tty.IsHangup(err):
		err = io.EOF
	default:
		err = fmt.Errorf("exec: read %s: %w", e.argv[0], err)
	}
	return n, err
}

// Write types p into the program.
func (e *Exec) Write(p []byte) (int, error) {
	n, err := e.in.Write(p)
	if err != nil {
		err = fmt.Errorf("exec: write %s: %w", e.argv[0], err)
	}
	return n, err
}

// Close ends the program: its terminal or pipes are closed (a pty hangup
// sends it SIGHUP), its process group gets SIGTERM, and whatever is left
// after execKillGrace gets SIGKILL. The program is reaped before Close
// returns. Safe to call more than once.
func (e *Exec) Close() error {
	e.closeOnce.Do(func() {
		errs := []error{e.out.Close()}
		if e.in != e.out {
			errs = append(errs, e.in.Close())
		}
		e.killGroup(syscall.SIGTERM)
		grace := time.NewTimer(execKillGrace)
		select {
		case <-e.exited:
		case <-grace.C:
		}
		grace.Stop()
		// Also reaches children left in the group after the leader exited;
		// the unreaped leader keeps the pgid from being reused.
		e.killGroup(syscall.SIGKILL)
		<-e.exited
		e.cmd.Wait() // reap; the exit status of a killed program is no news
		if err := errors.Join(errs...); err != nil {
			e.closeErr = fmt.Errorf("exec: close %s: %w", e.argv[0], err)
		}
	})
	return e.closeErr
}

// execQuote renders argv for messages, quoting arguments that need it.
func execQuote(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;&|<>()*?[]{}~#") {
			parts[i] = fmt.Sprintf("%q", a)
		} else {
			parts[i] = a
		}
	}
	return strings.Join(parts, " ")
}
