package tee

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

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

// TestShutdownDoesNotWaitForADropLegThatDropped: Shutdown lets every leg
// write what it was given; a drop leg that lost a chunk to overflow and
// has written everything else is done, not waiting for the lost bytes.
func TestShutdownDoesNotWaitForADropLegThatDropped(t *testing.T) {
	h := newHarness(t, Options{ReadSize: 512})
	d := h.attach("cap", LegOptions{Overflow: Drop, Queue: 700})
	d.Stall()
	h.emit(pattern(512, 1))
	h.emit(pattern(512, 2)) // dropped
	eventually(t, "drop counted", func() bool { ls, _ := legStats(h.tee, "cap"); return ls.Dropped == 512 })
	d.Resume()
	waitBytes(t, d, pattern(512, 1))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.tee.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited for bytes the leg had dropped: %v", err)
	}
}
