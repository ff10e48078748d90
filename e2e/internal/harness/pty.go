package harness

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Terminal is a program running in a pty, as a person would run it: the
// test types into the master and records what the program shows.
type Terminal struct {
	Proc   *Proc
	Master *os.File // non-blocking, so closing it stops the recorder
	Screen *Recorder
}

// StartTerminal runs program in a new pty (its own session, the pty its
// controlling terminal) and records its output.
func StartTerminal(t testing.TB, name, program string, args ...string) *Terminal {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Env = append(os.Environ(), "TERM=dumb", "LANG=C")
	master, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 200})
	if err != nil {
		t.Fatalf("e2e: starting %s in a pty: %v", name, err)
	}
	nb, err := nonBlocking(master)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	p := adopt(t, name, cmd)
	term := &Terminal{Proc: p, Master: nb}
	term.Screen = Record(t, name, nb)
	return term
}

// Type writes s to the program as keystrokes.
func (term *Terminal) Type(t testing.TB, s string) {
	t.Helper()
	if _, err := term.Master.WriteString(s); err != nil {
		t.Fatalf("e2e: typing into %s: %v", term.Proc.Name, err)
	}
}

// nonBlocking returns a pollable duplicate of f (creack/pty hands out a
// blocking master, whose Read a Close cannot interrupt) and closes f.
func nonBlocking(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("e2e: dup %s: %w", f.Name(), err)
	}
	f.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("e2e: non-blocking %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// OpenTTY opens a terminal device (a pty slave, a socat link) read-write,
// non-blocking and without making it the controlling terminal.
func OpenTTY(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := OpenTTYFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// OpenTTYFile is OpenTTY for a caller without a test: non-blocking, so
// deadlines work.
func OpenTTYFile(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("e2e: open %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Telnet runs the real telnet client against addr (host:port) in a pty.
// It returns once telnet reports the connection, with the offset in
// Screen just past telnet's own greeting lines: from there on, Screen is
// what the server sent.
func Telnet(t testing.TB, name, addr string) (*Terminal, int) {
	t.Helper()
	bin := RequireProgram(t, "telnet", "telnet")
	host, port, err := splitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	term := StartTerminal(t, name, bin, host, port)
	at := term.Screen.WaitFor(t, "Escape character is '^]'.\r\n", 0, timeoutShort)
	// Until telnet has agreed to the server's WILL ECHO it is in line mode
	// and the pty echoes what is typed locally, which would add bytes to the
	// screen that the server never sent. It switches the terminal to
	// no-echo when it has.
	deadline := time.Now().Add(timeoutShort)
	for term.Echoes(t) {
		if time.Now().After(deadline) {
			t.Fatalf("e2e: %s: telnet did not switch to character mode (remote echo) within %v", name, timeoutShort)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return term, at
}

// Echoes reports whether the terminal echoes typed characters itself (the
// ECHO flag of the pty's termios, which the master shares with the slave).
func (term *Terminal) Echoes(t testing.TB) bool {
	t.Helper()
	var tio *unix.Termios
	var err error
	rc, cerr := term.Master.SyscallConn()
	if cerr != nil {
		t.Fatal(cerr)
	}
	rc.Control(func(fd uintptr) { tio, err = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
	if err != nil {
		t.Fatalf("e2e: %s: reading the pty's termios: %v", term.Proc.Name, err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// OutputWithTTY runs program with a pty as its controlling terminal and
// stdin, but its stdout going to a pipe, and returns that output unchanged
// by any terminal. Some tools (asciinema cat) insist on opening /dev/tty
// even when only their output matters.
func OutputWithTTY(t testing.TB, program string, args ...string) ([]byte, error) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatalf("e2e: opening a pty: %v", err)
	}
	defer master.Close()
	cmd := exec.Command(program, args...)
	var stdout, stderr syncBuffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		slave.Close()
		return nil, err
	}
	slave.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(timeoutShort):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = fmt.Errorf("timed out after %v", timeoutShort)
		<-done
	}
	if err != nil {
		return nil, fmt.Errorf("%s %v: %v: %s", program, args, err, stderr.String())
	}
	return []byte(stdout.String()), nil
}
