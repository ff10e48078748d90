package backends

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"chartee/chardev"
)

// TestSerialCarry: a serial port carried to a new process (on a
// descriptor above 1024, where go.bug.st/serial's select would panic) is
// never closed: what the device sent while frozen reaches the new
// process exactly once, its line settings and termios are those in force,
// and it reads, writes and closes like any port.
func TestSerialCarry(t *testing.T) {
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

	master, slave := serialTestPty(t)
	spec := NewSerialSpec()
	spec.Path = slave.Name()
	old := serialTestOpen(t, slave.Name())
	// Changed while it runs (an RFC 2217 client would): what is in force
	// continues, not what the config opened it with.
	if err := old.SetLineSettings(chardev.LineSettings{Baud: 57600, DataBits: 8, StopBits: chardev.StopBits2, Flow: chardev.FlowRTSCTS}); err != nil {
		t.Fatal(err)
	}
	termBefore := ptyTestTermios(t, slave)
	master.Write([]byte("before\n"))
	serialReadUntil(t, old, "before\n")
	if err := old.Freeze(); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Read(make([]byte, 8)); !errors.Is(err, chardev.ErrFrozen) {
		t.Fatalf("Read on a frozen port: %v, want ErrFrozen", err)
	}
	master.Write([]byte("sent while frozen\n"))
	c, err := old.Carry()
	if err != nil {
		t.Fatal(err)
	}

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
	dev, err := serialInherit(spec, c)
	if err != nil {
		t.Fatal(err)
	}
	ns := dev.(*Serial)
	defer ns.Close()
	if fd := serialFD(t, ns); fd < 1024 {
		t.Fatalf("inherited descriptor %d: want >= 1024 to exercise the select() limit", fd)
	}
	// The old process exits: its descriptors close, nothing more (no
	// TIOCNXCL, no termios change).
	libFD, err := serialPortFD(old.port)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(libFD)
	old.f.Close()

	if got := serialReadUntil(t, ns, "sent while frozen\n"); got != "sent while frozen\n" {
		t.Fatalf("the new process read %q", got)
	}
	if l, _ := ns.LineSettings(); l.Baud != 57600 || l.StopBits != chardev.StopBits2 || l.Flow != chardev.FlowRTSCTS {
		t.Fatalf("line settings %v after the carry", l)
	}
	if termAfter := ptyTestTermios(t, slave); *termAfter != *termBefore {
		t.Fatalf("termios changed across the carry:\n%+v\n%+v", termAfter, termBefore)
	}
	if _, err := ns.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	serialMasterReadUntil(t, master, "after\n")
	serialAssertCloseUnblocksRead(t, ns)
}

// TestSerialInheritRefusesAChangedConfig: a new config naming another
// port, or other line settings than the port was opened with, does not
// take the carried port (a reload would never apply the change), and
// says why.
func TestSerialInheritRefusesAChangedConfig(t *testing.T) {
	_, slave := serialTestPty(t)
	old := serialTestOpen(t, slave.Name())
	old.Freeze()
	defer old.Thaw()
	other := NewSerialSpec()
	other.Path = "/dev/ttyUSB9"
	slower := NewSerialSpec()
	slower.Path, slower.Baud = slave.Name(), 9600
	for _, c := range []struct {
		spec *SerialSpec
		want string
	}{{other, "the new config wants /dev/ttyUSB9"}, {slower, "was opened as 115200 8N1 flow=none, the new config wants 9600 8N1"}} {
		carried, err := old.Carry()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := serialInherit(c.spec, carried); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("inherit by %+v: %v, want %q", c.spec, err, c.want)
		}
		if _, err := carried.Files[0].Stat(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("the refused descriptor is still open: %v", err)
		}
	}
}

// FuzzSerialCarryState: any carried port state is decoded or refused
// with an error, never a panic; a decoded one has valid line settings.
func FuzzSerialCarryState(f *testing.F) {
	f.Add([]byte(`{"path":"/dev/ttyUSB0","resolved":"/dev/ttyUSB0","line":{"baud":115200,"data_bits":8}}`))
	f.Add([]byte(`{"path":"/dev/ttyS0","line":{"baud":-1}}`))
	f.Add([]byte(`{"path":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeSerialState(data)
		if err == nil && st.Line.Validate() != nil {
			t.Fatalf("accepted invalid line settings %+v", st.Line)
		}
	})
}
