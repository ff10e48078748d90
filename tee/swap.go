package tee

import (
	"context"
	"fmt"
	"time"

	"chartee/chardev"
)

// Swap replaces single-stream backend name with the device open gives.
//
// The new device is opened first: an open error is returned and nothing
// changes. Then, under the tee lock, the stream is cut at offset X: the old
// leg gets no byte from X on and the new leg starts at X.
//
// In Handover mode the new leg's writer is held while the old leg drains
// its queue up to X (bounded by the drain timeout). Whatever the old leg
// could not write — it died, or timed out — is handed to the new leg ahead
// of its own bytes, so the old leg's bytes followed by the new leg's equal
// the stream exactly. In Overlap mode the new leg starts at once and the
// old one keeps receiving until it is idle at or past X; the report says
// how many bytes both got.
//
// Swap runs in the caller's goroutine, never in a leg's read path.
func (t *Tee) Swap(ctx context.Context, name string, open chardev.Opener, so SwapOptions) (SwapReport, error) {
	start := time.Now()
	rep := SwapReport{Backend: name, Mode: so.Mode.String()}
	t.mu.Lock()
	b, ok := t.backends[name]
	switch {
	case t.closed:
		t.mu.Unlock()
		return rep, ErrClosed
	case !ok:
		t.mu.Unlock()
		t.swapsFailed[swapLeg].Add(1)
		return rep, fmt.Errorf("tee %s: swap %q: %w", t.opts.Name, name, ErrNotFound)
	case b.source != nil:
		t.mu.Unlock()
		t.swapsFailed[swapLeg].Add(1)
		return rep, fmt.Errorf("tee %s: swap %q: backend is a source; swap its listener instead", t.opts.Name, name)
	}
	opts := b.opts
	timeout := t.opts.DrainTimeout
	t.mu.Unlock()
	if so.Options != nil {
		opts = *so.Options
	}

	dev, err := open.Open(ctx)
	if err != nil {
		t.swapsFailed[swapLeg].Add(1)
		return rep, fmt.Errorf("tee %s: swap %s: open: %w", t.opts.Name, name, err)
	}

	t.mu.Lock()
	if t.closed || t.backends[name] != b {
		t.mu.Unlock()
		dev.Close()
		t.swapsFailed[swapLeg].Add(1)
		return rep, fmt.Errorf("tee %s: swap %s: backend went away", t.opts.Name, name)
	}
	var old *leg
	if len(b.legs) > 0 {
		old = b.legs[len(b.legs)-1]
		old.mu.Lock()
		if old.finishing {
			// It failed and its writer is already removing it: there
			// is no previous leg to drain or hand over from.
			old.mu.Unlock()
			old = nil
		} else {
			old.swapping = true
			old.mu.Unlock()
		}
	}
	x := t.offset
	rep.Cut = x
	var oldOut uint64
	if old != nil {
		old.mu.Lock()
		oldOut = old.c.out.Load()
		if so.Mode == Overlap {
			old.overlap, old.overlapAt = true, x
		} else {
			old.end = x
		}
		old.dataReady.Broadcast()
		old.mu.Unlock()
	}
	b.opts = opts
	opts.Replay = 0 // the new leg continues the stream; it needs no scrollback
	nl := t.newLegLocked(b, dev, opts, false)
	if old != nil && so.Mode == Handover {
		nl.held = true
		// A chunk before the cut that the frontend reader is still
		// waiting to give the old leg goes to the new one if the old
		// one fails first (see pushBlocking).
		old.mu.Lock()
		old.successor = nl
		old.mu.Unlock()
	}
	t.mu.Unlock()
	t.startLeg(nl)

	if old == nil {
		rep.NewStart = x
		rep.Elapsed = time.Since(start)
		rep.OldErr = "no previous leg"
		t.swapDone(rep, nl)
		return rep, nil
	}

	if so.DrainTimeout > 0 {
		timeout = so.DrainTimeout
	}
	timer := time.NewTimer(timeout)
	select {
	case <-old.writerDone:
	case <-timer.C:
		old.fail(errDrainTimeout)
		<-old.writerDone
	case <-ctx.Done():
		old.fail(fmt.Errorf("swap: %w", ctx.Err()))
		<-old.writerDone
	}
	timer.Stop()

	old.mu.Lock()
	if old.failed != nil {
		rep.OldErr = old.failed.Error()
	}
	oldEnd := old.next
	old.mu.Unlock()
	owed, owedBytes := old.takeOwed()
	rep.Drained = old.c.out.Load() - oldOut
	if so.Mode == Handover {
		// Whatever the old leg could not write goes to the new leg first.
		rep.Handed = owedBytes
		nl.mu.Lock()
		nl.q.pushFront(owed)
		for _, s := range owed {
			nl.charged += s.c.charge()
		}
		nl.queued += int(owedBytes)
		nl.c.queued.Store(int64(nl.queued))
		if nl.q.len() > 0 {
			// The first byte owed: a handed-over span, or a chunk the
			// reader passed on from the old leg (pushOwed). Not
			// nl.next - owedBytes: a drop leg may have gaps.
			f := nl.q.front()
			nl.next = f.c.off + uint64(f.skip)
		}
		rep.NewStart = nl.next
		nl.c.first.Store(nl.next)
		nl.c.next.Store(nl.next)
		nl.held = false
		nl.dataReady.Signal()
		nl.mu.Unlock()
	} else {
		rep.NewStart = x
		for _, s := range owed {
			s.c.release()
		}
		if oldEnd > x {
			rep.Overlapped = oldEnd - x
		}
	}
	t.finishLeg(old, errSwappedOut)
	// The old device is closed once the swap returns (a capture flushed,
	// a pty link removed), unless its Close hangs past the drain timeout.
	t.waitDevicesClosed([]*leg{old}, timeout)
	rep.Elapsed = time.Since(start)
	t.swapDone(rep, nl)
	return rep, nil
}

func (t *Tee) swapDone(rep SwapReport, nl *leg) {
	t.swapsDone[swapLeg].Add(1)
	t.swapTimes[swapLeg].observe(rep.Elapsed)
	r := rep
	t.emit(Event{Kind: EventSwap, Backend: rep.Backend, Leg: nl.name, Offset: rep.Cut, Swap: &r,
		Reason: fmt.Sprintf("%s swap: drained %d, handed over %d", rep.Mode, rep.Drained, rep.Handed)})
}
