package backends

import (
	"errors"
	"os"
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
	spec.Baud, spec.StopBits, spec.Flow = 57600, "2", "rtscts"
	old := serialTestOpen(t, slave.Name())
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

// TestSerialInheritRefusesAnotherPort: a new config naming another port
// does not take the carried one, and says so.
func TestSerialInheritRefusesAnotherPort(t *testing.T) {
	_, slave := serialTestPty(t)
	old := serialTestOpen(t, slave.Name())
	old.Freeze()
	c, err := old.Carry()
	if err != nil {
		t.Fatal(err)
	}
	spec := NewSerialSpec()
	spec.Path = "/dev/ttyUSB9"
	if _, err := serialInherit(spec, c); err == nil {
		t.Fatal("inherited by a config naming another port")
	}
	if _, err := c.Files[0].Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the refused descriptor is still open: %v", err)
	}
	old.Thaw()
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
