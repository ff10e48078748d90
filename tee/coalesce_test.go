package tee

import (
	"bytes"
	"context"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// coalescing is a device that asks for its output in batches (a capture
// file does).
type coalescing struct {
	*memdev.Device
	delay time.Duration
}

func (c *coalescing) CoalesceDelay() time.Duration { return c.delay }

var _ chardev.Coalescer = (*coalescing)(nil)

// attachCoalescing attaches a coalescing device whose delay is then set
// to hold is (past maxCoalesceDelay, which only a test can do), so what
// is held is decided by the batch size alone, not by the machine's load.
func attachCoalescing(t *testing.T, h *harness, name string, hold time.Duration) *memdev.Device {
	t.Helper()
	d := &coalescing{Device: memdev.New(name), delay: time.Hour}
	if err := h.tee.Attach(context.Background(), name, LegOptions{Overflow: Block, Queue: 1 << 20}, memdev.Opener(nil, d)); err != nil {
		t.Fatal(err)
	}
	l := findLeg(t, h.tee, name)
	l.mu.Lock()
	if l.coalesce != maxCoalesceDelay {
		t.Errorf("a device asking for an hour got %v, want the cap %v", l.coalesce, maxCoalesceDelay)
	}
	l.coalesce = hold
	l.mu.Unlock()
	return d.Device
}

func findLeg(t *testing.T, tt *Tee, backend string) *leg {
	t.Helper()
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for _, l := range tt.legs {
		if l.backend.name == backend {
			return l
		}
	}
	t.Fatalf("no leg of %s", backend)
	return nil
}

// TestCoalescingLegHoldsOutputUntilABatch: output for a coalescing leg
// waits (counted in its queue) while the other legs get it at once, and
// is written, whole and in order, as soon as a batch's worth is queued.
func TestCoalescingLegHoldsOutputUntilABatch(t *testing.T) {
	h := newHarness(t, Options{})
	capture := attachCoalescing(t, h, "cap", time.Hour)
	view := h.attach("view", LegOptions{})
	first := []byte("login: ")
	h.emit(first)
	waitBytes(t, view, first)
	ls, _ := legStats(h.tee, "cap")
	if capture.WrittenLen() != 0 || ls.QueueBytes != int64(len(first)) {
		t.Fatalf("coalescing leg: %d bytes written, %d queued; want 0 and %d held", capture.WrittenLen(), ls.QueueBytes, len(first))
	}
	all := append([]byte(nil), first...)
	for i := 0; len(all) < coalesceBatch+len(first); i++ {
		p := pattern(4<<10, i)
		h.emit(p)
		all = append(all, p...)
	}
	waitBytes(t, view, all)
	waitBytes(t, capture, all)
}

// TestCoalescingLegWrittenAfterItsDelay: a lone keystroke's echo reaches
// a coalescing leg once its delay has passed, with nothing more output.
func TestCoalescingLegWrittenAfterItsDelay(t *testing.T) {
	h := newHarness(t, Options{})
	capture := attachCoalescing(t, h, "cap", time.Millisecond)
	h.emit([]byte("x"))
	waitBytes(t, capture, []byte("x"))
	// And again: the timer is rearmed for the next burst.
	h.emit([]byte("y"))
	waitBytes(t, capture, []byte("xy"))
}

// TestCoalescingLegDrainedBySwapAndShutdown: held output is not left
// behind by a handover swap (the old device gets it before the cut) or by
// a shutdown (drained before the tee closes).
func TestCoalescingLegDrainedBySwapAndShutdown(t *testing.T) {
	h := newHarness(t, Options{})
	old := attachCoalescing(t, h, "cap", time.Hour)
	h.emit([]byte("before the swap\n"))
	next := &coalescing{Device: memdev.New("cap2"), delay: time.Hour}
	if _, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, next), SwapOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBytes(t, old, []byte("before the swap\n"))
	l := findLeg(t, h.tee, "cap")
	l.mu.Lock()
	l.coalesce = time.Hour
	l.mu.Unlock()
	h.emit([]byte("after\n"))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.tee.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next.Written(); !bytes.Equal(got, []byte("after\n")) {
		t.Fatalf("after shutdown the new capture holds %q", got)
	}
}
