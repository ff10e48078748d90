package escape

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/backends/telnet"
	"chartee/chardev"
	"chartee/chardev/memdev"
)

// fakeControl records what the escape commands asked of the tee.
type fakeControl struct {
	mu      sync.Mutex
	breaks  []time.Duration
	locks   int
	unlocks int
	lockErr error
}

var _ chardev.Control = (*fakeControl)(nil)

func (f *fakeControl) SetLineSettings(chardev.LineSettings) error { return nil }
func (f *fakeControl) LineSettings() chardev.LineSettings         { return chardev.LineSettings{Baud: 9600} }
func (f *fakeControl) SetModemLines(dtr, rts *bool) error         { return nil }
func (f *fakeControl) ModemStatus() (chardev.ModemStatus, error)  { return chardev.ModemStatus{}, nil }
func (f *fakeControl) PurgeInput()                                {}
func (f *fakeControl) Status() string                             { return "frontend serial /dev/ttyS0\nlegs: 2" }
func (f *fakeControl) ReleaseWriteLock()                          { f.mu.Lock(); f.unlocks++; f.mu.Unlock() }
func (f *fakeControl) Break(d time.Duration) error {
	f.mu.Lock()
	f.breaks = append(f.breaks, d)
	f.mu.Unlock()
	return nil
}
func (f *fakeControl) TakeWriteLock() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locks++
	return f.lockErr
}
func (f *fakeControl) counts() (breaks, locks, unlocks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.breaks), f.locks, f.unlocks
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reader reads a device in the background, as the engine would.
type reader struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	err  error
	done chan struct{}
}

func readAll(r io.Reader) *reader {
	rd := &reader{done: make(chan struct{})}
	go func() {
		defer close(rd.done)
		p := make([]byte, 256)
		for {
			n, err := r.Read(p)
			rd.mu.Lock()
			rd.buf.Write(p[:n])
			rd.err = err
			rd.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return rd
}

func (r *reader) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func TestWrapCommandsOnMemdev(t *testing.T) {
	dev := memdev.New("leg")
	w := Wrap(dev, 0x05)
	ctl := &fakeControl{}
	w.(chardev.ControlAware).SetControl(ctl)
	got := readAll(w)
	defer func() {
		w.Close()
		<-got.done
	}()

	dev.Feed([]byte("ab\x05bcd\x05\x05e"))
	waitFor(t, "data", func() bool { return got.String() == "abcd\x05e" })
	if b, _, _ := ctl.counts(); b != 1 {
		t.Fatalf("breaks %d, want 1", b)
	}
	waitFor(t, "break message", func() bool { return strings.Contains(string(dev.Written()), "break sent") })

	dev.Feed([]byte("\x05l\x05u\x05s"))
	waitFor(t, "status", func() bool { return strings.Contains(string(dev.Written()), "legs: 2") })
	if _, l, u := ctl.counts(); l != 1 || u != 1 {
		t.Fatalf("locks %d unlocks %d", l, u)
	}
	out := string(dev.Written())
	for _, want := range []string{"write lock taken", "write lock released", "[chartee] frontend serial /dev/ttyS0\r\nlegs: 2\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %q", want, out)
		}
	}

	ctl.mu.Lock()
	ctl.lockErr = chardev.ErrNotPermitted
	ctl.mu.Unlock()
	dev.Feed([]byte("\x05L\x05?\x05x"))
	waitFor(t, "unknown command help", func() bool { return strings.Contains(string(dev.Written()), "unknown escape command 'x'") })
	out = string(dev.Written())
	if !strings.Contains(out, "write lock: "+chardev.ErrNotPermitted.Error()) || !strings.Contains(out, "escape commands (^E then)") {
		t.Errorf("output: %q", out)
	}
	if got.String() != "abcd\x05e" {
		t.Errorf("commands leaked into data: %q", got.String())
	}
}

func TestWrapWithoutControl(t *testing.T) {
	dev := memdev.New("leg")
	w := Wrap(dev, 0x1d)
	got := readAll(w)
	defer func() {
		w.Close()
		<-got.done
	}()
	dev.Feed([]byte("\x1db"))
	waitFor(t, "refusal", func() bool { return strings.Contains(string(dev.Written()), "no control") })
}

func TestWrapForwardsCapabilities(t *testing.T) {
	dev := memdev.New("leg")
	w := Wrap(dev, 0x05).(*Conn)
	defer w.Close()
	if err := w.SetLineSettings(chardev.LineSettings{Baud: 19200}); err != nil {
		t.Fatal(err)
	}
	if l, err := w.LineSettings(); err != nil || l.Baud != 19200 {
		t.Fatalf("line %v %v", l, err)
	}
	if err := w.Break(time.Millisecond); err != nil || dev.Breaks() != 1 {
		t.Fatalf("break: %v, %d", err, dev.Breaks())
	}
	if err := w.SetDTR(true); err != nil {
		t.Fatal(err)
	}
	if ms, err := w.ModemStatus(); err != nil || !ms.DTR {
		t.Fatalf("modem %+v %v", ms, err)
	}
	if w.Unwrap() != dev || w.Describe() != "memdev leg (escape ^E)" || w.Peer() != "" {
		t.Fatalf("unwrap/describe/peer: %q %q", w.Describe(), w.Peer())
	}

	plain := Wrap(memdev.Plain(dev), 0x05).(*Conn)
	if err := plain.Break(time.Millisecond); !chardev.IsUnsupported(err) {
		t.Errorf("break on plain: %v", err)
	}
	if _, err := plain.LineSettings(); !chardev.IsUnsupported(err) {
		t.Errorf("line settings on plain: %v", err)
	}
	if err := plain.SetRTS(true); !chardev.IsUnsupported(err) {
		t.Errorf("RTS on plain: %v", err)
	}
	plain.LineChanged(chardev.LineSettings{}) // no observer inside: nothing to do, no panic
}

// TestWrapTelnetServer composes the wrapper with a telnet ServerConn over
// loopback TCP: the control handle reaches the telnet layer (IAC BRK
// breaks), escape commands work on unescaped telnet data, and answers go
// out through the telnet encoder.
// rfc2217Pair is an RFC 2217 server connection on loopback and its client.
func rfc2217Pair(t *testing.T) (net.Conn, *telnet.ServerConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, telnet.NewServer(conn, telnet.Config{RFC2217: true})
}

func TestWrapTelnetServer(t *testing.T) {
	client, srv := rfc2217Pair(t)
	w := Wrap(srv, 0x1d)
	ctl := &fakeControl{}
	w.(chardev.ControlAware).SetControl(ctl)
	got := readAll(w)
	defer func() {
		w.Close()
		<-got.done
	}()
	if w.(chardev.Peer).Peer() != client.LocalAddr().String() {
		t.Errorf("peer %q, want %q", w.(chardev.Peer).Peer(), client.LocalAddr())
	}
	w.(chardev.LineObserver).LineChanged(chardev.LineSettings{Baud: 9600}) // reaches the server; no client RFC 2217 yet, so nothing sent

	// Data with an escaped IAC, a telnet break, and escape commands.
	if _, err := client.Write([]byte("x\xff\xffy\xff\xf3z\x1d\x1d\x1ds")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "data", func() bool { return got.String() == "x\xffyz\x1d" })
	if b, _, _ := ctl.counts(); b != 1 {
		t.Errorf("IAC BRK gave %d breaks, want 1", b)
	}
	answer := readUntil(t, client, nil, "legs: 2", "status")
	if _, err := w.Write([]byte("out\xff")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, client, answer, "out\xff\xff", "output")
	if err := w.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
}

// A client that suspended its output (RFC 2217 FLOWCONTROL-SUSPEND) and
// then types an escape command still has its input read: the answer waits
// for the resume, the reader does not. (The reader once wrote the answer
// itself, and waited forever for a resume that only it could read.)
func TestWrapAnswerWaitsForResumeNotTheReader(t *testing.T) {
	client, srv := rfc2217Pair(t)
	w := Wrap(srv, 0x1d)
	w.(chardev.ControlAware).SetControl(&fakeControl{})
	got := readAll(w)
	defer func() {
		w.Close()
		<-got.done
	}()

	const iac, sb, se, will, comPort = 0xff, 0xfa, 0xf0, 0xfb, 44
	suspend := []byte{iac, sb, comPort, telnet.ComFlowSuspend, iac, se}
	resume := []byte{iac, sb, comPort, telnet.ComFlowResume, iac, se}
	typed := append([]byte{iac, will, comPort}, suspend...)
	typed = append(typed, "\x1dsafter"...)
	if _, err := client.Write(typed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the data typed after the command", func() bool { return got.String() == "after" })

	if _, err := client.Write(resume); err != nil {
		t.Fatal(err)
	}
	readUntil(t, client, nil, "legs: 2", "the status after the resume")
}

// readUntil reads the client's side until what it has read, after got,
// holds want, and returns it all.
func readUntil(t *testing.T, client net.Conn, got []byte, want, what string) []byte {
	t.Helper()
	buf := make([]byte, 512)
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !bytes.Contains(got, []byte(want)) {
		n, err := client.Read(buf)
		if err != nil {
			t.Fatalf("reading %s: %v (got %q)", what, err, got)
		}
		got = append(got, buf[:n]...)
	}
	return got
}
