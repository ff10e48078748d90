package tee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/backends"
	"chartee/chardev"
	"chartee/chardev/memdev"
)

// tcpSource is a leg source on a real loopback listener; closed is closed
// once its listener is.
type tcpSource struct {
	ln     net.Listener
	closed chan struct{}
	once   sync.Once
}

func newTCPSource(t *testing.T) *tcpSource {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &tcpSource{ln: ln, closed: make(chan struct{})}
}

func (s *tcpSource) Accept() (chardev.Chardev, error) { return s.ln.Accept() }
func (s *tcpSource) Addr() string                     { return s.ln.Addr().String() }
func (s *tcpSource) Close() error {
	err := s.ln.Close()
	s.once.Do(func() { close(s.closed) })
	return err
}

func waitClosed(t *testing.T, what string, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func legNames(tee *Tee) []string {
	var names []string
	for _, l := range tee.Stats().Legs {
		names = append(names, l.Name)
	}
	slices.Sort(names)
	return names
}

// TestShutdownStopsAcceptingFirst: while Shutdown waits for a slow block
// leg to drain, the tee's listeners are already closed: a client
// connecting then is refused (TCP) or never accepted (an in-memory
// source), instead of being attached and closed at the end. A client
// attached before keeps receiving.
func TestShutdownStopsAcceptingFirst(t *testing.T) {
	h := newHarness(t, Options{})
	slow := h.attach("cap", LegOptions{Overflow: Block, Queue: 1 << 20})
	slow.Stall()
	tcp := newTCPSource(t)
	if err := h.tee.AttachSource("net", LegOptions{}, tcp); err != nil {
		t.Fatal(err)
	}
	mem := newMemSource("mem")
	if err := h.tee.AttachSource("mem", LegOptions{}, mem); err != nil {
		t.Fatal(err)
	}
	early, err := net.Dial("tcp", tcp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	eventually(t, "the early client attached", func() bool { _, ok := legStats(h.tee, "net#1"); return ok })
	h.emit([]byte("before"))

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.tee.Shutdown(ctx) }()
	waitClosed(t, "the TCP listener closed", tcp.closed)
	waitClosed(t, "the memory source closed", mem.closed)

	if c, err := net.Dial("tcp", tcp.Addr()); err == nil {
		c.Close()
		t.Fatal("a client connected during the drain")
	}
	select {
	case mem.ch <- memdev.New("late"):
		t.Fatal("the memory source accepted a client during the drain")
	case <-time.After(50 * time.Millisecond):
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a block leg still had bytes", err)
	default:
	}
	// Legs that have written all they were given end during the drain
	// (net#1 may be gone); no new one appeared.
	for _, name := range legNames(h.tee) {
		if name != "cap" && name != "net#1" {
			t.Fatalf("leg %s attached during the drain (legs %v)", name, legNames(h.tee))
		}
	}
	// The client attached before still gets what it was given.
	early.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 6)
	if _, err := readFull(early, buf); err != nil || string(buf) != "before" {
		t.Fatalf("early client read %q, %v", buf, err)
	}

	slow.Resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitBytes(t, slow, []byte("before"))
	if err := h.tee.AttachSource("again", LegOptions{}, newMemSource("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("AttachSource after Shutdown: %v, want ErrClosed", err)
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestStopAcceptingKeepsClientsAndRefusesSourceChanges: StopAccepting on
// its own closes the listeners; attached clients stay, and a source can
// no longer be swapped or rebound.
func TestStopAcceptingKeepsClientsAndRefusesSourceChanges(t *testing.T) {
	h := newHarness(t, Options{})
	mem := newMemSource("mem")
	if err := h.tee.AttachSource("ops", LegOptions{}, mem); err != nil {
		t.Fatal(err)
	}
	c1 := memdev.New("c1")
	mem.connect(c1)
	eventually(t, "client attached", func() bool { _, ok := legStats(h.tee, "ops#1"); return ok })
	h.tee.StopAccepting()
	waitClosed(t, "source closed", mem.closed)
	h.emit([]byte("still here"))
	waitBytes(t, c1, []byte("still here"))
	if err := h.tee.SwapSource("ops", newMemSource("mem2"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("SwapSource after StopAccepting: %v, want ErrClosed", err)
	}
	opened := false
	err := h.tee.RebindSource("ops", func() (chardev.Source, error) { opened = true; return newMemSource("m3"), nil }, nil)
	if !errors.Is(err, ErrClosed) || opened {
		t.Fatalf("RebindSource after StopAccepting: %v (opened %v), want ErrClosed", err, opened)
	}
	// Detach and Close do not close the source a second time (memSource
	// would not mind; a unix listener would unlink its path again).
	if err := h.tee.Detach("ops"); err != nil {
		t.Fatal(err)
	}
	if !c1.Closed() {
		t.Fatal("detach left the client")
	}
}

// eventLog collects the events an Options.Events hook is given.
type eventLog struct {
	mu sync.Mutex
	ev []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ev)
}

// TestEventsHookSeesEveryEventFromTheFirst: an Options.Events hook is in
// place before the tee starts, so it gets the frontend's first opening,
// which a Subscribe after New can miss, and after Close it has had every
// event, in order.
func TestEventsHookSeesEveryEventFromTheFirst(t *testing.T) {
	var log eventLog
	h := newHarness(t, Options{Events: log.add})
	h.attach("a", LegOptions{})
	if err := h.tee.Detach("a"); err != nil {
		t.Fatal(err)
	}
	h.tee.Close()
	ev := log.all()
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, string(e.Kind)+" "+e.Backend)
	}
	if len(ev) < 3 || ev[0].Kind != EventFrontendRestored || !strings.HasPrefix(ev[0].Reason, "opened ") {
		t.Fatalf("events %q: want the frontend opening first", kinds)
	}
	if !slices.Contains(kinds, "attach a") || !slices.Contains(kinds, "detach a") ||
		slices.Index(kinds, "attach a") > slices.Index(kinds, "detach a") {
		t.Fatalf("events %q: want attach a, then detach a", kinds)
	}
	if ev[0].Tee != "t0" || ev[0].Time.IsZero() {
		t.Fatalf("first event %+v: tee name and time not set", ev[0])
	}
	if h.tee.EventsMissed() != 0 {
		t.Fatalf("missed %d events", h.tee.EventsMissed())
	}
}

// TestEventsHookThatStallsDoesNotSlowTheTee: a hook that blocks costs it
// events (counted), never the tee its progress.
func TestEventsHookThatStallsDoesNotSlowTheTee(t *testing.T) {
	release := make(chan struct{})
	var got atomic.Int64
	h := newHarness(t, Options{EventBuffer: 2, Events: func(Event) {
		<-release
		got.Add(1)
	}})
	defer close(release) // before the harness's Close, which waits for the hook
	for i := range 10 {
		name := fmt.Sprintf("b%d", i)
		h.attach(name, LegOptions{})
		if err := h.tee.Detach(name); err != nil {
			t.Fatal(err)
		}
	}
	if h.tee.EventsMissed() == 0 {
		t.Fatal("20 events into a stalled hook with room for 2: none counted as missed")
	}
}

// slowCloseDev is a device whose Close finishes well after it has stopped
// the device, like a pty removing its link or a capture flushing: the
// engine's goroutines are released at once, the Close returns later.
type slowCloseDev struct {
	*memdev.Device
	delay    time.Duration
	release  chan struct{} // when set, Close waits for it instead of delay
	finished atomic.Bool
}

func (d *slowCloseDev) Close() error {
	d.Device.Close()
	if d.release != nil {
		<-d.release
	} else {
		time.Sleep(d.delay)
	}
	d.finished.Store(true)
	return nil
}

// TestDetachWaitsForTheDeviceClose: when Detach returns, the device's
// Close has returned too.
func TestDetachWaitsForTheDeviceClose(t *testing.T) {
	h := newHarness(t, Options{})
	d := &slowCloseDev{Device: memdev.New("pty"), delay: 200 * time.Millisecond}
	if err := h.tee.Attach(context.Background(), "pty", LegOptions{}, memdev.Opener(nil, d)); err != nil {
		t.Fatal(err)
	}
	h.emit([]byte("x"))
	waitBytes(t, d.Device, []byte("x"))
	if err := h.tee.Detach("pty"); err != nil {
		t.Fatal(err)
	}
	if !d.finished.Load() {
		t.Fatal("Detach returned before the device's Close finished")
	}
}

// TestSwapWaitsForTheOldDeviceClose: likewise for the old leg of a swap.
func TestSwapWaitsForTheOldDeviceClose(t *testing.T) {
	for _, mode := range []SwapMode{Handover, Overlap} {
		t.Run(mode.String(), func(t *testing.T) {
			h := newHarness(t, Options{})
			old := &slowCloseDev{Device: memdev.New("old"), delay: 200 * time.Millisecond}
			if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, old)); err != nil {
				t.Fatal(err)
			}
			h.emit([]byte("x"))
			waitBytes(t, old.Device, []byte("x"))
			if _, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, memdev.New("new")), SwapOptions{Mode: mode}); err != nil {
				t.Fatal(err)
			}
			if !old.finished.Load() {
				t.Fatal("Swap returned before the old device's Close finished")
			}
		})
	}
}

// TestDetachOfADeviceWhoseCloseHangsIsBounded: a Close that never returns
// holds Detach for the drain timeout only, and says so in an event.
func TestDetachOfADeviceWhoseCloseHangsIsBounded(t *testing.T) {
	h := newHarness(t, Options{DrainTimeout: 100 * time.Millisecond})
	d := &slowCloseDev{Device: memdev.New("stuck"), release: make(chan struct{})}
	defer close(d.release) // before the harness's Close, which waits for it
	if err := h.tee.Attach(context.Background(), "stuck", LegOptions{}, memdev.Opener(nil, d)); err != nil {
		t.Fatal(err)
	}
	sub := h.tee.Subscribe(64)
	defer sub.Close()
	done := make(chan error, 1)
	go func() { done <- h.tee.Detach("stuck") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Detach hung on a device whose Close hangs")
	}
	expectEvent(t, sub, EventError, "stuck", "device close still running")
	if d.finished.Load() {
		t.Fatal("the hanging Close finished on its own")
	}
	if _, ok := legStats(h.tee, "stuck"); ok {
		t.Fatal("the leg is still attached")
	}
}

// TestDetachedCaptureFileIsComplete: a real asciicast capture holds back
// an incomplete UTF-8 sequence until its Close flushes it; once Detach
// returns, the file has it.
func TestDetachedCaptureFileIsComplete(t *testing.T) {
	h := newHarness(t, Options{})
	spec := backends.NewFileSpec()
	spec.Path = filepath.Join(t.TempDir(), "cap.cast")
	spec.Format = backends.FileAsciicast
	f, err := backends.NewFile(*spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, f)); err != nil {
		t.Fatal(err)
	}
	out := []byte("ok \xe2\x82") // the start of a euro sign
	h.emit(out)
	eventually(t, "capture written", func() bool { ls, _ := legStats(h.tee, "cap"); return ls.BytesOut == uint64(len(out)) })
	if err := h.tee.Detach("cap"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(spec.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("\uFFFD")) && !bytes.Contains(data, []byte(`\ufffd`)) {
		t.Fatalf("capture after Detach lacks the flushed tail:\n%s", data)
	}
}

// echoFront is a frontend that echoes what is written to it, and whose
// Write returns only after the echo is there to read, as on a fast pty.
type echoFront struct{ *memdev.Device }

func (e echoFront) Write(p []byte) (int, error) {
	e.Feed(p)
	time.Sleep(2 * time.Millisecond)
	return e.Device.Write(p)
}

// dirLog is a capture of both directions: it logs output (Write) and
// input (RecordInput) in the order the engine gives them.
type dirLog struct {
	mu     sync.Mutex
	log    []string // "o" or "i" followed by the bytes
	done   chan struct{}
	closed sync.Once
}

func newDirLog() *dirLog { return &dirLog{done: make(chan struct{})} }

func (d *dirLog) Read([]byte) (int, error) { <-d.done; return 0, memdev.ErrClosed }
func (d *dirLog) Close() error             { d.closed.Do(func() { close(d.done) }); return nil }
func (d *dirLog) Write(p []byte) (int, error) {
	d.add("o", p)
	return len(p), nil
}
func (d *dirLog) RecordInput(p []byte) error { d.add("i", p); return nil }

func (d *dirLog) add(dir string, p []byte) {
	d.mu.Lock()
	d.log = append(d.log, dir+string(p))
	d.mu.Unlock()
}

func (d *dirLog) entries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.log)
}

// direction returns every byte logged in one direction, in order.
func (d *dirLog) direction(dir string) string {
	var b strings.Builder
	for _, e := range d.entries() {
		if e[:1] == dir {
			b.WriteString(e[1:])
		}
	}
	return b.String()
}

var _ chardev.InputRecorder = (*dirLog)(nil)

// TestCaptureRecordsInputBeforeItsEcho: in a capture of both directions a
// typed key comes before the echo it caused, even from a frontend that
// echoes before its Write returns.
func TestCaptureRecordsInputBeforeItsEcho(t *testing.T) {
	front := echoFront{memdev.New("front")}
	h := newHarness(t, Options{Frontend: memdev.Opener(nil, front)})
	rec := newDirLog()
	if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, rec)); err != nil {
		t.Fatal(err)
	}
	typist := h.attach("kbd", LegOptions{Input: true})
	keys := "abcdefghijklmnop"
	for i := range len(keys) {
		typist.Feed([]byte{keys[i]})
		eventually(t, "the echo captured", func() bool { return strings.Count(rec.direction("o"), keys[i:i+1]) == 1 })
	}
	log := rec.entries()
	for i := range len(keys) {
		k := keys[i : i+1]
		in := slices.IndexFunc(log, func(e string) bool { return e[0] == 'i' && strings.Contains(e[1:], k) })
		out := slices.IndexFunc(log, func(e string) bool { return e[0] == 'o' && strings.Contains(e[1:], k) })
		if in < 0 || in > out {
			t.Fatalf("key %q: input at %d, echo at %d in %q", k, in, out, log)
		}
	}
	if got := rec.direction("i"); got != keys {
		t.Fatalf("input recorded %q, want %q", got, keys)
	}
}

// TestInputRecordedOnceWhenItsWriteFails: input is recorded when it is
// sent; a chunk the frontend took only part of before failing is finished
// on the next device without being recorded again.
func TestInputRecordedOnceWhenItsWriteFails(t *testing.T) {
	first, second := memdev.New("first"), memdev.New("second")
	first.SetMaxWrite(3) // takes 3 bytes, then fails (io.ErrShortWrite)
	h := newHarness(t, Options{
		Frontend:  memdev.Opener(nil, first, second),
		Reconnect: Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond},
	})
	rec := newDirLog()
	if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, rec)); err != nil {
		t.Fatal(err)
	}
	typist := h.attach("kbd", LegOptions{Input: true})
	typist.Feed([]byte("abcdef"))
	waitBytes(t, second, []byte("def"))
	if got := first.Written(); string(got) != "abc" {
		t.Fatalf("first frontend got %q", got)
	}
	if got := rec.direction("i"); got != "abcdef" {
		t.Fatalf("input recorded %q, want %q once", got, "abcdef")
	}
}
