package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

func init() {
	chardev.Register("stdio", chardev.Factory{
		NewSpec: func() chardev.Spec { return &StdioSpec{} },
		Open:    opener("stdio", OpenStdio),
		Input:   true,
		// The new process's stdin and stdout are not the terminal the
		// old one was started on (a daemon's are /dev/null or a log).
		NotCarried: "chartee's own stdin and stdout are not handed to the new process",
	})
}

var (
	_ chardev.Chardev   = (*Stdio)(nil)
	_ chardev.Describer = (*Stdio)(nil)
)

// StdioSpec configures the process's own stdin and stdout as a device; it
// has no options.
type StdioSpec struct{}

// Validate accepts everything: there is nothing to check.
func (*StdioSpec) Validate() error { return nil }

// Stdio is chartee's stdin and stdout used as a device, for running in the
// foreground: what the device reads is what is typed, what is written to
// it is printed. The terminal is left in whatever mode it is in (normally
// line-buffered with local echo).
//
// To let Close wake a blocked Read, the device reads and writes duplicates
// of descriptors 0 and 1 served by the runtime poller. That needs
// O_NONBLOCK, which lives in the open file description shared with the
// shell that started chartee, so Close restores the original mode; for the
// same reason only one Stdio can be open at a time. Stdin that cannot be
// polled (a regular file, /dev/null) is read directly: such reads never
// block for long.
type Stdio struct {
	in, out   *os.File // pollable duplicates
	restore   func() error
	closeOnce sync.Once
	closeErr  error
}

var (
	stdioMu   sync.Mutex
	stdioOpen bool
)

// OpenStdio opens the process's stdin and stdout as a device.
func OpenStdio(ctx context.Context, _ *StdioSpec) (*Stdio, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("stdio: %w", err)
	}
	stdioMu.Lock()
	defer stdioMu.Unlock()
	if stdioOpen {
		return nil, errors.New("stdio: already in use by another device")
	}
	s, err := stdioFrom(os.Stdin, os.Stdout)
	if err != nil {
		return nil, err
	}
	stdioOpen = true
	release := s.restore
	s.restore = func() error {
		err := release()
		stdioMu.Lock()
		stdioOpen = false
		stdioMu.Unlock()
		return err
	}
	return s, nil
}

// stdioFrom builds a Stdio on any pair of files; in and out stay open and
// get their blocking mode back on Close.
func stdioFrom(in, out *os.File) (*Stdio, error) {
	inMode, err := stdioSaveMode(in)
	if err != nil {
		return nil, err
	}
	outMode, err := stdioSaveMode(out)
	if err != nil {
		return nil, err
	}
	s := &Stdio{restore: func() error { return errors.Join(inMode(), outMode()) }}
	if s.in, err = tty.Pollable(in); err != nil {
		s.restore()
		return nil, fmt.Errorf("stdio: stdin: %w", err)
	}
	if s.out, err = tty.Pollable(out); err != nil {
		s.in.Close()
		s.restore()
		return nil, fmt.Errorf("stdio: stdout: %w", err)
	}
	return s, nil
}

// stdioSaveMode records whether f is in non-blocking mode and returns a
// function that puts it back.
func stdioSaveMode(f *os.File) (func() error, error) {
	var nonblock bool
	err := tty.Control(f, func(fd int) error {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		nonblock = fl&unix.O_NONBLOCK != 0
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stdio: %s: %w", f.Name(), err)
	}
	return func() error {
		return tty.Control(f, func(fd int) error { return unix.SetNonblock(fd, nonblock) })
	}, nil
}

// Describe names the device.
func (*Stdio) Describe() string { return "stdio" }

// Read returns what is typed; io.EOF at end of input.
func (s *Stdio) Read(p []byte) (int, error) {
	n, err := s.in.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("stdio: read: %w", err)
	}
	return n, err
}

// Write prints p.
func (s *Stdio) Write(p []byte) (int, error) {
	n, err := s.out.Write(p)
	if err != nil {
		err = fmt.Errorf("stdio: write: %w", err)
	}
	return n, err
}

// Close wakes pending Reads and Writes and gives stdin and stdout their
// original mode back; the process's own descriptors stay open. Safe to
// call more than once.
func (s *Stdio) Close() error {
	s.closeOnce.Do(func() {
		err := errors.Join(s.in.Close(), s.out.Close(), s.restore())
		if err != nil {
			s.closeErr = fmt.Errorf("stdio: close: %w", err)
		}
	})
	return s.closeErr
}
