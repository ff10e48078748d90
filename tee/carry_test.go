package tee

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"chartee/chardev"
)

// cuttable is a freezable TCP connection whose writes can be cut too,
// the way the network backends do it: a write deadline in the past.
type cuttable struct{ freezable }

func (c cuttable) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = chardev.ErrFrozen
	}
	return n, err
}
func (c cuttable) FreezeWrite() error { return c.SetWriteDeadline(time.Unix(1, 0)) }
func (c cuttable) ThawWrite() error   { return c.SetWriteDeadline(time.Time{}) }

// dup is what a new process gets for c: the same socket under another
// descriptor, so closing the old side's copy leaves it open.
func dup(t *testing.T, c net.Conn) net.Conn {
	t.Helper()
	f, err := c.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func freezeFor(t *testing.T, tt *Tee, bound time.Duration) *Frozen {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	fz, err := tt.Freeze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return fz
}

// unixPair returns both ends of a unix stream connection (no TCP window
// for a reader that stalled, then reads again, to wait on).
func unixPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("unix", ln.Addr().String())
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

func newCuttableTee(t *testing.T, frontEnd net.Conn, r *Resume) *Tee {
	t.Helper()
	tt, err := New(Options{Name: "t", Resume: r, Hold: r != nil, InputBuffer: 16 << 20, Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
		return cuttable{freezable{frontEnd}}, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	return tt
}

// TestFreezeCarriesOwedOutput: a block leg whose client stopped reading
// does not fail the upgrade when the drain bound expires; what it still
// owes is carried, and the leg of the same name in the new tee writes
// exactly those bytes first, then the stream from the cut on: the client
// sees every byte once, in order.
func TestFreezeCarriesOwedOutput(t *testing.T) {
	guest, frontEnd := loopPair(t)
	client, legEnd := unixPair(t)
	legEnd.(*net.UnixConn).SetWriteBuffer(8 << 10)
	old := newCuttableTee(t, frontEnd, nil)
	if _, err := old.attachLeg(mustReserve(t, old, "c"), cuttable{freezable{legEnd}},
		LegOptions{Queue: 64 << 10, Overflow: Block}, false); err != nil {
		t.Fatal(err)
	}
	// More than the leg's queue and both kernels' buffers hold: the
	// client does not read, so the leg is stalled at the cut.
	stream := make([]byte, 8<<20)
	rand.Read(stream)
	sent := make(chan int, 1)
	go func() {
		n, _ := guest.Write(stream)
		sent <- n
	}()
	eventually(t, "the leg to back up", func() bool {
		st := old.Stats()
		return len(st.Legs) == 1 && st.Legs[0].QueueBytes >= 16<<10
	})
	fz := freezeFor(t, old, 300*time.Millisecond)
	leg := fz.Backends[0].Legs[0]
	if !leg.Frozen || leg.Owed.Bytes() == 0 {
		t.Fatalf("leg at the cut: frozen %v, owes %d bytes", leg.Frozen, leg.Owed.Bytes())
	}
	if fz.Carried() != leg.Owed.Bytes() {
		t.Fatalf("Carried %d, the leg owes %d", fz.Carried(), leg.Owed.Bytes())
	}
	spans := leg.Owed.Spans
	if end := spans[len(spans)-1].Off + uint64(len(spans[len(spans)-1].Bytes)); end != fz.Offset {
		t.Fatalf("owed bytes end at %d, the cut is %d", end, fz.Offset)
	}
	// The new process: same sockets, resumed at the cut.
	nt := newCuttableTee(t, dup(t, frontEnd), &Resume{Offset: fz.Offset, Scrollback: fz.Scrollback,
		Legs: map[string]Owed{"c": leg.Owed}})
	newLeg := dup(t, legEnd)
	if err := nt.Attach(context.Background(), "c", LegOptions{Queue: 64 << 10, Overflow: Block, Replay: 1 << 20},
		chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return cuttable{freezable{newLeg}}, nil })); err != nil {
		t.Fatal(err)
	}
	old.Close() // the old process exits: its descriptors close, the sockets stay
	nt.Thaw()
	nt.Start()
	got := make([]byte, len(stream))
	client.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	if n := <-sent; n != len(stream) {
		t.Fatalf("guest wrote %d of %d", n, len(stream))
	}
	if !bytes.Equal(got, stream) {
		i := 0
		for i < len(got) && got[i] == stream[i] {
			i++
		}
		t.Fatalf("the client's stream differs from byte %d (cut at %d)", i, fz.Offset)
	}
	st := nt.Stats()
	if st.Legs[0].BytesOut < leg.Owed.Bytes() || st.Offset != uint64(len(stream)) {
		t.Fatalf("new tee: leg wrote %d, offset %d", st.Legs[0].BytesOut, st.Offset)
	}
}

// TestFreezeCarriesTypedInput: input queued for a frontend that stopped
// reading is carried when the drain bound expires; the new tee writes it
// first, then what is typed afterwards.
func TestFreezeCarriesTypedInput(t *testing.T) {
	guest, frontEnd := unixPair(t)
	client, legEnd := loopPair(t)
	old := newCuttableTee(t, frontEnd, nil)
	if _, err := old.attachLeg(mustReserve(t, old, "c"), cuttable{freezable{legEnd}}, LegOptions{Input: true}, false); err != nil {
		t.Fatal(err)
	}
	typed := make([]byte, 4<<20)
	rand.Read(typed)
	go client.Write(typed)
	eventually(t, "typed input to back up", func() bool {
		return old.Stats().Legs[0].BytesIn == uint64(len(typed)) && old.input.pendingBytes() > 0
	})
	fz := freezeFor(t, old, 300*time.Millisecond)
	if len(fz.Input) == 0 || fz.Carried() == 0 {
		t.Fatalf("no typed input carried (%d chunks)", len(fz.Input))
	}
	for _, in := range fz.Input {
		if in.Leg != "c" {
			t.Fatalf("carried input typed by %q, want c", in.Leg)
		}
	}
	nt := newCuttableTee(t, dup(t, frontEnd), &Resume{Offset: fz.Offset, Input: fz.Input})
	newLeg := dup(t, legEnd)
	if err := nt.Attach(context.Background(), "c", LegOptions{Input: true},
		chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return cuttable{freezable{newLeg}}, nil })); err != nil {
		t.Fatal(err)
	}
	old.Close()
	nt.Thaw()
	nt.Start()
	got := make([]byte, len(typed))
	guest.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(guest, got); err != nil {
		t.Fatalf("reading the input: %v", err)
	}
	if !bytes.Equal(got, typed) {
		i := 0
		for i < len(got) && got[i] == typed[i] {
			i++
		}
		t.Fatalf("the frontend's input differs from byte %d", i)
	}
}

// TestFreezeRollbackWritesOwed: a rolled-back freeze that cut a stalled
// leg writes what it owed itself, once its client reads again.
func TestFreezeRollbackWritesOwed(t *testing.T) {
	guest, frontEnd := loopPair(t)
	client, legEnd := unixPair(t)
	legEnd.(*net.UnixConn).SetWriteBuffer(8 << 10)
	old := newCuttableTee(t, frontEnd, nil)
	if _, err := old.attachLeg(mustReserve(t, old, "c"), cuttable{freezable{legEnd}},
		LegOptions{Queue: 64 << 10, Overflow: Block}, false); err != nil {
		t.Fatal(err)
	}
	stream := make([]byte, 8<<20)
	rand.Read(stream)
	go guest.Write(stream)
	eventually(t, "the leg to back up", func() bool { return old.Stats().Legs[0].QueueBytes >= 16<<10 })
	fz := freezeFor(t, old, 200*time.Millisecond)
	if fz.Carried() == 0 {
		t.Fatal("nothing owed at the cut")
	}
	old.Thaw()
	got := make([]byte, len(stream))
	client.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("after the rollback: %v", err)
	}
	if !bytes.Equal(got, stream) {
		t.Fatal("the stream after a rollback differs")
	}
}

// TestFreezeCarriesWriteLockAndLine: the write-lock holder and the line
// state set by a client are restored in the new tee.
func TestFreezeCarriesWriteLockAndLine(t *testing.T) {
	_, frontEnd := loopPair(t)
	client, legEnd := loopPair(t)
	old, err := New(Options{Name: "t", Input: Exclusive, ExclusiveIdle: time.Hour,
		Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return freezable{frontEnd}, nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.attachLeg(mustReserve(t, old, "c"), freezable{legEnd}, LegOptions{Input: true}, false); err != nil {
		t.Fatal(err)
	}
	ls := chardev.LineSettings{Baud: 9600, DataBits: 7, Parity: chardev.ParityEven, StopBits: chardev.StopBits2}
	if err := old.SetLineSettings(ls); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("x"))
	eventually(t, "the write lock", func() bool { return old.Stats().WriteLock == "c" })
	fz := freezeFor(t, old, wait)
	if fz.WriteLock == nil || fz.WriteLock.Leg != "c" || fz.Line == nil || fz.Line.Settings == nil || *fz.Line.Settings != ls {
		t.Fatalf("frozen: lock %+v, line %+v", fz.WriteLock, fz.Line)
	}
	nt, err := New(Options{Name: "t", Input: Exclusive, ExclusiveIdle: time.Hour, Hold: true,
		Resume:   &Resume{Offset: fz.Offset, WriteLock: fz.WriteLock, Line: fz.Line},
		Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return freezable{dup(t, frontEnd)}, nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	newLeg := dup(t, legEnd)
	if err := nt.Attach(context.Background(), "c", LegOptions{Input: true},
		chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return freezable{newLeg}, nil })); err != nil {
		t.Fatal(err)
	}
	nt.Thaw()
	nt.Start()
	if got := nt.LineSettings(); got != ls {
		t.Fatalf("line after the upgrade: %v, want %v", got, ls)
	}
	if st := nt.Stats(); st.WriteLock != "c" {
		t.Fatalf("write lock after the upgrade: %q, want c", st.WriteLock)
	}
}
