package backends

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

// stdioTestPipe returns a pipe in blocking mode, like the descriptors a
// shell hands a program (os.Pipe would make them non-blocking).
func stdioTestPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func stdioNonblock(t *testing.T, f *os.File) bool {
	t.Helper()
	var nb bool
	err := tty.Control(f, func(fd int) error {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		nb = fl&unix.O_NONBLOCK != 0
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return nb
}

func TestStdioDataAndRestore(t *testing.T) {
	inR, inW := stdioTestPipe(t)
	outR, outW := stdioTestPipe(t)
	s, err := stdioFrom(inR, outW)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inW.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	serialReadUntil(t, s, "typed\n")
	if _, err := s.Write([]byte("printed\n")); err != nil {
		t.Fatal(err)
	}
	serialReadUntil(t, outR, "printed\n")

	serialAssertCloseUnblocksRead(t, s)
	if stdioNonblock(t, inR) || stdioNonblock(t, outW) {
		t.Error("stdin or stdout left in non-blocking mode after Close")
	}
	// The process's own descriptors stay usable.
	if _, err := outW.Write([]byte("after\n")); err != nil {
		t.Errorf("stdout after Close: %v", err)
	}
}

func TestStdioEOF(t *testing.T) {
	inR, inW := stdioTestPipe(t)
	_, outW := stdioTestPipe(t)
	s, err := stdioFrom(inR, outW)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inW.Write([]byte("last"))
	inW.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "last" {
		t.Errorf("ReadAll = %q, %v; want \"last\", nil", got, err)
	}
}

// Only one device may own the process's stdin and stdout.
func TestStdioSingleUse(t *testing.T) {
	f, err := chardev.Lookup("stdio")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	_, err2 := f.Open(context.Background(), spec)
	if err := dev.Close(); err != nil {
		t.Error(err)
	}
	if err2 == nil || !strings.HasPrefix(err2.Error(), "stdio: ") {
		t.Errorf("second open: %v, want a stdio: error", err2)
	}
	dev, err = f.Open(context.Background(), spec)
	if err != nil {
		t.Fatalf("open after Close: %v", err)
	}
	dev.Close()
	if _, err := dev.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}
