package tee

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"chartee/chardev"
)

// freezable is a TCP connection as a Freezer, the way the network
// backends do it: a read deadline in the past.
type freezable struct{ net.Conn }

func (c freezable) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = chardev.ErrFrozen
	}
	return n, err
}
func (c freezable) Freeze() error { return c.SetReadDeadline(time.Unix(1, 0)) }
func (c freezable) Thaw() error   { return c.SetReadDeadline(time.Time{}) }

// tcpPair returns both ends of a loopback TCP connection.
func loopPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(buf)
}

// TestFreezeThaw: a frozen tee has written everything before the cut to
// its leg and nothing after; output the device sends and input a client
// types while frozen wait in the kernel and flow, exactly, after Thaw.
func TestFreezeThaw(t *testing.T) {
	guest, frontEnd := loopPair(t)
	client, legEnd := loopPair(t)
	tt, err := New(Options{Name: "t", Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
		return freezable{frontEnd}, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	if _, err := tt.attachLeg(mustReserve(t, tt, "c"), freezable{legEnd}, LegOptions{Input: true}, false); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 200 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	before := want.String()
	guest.Write([]byte(before))
	if got := readN(t, client, len(before)); got != before {
		t.Fatal("stream before the freeze differs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	fz, err := tt.Freeze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fz.Offset != uint64(len(before)) || string(fz.Scrollback) != before || len(fz.Backends) != 1 {
		t.Fatalf("frozen at %d with %d bytes of scrollback, %d backends", fz.Offset, len(fz.Scrollback), len(fz.Backends))
	}
	guest.Write([]byte("after the cut\n"))
	client.Write([]byte("typed while frozen\n"))
	client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := client.Read(make([]byte, 64)); n != 0 {
		t.Fatalf("a frozen tee wrote %d bytes past the cut", n)
	}
	guest.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := guest.Read(make([]byte, 64)); n != 0 {
		t.Fatalf("a frozen tee passed %d typed bytes on", n)
	}
	tt.Thaw()
	if got := readN(t, client, len("after the cut\n")); got != "after the cut\n" {
		t.Fatalf("after thaw: %q", got)
	}
	if got := readN(t, guest, len("typed while frozen\n")); got != "typed while frozen\n" {
		t.Fatalf("input after thaw: %q", got)
	}
}

// TestFreezeLeavesWhatCannotFreeze: a leg device without Freezer (a
// session that cannot be carried) does not stop the freeze: it is
// reported as not frozen, and CloseLegs closes it after everything up to
// the cut. A frontend without Freezer makes Freeze fail, naming it, and
// the tee runs on.
func TestFreezeLeavesWhatCannotFreeze(t *testing.T) {
	guest, frontEnd := loopPair(t)
	client, legEnd := loopPair(t)
	tt, err := New(Options{Name: "t", Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
		return freezable{frontEnd}, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	if _, err := tt.attachLeg(mustReserve(t, tt, "plain"), legEnd, LegOptions{}, false); err != nil {
		t.Fatal(err)
	}
	guest.Write([]byte("up\n"))
	readN(t, client, 3)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	fz, err := tt.Freeze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l := fz.Backends[0].Legs[0]; l.Name != "plain" || l.Frozen {
		t.Fatalf("leg %s frozen %v, want plain not frozen", l.Name, l.Frozen)
	}
	guest.Write([]byte("after the cut\n"))
	tt.CloseLegs([]string{"plain"}, "upgrading", wait)
	client.SetReadDeadline(time.Now().Add(wait))
	if rest, err := io.ReadAll(client); err != nil || len(rest) != 0 {
		t.Fatalf("after the cut the left leg got %q (%v), want a close", rest, err)
	}
	tt.Thaw()

	g2, f2 := loopPair(t)
	plain, err := New(Options{Name: "p", Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return f2, nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	eventually(t, "the frontend up", func() bool { return plain.Stats().Frontend.Up })
	if _, err := plain.Freeze(ctx); err == nil || !strings.Contains(err.Error(), "frontend") {
		t.Fatalf("Freeze = %v, want a refusal naming the frontend", err)
	}
	g2.Write([]byte("still running\n"))
	eventually(t, "output after a refused freeze", func() bool { return plain.Offset() == uint64(len("still running\n")) })
}

// TestResumeAdopt: a tee resumed at an offset numbers its stream from
// there, replays the carried scrollback, and an adopted leg starts at
// the cut under its old name.
func TestResumeAdopt(t *testing.T) {
	guest, frontEnd := loopPair(t)
	client, legEnd := loopPair(t)
	tt, err := New(Options{Name: "t", Resume: &Resume{Offset: 1000, Scrollback: []byte("old tail\n")},
		Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return freezable{frontEnd}, nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	if err := tt.AttachSource("raw", LegOptions{Replay: 100}, idleSource{make(chan struct{})}); err != nil {
		t.Fatal(err)
	}
	if err := tt.Adopt("raw", "raw#7", 7, freezable{legEnd}, Counters{Out: 500}); err != nil {
		t.Fatal(err)
	}
	if sb, off := tt.Scrollback(); string(sb) != "old tail\n" || off != 991 {
		t.Fatalf("scrollback %q at %d", sb, off)
	}
	guest.Write([]byte("new\n"))
	if got := readN(t, client, 4); got != "new\n" {
		t.Fatalf("adopted leg got %q (no replay expected)", got)
	}
	if tt.Offset() != 1004 {
		t.Fatalf("offset %d, want 1004", tt.Offset())
	}
	// The counter follows the write the client has already read.
	eventually(t, "the adopted leg's counter to continue from 500", func() bool {
		st := tt.Stats()
		return len(st.Legs) == 1 && st.Legs[0].Name == "raw#7" && st.Legs[0].BytesOut == 504
	})
}

type idleSource struct{ done chan struct{} }

func (s idleSource) Accept() (chardev.Chardev, error) {
	<-s.done
	return nil, net.ErrClosed
}
func (s idleSource) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	return nil
}
func (s idleSource) Addr() string { return "idle" }

func mustReserve(t *testing.T, tt *Tee, name string) *backend {
	t.Helper()
	b, err := tt.reserve(name, LegOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResumeAdoptStream: a single-stream backend's carried device is
// attached at the cut (no replay, whatever the backend's replay) under
// the backend's name, what it owed at the cut written first, its
// counters continued, frozen until Thaw: what it types before then
// waits in the kernel.
func TestResumeAdoptStream(t *testing.T) {
	guest, frontEnd := loopPair(t)
	client, legEnd := loopPair(t)
	owed := map[string]Owed{"out": {Spans: []Span{{Off: 995, Bytes: []byte("tail\n")}}}}
	tt, err := New(Options{Name: "t", Hold: true, Resume: &Resume{Offset: 1000, Scrollback: []byte("old tail\n"), Legs: owed},
		Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return freezable{frontEnd}, nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	if err := tt.AdoptStream("out", LegOptions{Replay: 100, Input: true}, freezable{legEnd}, Counters{Out: 500, In: 7}); err != nil {
		t.Fatal(err)
	}
	if err := tt.AdoptStream("out", LegOptions{}, freezable{legEnd}, Counters{}); !errors.Is(err, ErrExists) {
		t.Fatalf("a second adopt of one name: %v", err)
	}
	client.Write([]byte("typed before the commit\n"))
	tt.Thaw()
	tt.Start()
	if got := readN(t, guest, 24); got != "typed before the commit\n" {
		t.Fatalf("input after thaw %q", got)
	}
	guest.Write([]byte("new\n"))
	if got := readN(t, client, 9); got != "tail\nnew\n" {
		t.Fatalf("adopted leg got %q, want what it owed, then the stream (no replay)", got)
	}
	eventually(t, "the adopted leg's counters to continue", func() bool {
		st := tt.Stats()
		return len(st.Legs) == 1 && st.Legs[0].Name == "out" && st.Legs[0].BytesOut == 509 && st.Legs[0].BytesIn == 7+24
	})
}
