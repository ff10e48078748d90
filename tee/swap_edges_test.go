package tee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"chartee/chardev/memdev"
)

// internalOffset is the tee's stream offset as the reader assigns it,
// ahead of Offset() while the reader waits for a block leg.
func internalOffset(t *Tee) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.offset
}

// TestHandoverSwapOfABlockedBlockLegKeepsThePendingChunk: the frontend
// reader waits for room in a stalled block leg with a chunk whose offset
// is before the cut. The old leg never drains (a dead disk), so the swap
// times it out; that chunk must reach the new leg like the ones already
// queued, or old+new has a gap.
func TestHandoverSwapOfABlockedBlockLegKeepsThePendingChunk(t *testing.T) {
	h := newHarness(t, Options{ReadSize: 512, DrainTimeout: 100 * time.Millisecond})
	old := h.attach("cap", LegOptions{Overflow: Block, Queue: 700})
	old.Stall()
	c1, c2, c3 := pattern(512, 1), pattern(512, 2), pattern(300, 3)
	h.emit(c1) // queued; the writer is stuck writing it
	h.emit(c2) // 512+512 > 700: the reader waits for room
	eventually(t, "reader waiting on the block leg", func() bool { return internalOffset(h.tee) == 1024 && h.tee.Offset() == 512 })

	nd := memdev.New("cap2")
	rep, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, nd), SwapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.emit(c3)
	stream := append(append(append([]byte{}, c1...), c2...), c3...)
	eventually(t, "stream written", func() bool { return h.tee.Offset() == uint64(len(stream)) })
	gotOld := old.Written()
	if !nd.WaitWritten(len(stream)-len(gotOld), 2*time.Second) {
		t.Logf("new leg has %d bytes, want %d", nd.WrittenLen(), len(stream)-len(gotOld))
	}
	got := append(gotOld, nd.Written()...)
	if !bytes.Equal(got, stream) {
		t.Fatalf("old (%d) + new (%d) != stream (%d); report %+v", len(gotOld), nd.WrittenLen(), len(stream), rep)
	}
}

// TestHandoverSwapOfADropLegThatDroppedDrains: a drop leg that lost a
// chunk to overflow and then caught up has written everything it will
// ever get before the cut, so a handover must find it drained — not wait
// out the drain timeout and fail it.
func TestHandoverSwapOfADropLegThatDroppedDrains(t *testing.T) {
	h := newHarness(t, Options{ReadSize: 512, DrainTimeout: time.Minute})
	old := h.attach("cap", LegOptions{Overflow: Drop, Queue: 700})
	old.Stall()
	c1, c2 := pattern(512, 1), pattern(512, 2)
	h.emit(c1) // queued
	h.emit(c2) // dropped: 512+512 > 700
	eventually(t, "drop counted", func() bool { ls, _ := legStats(h.tee, "cap"); return ls.Dropped == 512 })
	old.Resume()
	waitBytes(t, old, c1)
	eventually(t, "queue empty", func() bool { ls, _ := legStats(h.tee, "cap"); return ls.QueueBytes == 0 })

	nd := memdev.New("cap2")
	done := make(chan SwapReport, 1)
	go func() {
		rep, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, nd), SwapOptions{})
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	var rep SwapReport
	select {
	case rep = <-done:
	case <-time.After(wait):
		// Unblock the swap so the test ends; the failure is reported.
		old.FailWrites(errDrainTimeout)
		h.tee.Detach("cap")
		rep = <-done
		t.Fatalf("handover waited for a drop leg that had nothing left to write: %+v", rep)
	}
	if rep.OldErr != "" || rep.Handed != 0 {
		t.Fatalf("old leg did not drain cleanly: %+v", rep)
	}
	c3 := pattern(100, 3)
	h.emit(c3)
	waitBytes(t, nd, c3)
}

// TestSwapRacingALegThatJustDied: a leg whose device just failed is being
// removed by its own writer while a swap picks it as the old leg. Exactly
// one of them must finish it (finishing twice closed a channel twice).
func TestSwapRacingALegThatJustDied(t *testing.T) {
	h := newHarness(t, Options{ReadSize: 512, DrainTimeout: 50 * time.Millisecond})
	for i := range 200 {
		d := memdev.New(fmt.Sprint("cap", i))
		name := fmt.Sprint("cap", i)
		if err := h.tee.Attach(context.Background(), name, LegOptions{Overflow: Block}, memdev.Opener(nil, d)); err != nil {
			t.Fatal(err)
		}
		d.FailWrites(errors.New("disk gone"))
		h.front.Feed([]byte("x")) // the leg fails on this write
		rep, err := h.tee.Swap(context.Background(), name, memdev.Opener(nil, memdev.New(name+"b")), SwapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.NewStart > rep.Cut {
			t.Fatalf("new leg starts after the cut: %+v", rep)
		}
		if err := h.tee.Detach(name); err != nil {
			t.Fatal(err)
		}
	}
}
