package backends

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

// serialTestTimeout bounds every wait in these tests; generous for a
// loaded machine under -race.
const serialTestTimeout = 10 * time.Second

// serialTestPty returns a pty pair: the master (non-blocking, so deadlines
// work) plays the far end of the line, the slave's path is the "serial
// port". Both are closed when the test ends.
func serialTestPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := tty.Pollable(m)
	m.Close()
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.Close(); s.Close() })
	return pm, s
}

// serialReadUntil reads from r until the collected bytes contain want,
// failing the test after serialTestTimeout.
func serialReadUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	type result struct {
		got string
		err error
	}
	done := make(chan result, 1)
	go func() {
		var buf bytes.Buffer
		p := make([]byte, 4096)
		for !strings.Contains(buf.String(), want) {
			n, err := r.Read(p)
			buf.Write(p[:n])
			if err != nil {
				done <- result{buf.String(), err}
				return
			}
		}
		done <- result{buf.String(), nil}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("read %q so far, waiting for %q: %v", res.got, want, res.err)
		}
		return res.got
	case <-time.After(serialTestTimeout):
		t.Fatalf("no %q after %v", want, serialTestTimeout)
		return ""
	}
}

// serialMasterReadUntil is serialReadUntil with a deadline on a pollable
// master, so no goroutine is left behind on failure.
func serialMasterReadUntil(t *testing.T, m *os.File, want string) string {
	t.Helper()
	if err := m.SetReadDeadline(time.Now().Add(serialTestTimeout)); err != nil {
		t.Fatal(err)
	}
	defer m.SetReadDeadline(time.Time{})
	var buf bytes.Buffer
	p := make([]byte, 4096)
	for !strings.Contains(buf.String(), want) {
		n, err := m.Read(p)
		buf.Write(p[:n])
		if err != nil {
			t.Fatalf("far end read %q so far, waiting for %q: %v", buf.String(), want, err)
		}
	}
	return buf.String()
}

func serialTestOpen(t *testing.T, path string) *Serial {
	t.Helper()
	spec := NewSerialSpec()
	spec.Path = path
	s, err := OpenSerial(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func serialFD(t *testing.T, s *Serial) int {
	t.Helper()
	fd := -1
	if err := tty.Control(s.f, func(n int) error { fd = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// serialAssertCloseUnblocksRead starts a Read on dev, closes dev and
// checks the Read returns.
func serialAssertCloseUnblocksRead(t *testing.T, dev chardev.Chardev) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := dev.Read(make([]byte, 64))
		done <- err
	}()
	// The Read may or may not have started blocking; Close must end it
	// either way.
	time.Sleep(20 * time.Millisecond)
	if err := dev.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Read after Close returned no error")
		}
	case <-time.After(serialTestTimeout):
		t.Fatal("Read still blocked after Close")
	}
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The trap this backend exists to avoid: go.bug.st/serial's Read panics on
// a descriptor >= 1024 (select(2)). Push the port above 1024 and use it.
func TestSerialHighFD(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 1200 {
		t.Fatalf("RLIMIT_NOFILE hard limit %d: cannot open the 1100 descriptors this test needs", lim.Max)
	}
	raised := lim
	raised.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)

	var filler []*os.File
	defer func() {
		for _, f := range filler {
			f.Close()
		}
	}()
	for range 1100 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		filler = append(filler, f)
	}

	master, slave := serialTestPty(t)
	s := serialTestOpen(t, slave.Name())
	libFD, err := serialPortFD(s.port)
	if err != nil {
		t.Fatal(err)
	}
	if fd := serialFD(t, s); fd < 1024 || libFD < 1024 {
		t.Fatalf("descriptors %d (ours) and %d (library) should be >= 1024 to exercise the select() limit", fd, libFD)
	}

	if _, err := master.Write([]byte("from device\n")); err != nil {
		t.Fatal(err)
	}
	serialReadUntil(t, s, "from device\n")
	if _, err := s.Write([]byte("to device\n")); err != nil {
		t.Fatal(err)
	}
	serialMasterReadUntil(t, master, "to device\n")

	serialAssertCloseUnblocksRead(t, s)
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// Line settings reach the device: read the termios back through the
// slave descriptor the test holds. A Linux pty forces 8 data bits and no
// parity, so the device can only show speed, stop bits and flow control;
// the backend still reports the 7E1 it was asked for.
func TestSerialLineSettings(t *testing.T) {
	_, slave := serialTestPty(t)
	s := serialTestOpen(t, slave.Name())

	got, err := s.LineSettings()
	if err != nil {
		t.Fatal(err)
	}
	var term *unix.Termios
	if want := (chardev.LineSettings{Baud: 115200, DataBits: 8}); got != want {
		t.Errorf("initial settings %v, want %v", got, want)
	}
	term = ptyTestTermios(t, slave)
	if term.Cflag&unix.CBAUD != unix.B115200 || term.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("after open: cflag %#x lflag %#x, want B115200 and raw", term.Cflag, term.Lflag)
	}

	want := chardev.LineSettings{Baud: 9600, DataBits: 7, Parity: chardev.ParityEven, StopBits: chardev.StopBits2, Flow: chardev.FlowRTSCTS}
	if err := s.SetLineSettings(want); err != nil {
		t.Fatal(err)
	}
	term = ptyTestTermios(t, slave)
	if term.Cflag&unix.CBAUD != unix.B9600 {
		t.Errorf("cflag %#x: baud bits %#x, want B9600", term.Cflag, term.Cflag&unix.CBAUD)
	}
	if term.Cflag&unix.CSTOPB == 0 || term.Cflag&unix.CRTSCTS == 0 {
		t.Errorf("cflag %#x: want CSTOPB and CRTSCTS", term.Cflag)
	}
	if got, _ := s.LineSettings(); got != want {
		t.Errorf("LineSettings %v, want %v", got, want)
	}

	// Zero baud and data bits keep the mode in force.
	if err := s.SetLineSettings(chardev.LineSettings{Flow: chardev.FlowXONXOFF}); err != nil {
		t.Fatal(err)
	}
	want = chardev.LineSettings{Baud: 9600, DataBits: 7, Flow: chardev.FlowXONXOFF}
	if got, _ := s.LineSettings(); got != want {
		t.Errorf("after partial set: %v, want %v", got, want)
	}
	term = ptyTestTermios(t, slave)
	if term.Cflag&unix.CBAUD != unix.B9600 || term.Iflag&unix.IXON == 0 || term.Cflag&unix.CRTSCTS != 0 {
		t.Errorf("after partial set: cflag %#x iflag %#x", term.Cflag, term.Iflag)
	}

	if err := s.SetLineSettings(chardev.LineSettings{StopBits: chardev.StopBits1Half}); !chardev.IsUnsupported(err) {
		t.Errorf("1.5 stop bits: %v, want unsupported", err)
	}
}

// A pty has no modem lines: that is reported as unsupported, never as a
// failure, and does not stop the port from opening with dtr/rts set.
func TestSerialModemLinesOnPty(t *testing.T) {
	_, slave := serialTestPty(t)
	spec := NewSerialSpec()
	spec.Path = slave.Name()
	on, off := true, false
	spec.DTR, spec.RTS = &off, &on
	s, err := OpenSerial(context.Background(), spec)
	if err != nil {
		t.Fatalf("open with dtr/rts on a pty: %v", err)
	}
	defer s.Close()

	for name, err := range map[string]error{
		"SetDTR":  s.SetDTR(true),
		"SetRTS":  s.SetRTS(false),
		"generic": chardev.SetModemLines(s, &on, &on),
	} {
		if !chardev.IsUnsupported(err) || !errors.Is(err, chardev.ErrUnsupported) {
			t.Errorf("%s: %v, want an error wrapping ErrUnsupported", name, err)
		}
	}
	if _, err := s.ModemStatus(); !errors.Is(err, chardev.ErrUnsupported) {
		t.Errorf("ModemStatus: %v, want an error wrapping ErrUnsupported", err)
	}
	// Linux accepts a break on a pty and does nothing.
	if err := s.Break(time.Millisecond); err != nil && !chardev.IsUnsupported(err) {
		t.Errorf("Break: %v", err)
	}
}

// When the device vanishes Read fails; once the path is back, opening it
// again through the factory works. The path is a symlink, as with
// /dev/serial/by-id, first to one pty and then to another.
func TestSerialReopenAfterVanish(t *testing.T) {
	link := filepath.Join(t.TempDir(), "usb-serial")
	masterA, slaveA := serialTestPty(t)
	if err := os.Symlink(slaveA.Name(), link); err != nil {
		t.Fatal(err)
	}
	f, err := chardev.Lookup("serial")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*SerialSpec)
	spec.Path = link
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if d := chardev.Describe(dev); !strings.Contains(d, link) || !strings.Contains(d, slaveA.Name()) {
		t.Errorf("Describe() = %q, want the link and its target", d)
	}

	if _, err := masterA.Write([]byte("A")); err != nil {
		t.Fatal(err)
	}
	serialReadUntil(t, dev, "A")

	// Unplug: the far end disappears, then the path.
	masterA.Close()
	slaveA.Close()
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := dev.Read(make([]byte, 16))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if err == nil || err == io.EOF || !strings.Contains(err.Error(), "disconnected") {
			t.Fatalf("Read after unplug: %v, want a disconnect error", err)
		}
	case <-time.After(serialTestTimeout):
		t.Fatal("Read did not fail after the device vanished")
	}
	dev.Close()

	if _, err := f.Open(context.Background(), spec); err == nil || !strings.Contains(err.Error(), link) {
		t.Fatalf("open of missing path: %v, want an error naming %s", err, link)
	}

	// Plug back in, as a different device node.
	masterB, slaveB := serialTestPty(t)
	if err := os.Symlink(slaveB.Name(), link); err != nil {
		t.Fatal(err)
	}
	dev2, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev2.Close()
	if _, err := masterB.Write([]byte("B")); err != nil {
		t.Fatal(err)
	}
	serialReadUntil(t, dev2, "B")
	if _, err := dev2.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	serialMasterReadUntil(t, masterB, "back")
}

func TestSerialExclusive(t *testing.T) {
	_, slave := serialTestPty(t)
	s := serialTestOpen(t, slave.Name())
	if os.Geteuid() == 0 {
		// Root bypasses TIOCEXCL, so check the flag the kernel reports.
		var excl int
		err := tty.Control(s.f, func(fd int) error {
			var err error
			excl, err = unix.IoctlGetInt(fd, unix.TIOCGEXCL)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if excl == 0 {
			t.Error("TIOCGEXCL = 0, want exclusive mode")
		}
		return
	}
	if f, err := os.OpenFile(slave.Name(), os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
		f.Close()
		t.Error("second open of an exclusive port succeeded")
	}
}

func TestSerialSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*SerialSpec)
		key  string
	}{
		{func(s *SerialSpec) { s.Path = "" }, "path"},
		{func(s *SerialSpec) { s.Baud = 0 }, "baud"},
		{func(s *SerialSpec) { s.DataBits = 9 }, "data_bits"},
		{func(s *SerialSpec) { s.Parity = "sometimes" }, "parity"},
		{func(s *SerialSpec) { s.StopBits = "3" }, "stop_bits"},
		{func(s *SerialSpec) { s.StopBits = "1.5" }, "stop_bits"},
		{func(s *SerialSpec) { s.Flow = "dsrdtr" }, "flow"},
	} {
		spec := NewSerialSpec()
		spec.Path = "/dev/ttyUSB0"
		tc.edit(spec)
		err := spec.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "serial: "+tc.key+":") {
			t.Errorf("%s: Validate() = %v, want an error naming the key", tc.key, err)
		}
	}
	spec := NewSerialSpec()
	spec.Path = "/dev/ttyUSB0"
	if err := spec.Validate(); err != nil {
		t.Errorf("defaults with a path: %v", err)
	}
	if _, err := OpenSerial(context.Background(), &SerialSpec{Path: "/dev/x"}); err == nil {
		t.Error("zero spec opened")
	}
}

func TestSerialOpenMissing(t *testing.T) {
	spec := NewSerialSpec()
	spec.Path = filepath.Join(t.TempDir(), "ttyUSB9")
	_, err := OpenSerial(context.Background(), spec)
	if err == nil || !strings.HasPrefix(err.Error(), "serial: open "+spec.Path) {
		t.Fatalf("err = %v, want serial: open %s: ...", err, spec.Path)
	}
}
