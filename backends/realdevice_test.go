package backends

// Backends run inside a real tee (package tee) against real devices and
// programs: a socat pty pair as a serial line, /dev/full as a full disk,
// asciinema playing a capture, programs attaching to a pty leg, a flood of
// TCP clients, UDP peers.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"chartee/backends/capture"
	"chartee/backends/internal/tty"
	"chartee/chardev"
	"chartee/tee"
)

// rdEvents collects a tee's events for later inspection.
type rdEvents struct {
	mu     sync.Mutex
	events []tee.Event
	done   chan struct{}
}

func rdSubscribe(t *testing.T, tt *tee.Tee) *rdEvents {
	t.Helper()
	sub := tt.Subscribe(1024)
	e := &rdEvents{done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for ev := range sub.C {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close(); <-e.done })
	return e
}

// find returns the first event that matches.
func (e *rdEvents) find(match func(tee.Event) bool) (tee.Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.events {
		if match(ev) {
			return ev, true
		}
	}
	return tee.Event{}, false
}

// waitFor waits for an event that matches and returns it.
func (e *rdEvents) waitFor(t *testing.T, what string, match func(tee.Event) bool) tee.Event {
	t.Helper()
	var ev tee.Event
	rcWait(t, what, func() bool {
		var ok bool
		ev, ok = e.find(match)
		return ok
	})
	return ev
}

// rdLeg returns the stats of the live leg of backend name, if one.
func rdLeg(tt *tee.Tee, name string) (tee.LegStats, bool) {
	for _, l := range tt.Stats().Legs {
		if l.Backend == name {
			return l, true
		}
	}
	return tee.LegStats{}, false
}

// rdRaiseFDLimit lifts the soft RLIMIT_NOFILE to the hard limit for the
// test, failing if the hard limit cannot hold want descriptors.
func rdRaiseFDLimit(t *testing.T, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < want {
		t.Fatalf("RLIMIT_NOFILE hard limit %d: this test needs %d descriptors", lim.Max, want)
	}
	raised := lim
	raised.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

// rdFillFDs opens n descriptors of /dev/null, so whatever is opened next
// gets a number above them.
func rdFillFDs(t *testing.T, n int) {
	t.Helper()
	files := make([]*os.File, 0, n)
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	for range n {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
}

// rdSocat is a socat process joining two ptys, reachable at two links:
// a null-modem cable between two serial ports.
type rdSocat struct {
	cmd  *exec.Cmd
	a, b string
}

func rdStartSocat(t *testing.T, bin, a, b string) *rdSocat {
	t.Helper()
	s := &rdSocat{a: a, b: b}
	s.cmd = exec.Command(bin, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	rcWait(t, "socat to make its links", func() bool {
		_, errA := os.Stat(a)
		_, errB := os.Stat(b)
		return errA == nil && errB == nil
	})
	return s
}

// stop ends socat the polite way, so it removes its links; the device
// vanishes like an unplugged USB adapter.
func (s *rdSocat) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(rcTimeout):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// rdOpenEnd opens the far end of a socat cable.
func rdOpenEnd(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// rdConnReadFull reads exactly len(want) bytes from c and compares.
func rdConnReadFull(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(rcTimeout))
	buf := make([]byte, len(want))
	if n, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %q, waiting for %q: %v", buf[:n], want, err)
	}
	if string(buf) != want {
		t.Fatalf("read %q, want %q", buf, want)
	}
}

// TestRealSerialSocatThroughTee: the serial backend as a tee's frontend on
// a socat pty pair, opened with more than 1024 descriptors in use (the
// select() trap of go.bug.st/serial). Line settings reach the port (read
// back with stty), the pty's missing modem lines are "unsupported" and not
// a failure, and when socat goes away the frontend is reported lost with
// the reason; when the path comes back the tee reopens it, replays the line
// settings, and data flows again.
func TestRealSerialSocatThroughTee(t *testing.T) {
	socat := rcProgram(t, "socat", "socat")
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "ttyS-chartee"), filepath.Join(dir, "ttyS-device")

	rdRaiseFDLimit(t, 1300)
	rdFillFDs(t, 1100)

	cable := rdStartSocat(t, socat, pathA, pathB)
	var mu sync.Mutex
	var opened []*Serial
	spec := NewSerialSpec()
	spec.Path = pathA
	// Not exclusive, so stty can open the port to read it back even when
	// the test does not run as root.
	spec.Exclusive = false
	tt := rcNewTee(t, tee.Options{
		Frontend: chardev.OpenFunc(func(ctx context.Context) (chardev.Chardev, error) {
			s, err := OpenSerial(ctx, spec)
			if err == nil {
				mu.Lock()
				opened = append(opened, s)
				mu.Unlock()
			}
			return s, err
		}),
		Reconnect: tee.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	events := rdSubscribe(t, tt)
	current := func() *Serial {
		mu.Lock()
		defer mu.Unlock()
		return opened[len(opened)-1]
	}
	if fd := serialFD(t, current()); fd < 1024 {
		t.Fatalf("port descriptor %d: want >= 1024 to exercise the select() limit", fd)
	}
	addr := rcListen(t, tt, "net", tee.LegOptions{Input: true}, nil)
	client := netDial(t, "tcp", addr)
	rcWait(t, "the client leg", func() bool { return rcLegCount(tt, "net") == 1 })

	roundTrip := func(device *os.File, tag string) {
		t.Helper()
		if _, err := device.Write([]byte("from device " + tag)); err != nil {
			t.Fatal(err)
		}
		rdConnReadFull(t, client, "from device "+tag)
		netWrite(t, client, "typed "+tag)
		if got := rcReadFull(t, device, len("typed "+tag)); string(got) != "typed "+tag {
			t.Fatalf("device read %q", got)
		}
	}
	sttyShows := func(want ...string) {
		t.Helper()
		out := rcStty(t, pathA)
		for _, w := range want {
			if !strings.Contains(out, w) && !rcSttyHas(out, w) {
				t.Errorf("stty -F %s lacks %q:\n%s", pathA, w, out)
			}
		}
	}

	roundTrip(rdOpenEnd(t, pathB), "1")
	sttyShows("speed 115200 baud", "-cstopb", "-crtscts")

	line := chardev.LineSettings{Baud: 57600, DataBits: 8, StopBits: chardev.StopBits2, Flow: chardev.FlowRTSCTS}
	if err := tt.SetLineSettings(line); err != nil {
		t.Fatal(err)
	}
	sttyShows("speed 57600 baud", "cstopb", "crtscts")
	if got, _ := current().LineSettings(); got != line {
		t.Errorf("port reports %v, want %v", got, line)
	}
	// RTS/CTS flow control on a pty that has no CTS: a pty ignores it, so
	// data still flows. Switch it off again for the rest.
	line.Flow = chardev.FlowNone
	if err := tt.SetLineSettings(line); err != nil {
		t.Fatal(err)
	}

	// A pty has no modem lines: unsupported, not a failure, on the port
	// and through the tee.
	if err := current().SetDTR(false); !chardev.IsUnsupported(err) {
		t.Errorf("SetDTR on a pty: %v, want unsupported", err)
	}
	if _, err := tt.ModemStatus(); !chardev.IsUnsupported(err) {
		t.Errorf("tee ModemStatus on a pty: %v, want unsupported", err)
	}
	on := true
	if err := tt.SetModemLines(&on, &on); err != nil {
		t.Errorf("tee SetModemLines on a pty: %v, want it taken as a no-op", err)
	}
	if !tt.Stats().Frontend.Up {
		t.Fatal("frontend went down after modem-line requests")
	}

	// Unplug.
	cable.stop()
	lost := events.waitFor(t, "the frontend to be reported lost", func(ev tee.Event) bool { return ev.Kind == tee.EventFrontendLost })
	if !strings.Contains(lost.Reason, pathA) || !strings.Contains(lost.Reason, "disconnected") {
		t.Errorf("frontend-lost reason %q: want the path and \"disconnected\"", lost.Reason)
	}
	rcWait(t, "the frontend to be down", func() bool { return !tt.Stats().Frontend.Up })
	if rcLegCount(tt, "net") != 1 {
		t.Fatal("the client leg left with the frontend")
	}

	// Plug back in: new ptys behind the same paths.
	mu.Lock()
	before := len(opened)
	mu.Unlock()
	rdStartSocat(t, socat, pathA, pathB)
	rcWait(t, "the tee to reopen the port", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(opened) > before && tt.Stats().Frontend.Up
	})
	if st := tt.Stats().Frontend; st.Reconnects < 1 {
		t.Errorf("frontend stats %+v: want a reconnect counted", st)
	}
	if fd := serialFD(t, current()); fd < 1024 {
		t.Errorf("reopened port descriptor %d: want >= 1024", fd)
	}
	sttyShows("speed 57600 baud", "cstopb", "-crtscts") // replayed onto the new port
	roundTrip(rdOpenEnd(t, pathB), "2")
}

// rdRunInPty runs cmd with a pty as its controlling terminal and returns
// everything it printed, once it has exited.
func rdRunInPty(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	master, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := tty.Pollable(master)
	master.Close()
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	defer pm.Close()
	_ = pm.SetReadDeadline(time.Now().Add(rcTimeout))
	var out bytes.Buffer
	_, err = io.Copy(&out, pm)
	// The master reads EIO once the program and its terminal are gone.
	if err != nil && !tty.IsHangup(err) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("%s: reading its terminal: %v (printed %q)", cmd.Path, err, out.Bytes())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v; printed %q", strings.Join(cmd.Args, " "), err, out.Bytes())
	}
	return out.Bytes()
}

// TestRealFileLegsThroughTee: a capture on /dev/full fails its own leg,
// with a reason that says so, while the other captures go on; a raw
// capture renamed and reopened (what SIGUSR1 does) splits the stream
// between the two files with nothing lost; and the asciicast capture
// plays back with asciinema to exactly the bytes the device wrote.
func TestRealFileLegsThroughTee(t *testing.T) {
	asciinema := rcProgram(t, "asciinema", "asciinema")
	front, device := rcOpenFront(t)
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	events := rdSubscribe(t, tt)
	dir := t.TempDir()
	rawPath, castPath := filepath.Join(dir, "console.log"), filepath.Join(dir, "console.cast")
	attach := func(name string, spec FileSpec) {
		t.Helper()
		err := tt.Attach(context.Background(), name, tee.LegOptions{}, chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
			return NewFile(spec)
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	attach("full", fileSpecFor("/dev/full", nil))
	attach("raw", fileSpecFor(rawPath, nil))
	attach("cast", fileSpecFor(castPath, func(s *FileSpec) { s.Format = FileAsciicast }))

	part1 := "\x1b[1;32mboot\x1b[0m: ok\r\nströmung 世界 🚀\tend\r\n"
	part2 := "login: \x1b[7mroot\x1b[0m\r\n# ünïcödé\r\n"
	if _, err := device.Write([]byte(part1)); err != nil {
		t.Fatal(err)
	}
	ev := events.waitFor(t, "the /dev/full leg to fail", func(ev tee.Event) bool {
		return ev.Kind == tee.EventDetach && ev.Backend == "full"
	})
	if !strings.Contains(ev.Reason, "file: write /dev/full: no space left on device") {
		t.Errorf("detach reason %q, want it to name the file and ENOSPC", ev.Reason)
	}
	rcWait(t, "the raw capture to hold part 1", func() bool {
		b, _ := os.ReadFile(rawPath)
		return string(b) == part1
	})
	if _, ok := rdLeg(tt, "full"); ok {
		t.Error("the failed leg is still listed")
	}
	for _, name := range []string{"raw", "cast"} {
		if _, ok := rdLeg(tt, name); !ok {
			t.Errorf("leg %s went away with the /dev/full one", name)
		}
	}

	// logrotate's way: rename, then SIGUSR1 makes the daemon reopen every
	// capture.
	if err := os.Rename(rawPath, rawPath+".1"); err != nil {
		t.Fatal(err)
	}
	reopened := 0
	tt.Devices(func(backend string, dev chardev.Chardev) {
		if r, ok := dev.(chardev.Reopener); ok {
			if err := r.Reopen(); err != nil {
				t.Errorf("%s: Reopen: %v", backend, err)
			}
			reopened++
		}
	})
	if reopened != 2 {
		t.Errorf("%d devices reopened, want the two captures", reopened)
	}
	if _, err := device.Write([]byte(part2)); err != nil {
		t.Fatal(err)
	}
	rcWait(t, "the reopened raw capture to hold part 2", func() bool {
		b, _ := os.ReadFile(rawPath)
		return string(b) == part2
	})
	if b, _ := os.ReadFile(rawPath + ".1"); string(b) != part1 {
		t.Errorf("rotated capture %q, want part 1", b)
	}
	rcWait(t, "the cast leg to have written everything", func() bool {
		l, ok := rdLeg(tt, "cast")
		return ok && l.BytesOut == uint64(len(part1)+len(part2))
	})
	// Detaching closes the recording, flushing what it holds. Detach does
	// not wait for the device's Close, so wait for the file itself.
	if err := tt.Detach("cast"); err != nil {
		t.Fatal(err)
	}
	rcWait(t, "the recording to hold the whole stream", func() bool {
		f, err := os.Open(castPath)
		if err != nil {
			return false
		}
		defer f.Close()
		_, events, err := capture.ParseAsciicast(f)
		return err == nil && string(capture.Stream(events, capture.CodeOutput)) == part1+part2
	})

	cmd := exec.Command(asciinema, "cat", castPath)
	cmd.Env = append(os.Environ(), "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "PYTHONIOENCODING=utf-8",
		"ASCIINEMA_CONFIG_HOME="+t.TempDir())
	// asciinema cat opens /dev/tty, so it needs a terminal; the pty keeps
	// its output byte for byte (it puts the terminal into raw mode).
	if got := string(rdRunInPty(t, cmd)); got != part1+part2 {
		t.Errorf("asciinema cat printed %q\nwant %q", got, part1+part2)
	}
}

// TestRealPtyLegThroughTee: programs attach to a pty leg through its link,
// leave, and come back, and the leg never notices; what the device prints
// while nobody is attached waits for the next program. A second pty leg
// given the same link takes it over atomically, the first one's removal
// leaves it alone, and the last removal deletes it.
func TestRealPtyLegThroughTee(t *testing.T) {
	head := rcEssential(t, "head", "coreutils")
	teeBin := rcEssential(t, "tee", "coreutils")
	front, device := rcOpenFront(t)
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	events := rdSubscribe(t, tt)
	link := filepath.Join(t.TempDir(), "console")
	attachPty := func(name string) *Pty {
		t.Helper()
		var p *Pty
		err := tt.Attach(context.Background(), name, tee.LegOptions{Input: true}, chardev.OpenFunc(func(ctx context.Context) (chardev.Chardev, error) {
			var err error
			p, err = OpenPty(ctx, &PtySpec{Link: link})
			return p, err
		}))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	readLink := func(n int) string {
		t.Helper()
		out, err := exec.Command(head, "-c", fmt.Sprint(n), link).Output()
		if err != nil {
			t.Fatalf("head -c %d %s: %v", n, link, err)
		}
		return string(out)
	}
	first := attachPty("console")

	if _, err := device.Write([]byte("first!")); err != nil {
		t.Fatal(err)
	}
	if got := readLink(6); got != "first!" {
		t.Fatalf("first program read %q", got)
	}
	// Nobody is attached now; the output waits in the pty.
	if _, err := device.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	rcWait(t, "the leg to write it", func() bool {
		l, ok := rdLeg(tt, "console")
		return ok && l.BytesOut == 12
	})
	if got := readLink(6); got != "second" {
		t.Fatalf("second program read %q", got)
	}
	typing := exec.Command(teeBin, link)
	typing.Stdin = strings.NewReader("typed!")
	if out, err := typing.CombinedOutput(); err != nil {
		t.Fatalf("tee %s: %v: %s", link, err, out)
	}
	if got := rcReadFull(t, device, 6); string(got) != "typed!" {
		t.Fatalf("device read %q from the pty leg", got)
	}
	if ev, ok := events.find(func(ev tee.Event) bool { return ev.Kind == tee.EventDetach }); ok {
		t.Fatalf("programs coming and going broke the leg: %+v", ev)
	}

	second := attachPty("console2")
	if target, err := os.Readlink(link); err != nil || target != second.Name() {
		t.Fatalf("link -> %q (%v), want the new pty %s", target, err, second.Name())
	}
	if err := tt.Detach("console"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != second.Name() {
		t.Fatalf("after detaching the first pty (%s), link -> %q (%v), want %s", first.Name(), target, err, second.Name())
	}
	if err := tt.Detach("console2"); err != nil {
		t.Fatal(err)
	}
	// Detach returns once the leg's goroutines are done; the device's
	// Close, which removes the link, may still be finishing.
	rcWait(t, "the link to go with the last pty", func() bool {
		_, err := os.Lstat(link)
		return errors.Is(err, fs.ErrNotExist)
	})
	entries, _ := os.ReadDir(filepath.Dir(link))
	if len(entries) != 0 {
		t.Errorf("left behind in the link's directory: %v", entries)
	}
}

// rdReaped reports whether pid is no child of ours waiting to be reaped
// and no process at all.
func rdReaped(t *testing.T, pid int) {
	t.Helper()
	var ws unix.WaitStatus
	if wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); !errors.Is(err, unix.ECHILD) {
		t.Errorf("wait4(%d) = %d, %v: want ECHILD (already reaped)", pid, wpid, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/proc/%d still exists after Close", pid)
	}
}

// TestRealExecReaped: an exec device's program, whether running or
// already exited, is reaped by Close (no zombie left), and a tee with an
// exec frontend reaps it on Close.
func TestRealExecReaped(t *testing.T) {
	for _, usePty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", usePty), func(t *testing.T) {
			running := execTestStart(t, &ExecSpec{Command: []string{"sleep", "100"}, Pty: usePty})
			pid := running.cmd.Process.Pid
			if err := running.Close(); err != nil {
				t.Fatal(err)
			}
			rdReaped(t, pid)

			exited := execTestStart(t, &ExecSpec{Command: []string{"true"}, Pty: usePty})
			pid = exited.cmd.Process.Pid
			execReadAll(t, exited) // EOF: it has exited
			if err := exited.Close(); err != nil {
				t.Fatal(err)
			}
			rdReaped(t, pid)
		})
	}

	var mu sync.Mutex
	var prog *Exec
	tt, err := tee.New(tee.Options{Name: "exec", Frontend: chardev.OpenFunc(func(ctx context.Context) (chardev.Chardev, error) {
		e, err := StartExec(ctx, &ExecSpec{Command: []string{"sleep", "100"}})
		if err == nil {
			mu.Lock()
			prog = e
			mu.Unlock()
		}
		return e, err
	})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	rcWait(t, "the exec frontend to start", func() bool { return tt.Stats().Frontend.Up })
	if err := tt.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	rdReaped(t, prog.cmd.Process.Pid)
}

// TestRealTCPListenThroughTee: a tcp-listen backend of a tee under a flood
// of thousands of connections beyond max_clients: each is refused with the
// notice, the two clients in keep working, and afterwards no descriptor or
// goroutine is left over. Under kick-oldest the newcomer takes the oldest
// client's place and the old leg's detach says why.
func TestRealTCPListenThroughTee(t *testing.T) {
	const attempts = 2000
	front, device := rcOpenFront(t)
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	events := rdSubscribe(t, tt)

	spec := NewTCPListenSpec()
	spec.Listen, spec.MaxClients = "127.0.0.1:0", 2
	src, err := tcpListen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.AttachSource("net", tee.LegOptions{Input: true}, src); err != nil {
		t.Fatal(err)
	}
	c1, c2 := netDial(t, "tcp", src.Addr()), netDial(t, "tcp", src.Addr())
	rcWait(t, "two legs", func() bool { return rcLegCount(tt, "net") == 2 })

	fdsBefore, goroutinesBefore := netFDCount(t), runtime.NumGoroutine()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	work := make(chan struct{})
	for range 16 {
		wg.Go(func() {
			for range work {
				c, err := net.DialTimeout("tcp", src.Addr(), rcTimeout)
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(rcTimeout))
					var b []byte
					b, err = io.ReadAll(c)
					_ = c.Close()
					if err == nil && string(b) != netRejectLine {
						err = fmt.Errorf("read %q", b)
					}
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	for range attempts {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d refusals were not clean; first: %s", len(failures), attempts, failures[0])
	}
	if st := src.(*NetSource).Stats(); st.RefusedFull != attempts || st.Clients != 2 {
		t.Errorf("source stats %+v: want %d refused, 2 clients", st, attempts)
	}
	if n := rcLegCount(tt, "net"); n != 2 {
		t.Errorf("%d legs after the flood, want 2", n)
	}
	netWaitFor(t, "descriptors back to the baseline", func() bool { return netFDCount(t) <= fdsBefore })
	netWaitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= goroutinesBefore })
	if _, err := device.Write([]byte("after the flood")); err != nil {
		t.Fatal(err)
	}
	rdConnReadFull(t, c1, "after the flood")
	rdConnReadFull(t, c2, "after the flood")

	// kick-oldest on a second backend of the same tee.
	spec = NewTCPListenSpec()
	spec.Listen, spec.MaxClients, spec.OnFull = "127.0.0.1:0", 1, OnFullKickOldest
	src2, err := tcpListen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.AttachSource("kick", tee.LegOptions{}, src2); err != nil {
		t.Fatal(err)
	}
	old := netDial(t, "tcp", src2.Addr())
	rcWait(t, "the first kick leg", func() bool { return rcLegCount(tt, "kick") == 1 })
	first, _ := rdLeg(tt, "kick")
	newer := netDial(t, "tcp", src2.Addr())
	ev := events.waitFor(t, "the oldest to be kicked", func(ev tee.Event) bool {
		return ev.Kind == tee.EventDetach && ev.Leg == first.Name
	})
	if !strings.Contains(ev.Reason, "kick-oldest") {
		t.Errorf("kicked leg's reason %q: want it to say kick-oldest", ev.Reason)
	}
	_ = old.SetReadDeadline(time.Now().Add(rcTimeout))
	if _, err := io.ReadAll(old); err != nil {
		t.Errorf("kicked client: %v, want a plain close", err)
	}
	rcWait(t, "the newcomer's leg", func() bool {
		l, ok := rdLeg(tt, "kick")
		return ok && l.Name != first.Name && rcLegCount(tt, "kick") == 1
	})
	if _, err := device.Write([]byte("to the newcomer")); err != nil {
		t.Fatal(err)
	}
	rdConnReadFull(t, newer, "to the newcomer")
}

// TestRealUDPThroughTee: each UDP peer that speaks becomes a leg of the
// tee, gets the output and types into the frontend; a udp backend with a
// fixed remote peer is a single leg talking to that peer only.
func TestRealUDPThroughTee(t *testing.T) {
	front, device := rcOpenFront(t)
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	src := udpTestListen(t, nil)
	if err := tt.AttachSource("udp", tee.LegOptions{Input: true}, src); err != nil {
		src.Close()
		t.Fatal(err)
	}
	a, b := udpTestPeer(t), udpTestPeer(t)
	udpSend(t, a, src.Addr(), "from a")
	if got := rcReadFull(t, device, 6); string(got) != "from a" {
		t.Fatalf("device read %q", got)
	}
	udpSend(t, b, src.Addr(), "from b")
	if got := rcReadFull(t, device, 6); string(got) != "from b" {
		t.Fatalf("device read %q", got)
	}
	rcWait(t, "a leg per peer", func() bool { return rcLegCount(tt, "udp") == 2 })
	peers := map[string]bool{}
	for _, l := range tt.Stats().Legs {
		if l.Backend == "udp" {
			peers[l.Peer] = true
		}
	}
	if !peers[a.LocalAddr().String()] || !peers[b.LocalAddr().String()] {
		t.Errorf("leg peers %v, want %s and %s", peers, a.LocalAddr(), b.LocalAddr())
	}

	fixed := udpTestPeer(t)
	fixedSpec := NewUDPSpec()
	fixedSpec.Remote = fixed.LocalAddr().String()
	if err := tt.Attach(context.Background(), "fixed", tee.LegOptions{Input: true}, chardev.OpenFunc(func(ctx context.Context) (chardev.Chardev, error) {
		return OpenUDP(ctx, fixedSpec)
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Write([]byte("to everyone")); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*net.UDPConn{"a": a, "b": b} {
		if got := udpRecv(t, p); got != "to everyone" {
			t.Errorf("peer %s got %q", name, got)
		}
	}
	buf := make([]byte, 100)
	n, from, err := fixed.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "to everyone" {
		t.Fatalf("fixed peer got %q, %v", buf[:n], err)
	}
	if _, err := fixed.WriteTo([]byte("from fixed"), from); err != nil {
		t.Fatal(err)
	}
	if got := rcReadFull(t, device, 10); string(got) != "from fixed" {
		t.Fatalf("device read %q", got)
	}
	if n := rcLegCount(tt, "udp"); n != 2 {
		t.Errorf("%d udp legs, want 2: the fixed peer's reply must not make one", n)
	}
}
