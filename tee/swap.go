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
	b, opts, timeout, err := t.swapTarget(name)
	if err != nil {
		return rep, err
	}
	if so.Options != nil {
		opts = *so.Options
	}
	if so.DrainTimeout > 0 {
		timeout = so.DrainTimeout
	}
	dev, err := open.Open(ctx)
	if err != nil {
		t.swapsFailed[swapLeg].Add(1)
		return rep, fmt.Errorf("tee %s: swap %s: open: %w", t.opts.Name, name, err)
	}
	cut, err := t.cutOver(b, dev, opts, so.Mode)
	if err != nil {
		dev.Close()
		t.swapsFailed[swapLeg].Add(1)
		return rep, err
	}
	rep.Cut = cut.x
	if cut.old == nil {
		rep.NewStart = cut.x
		rep.Elapsed = time.Since(start)
		rep.OldErr = "no previous leg"
		t.swapDone(rep, cut.nl)
		return rep, nil
	}
	old := cut.old
	drainOld(ctx, old, timeout)
	old.mu.Lock()
	if old.failed != nil {
		rep.OldErr = old.failed.Error()
	}
	oldEnd := old.next
	old.mu.Unlock()
	owed, owedBytes := old.takeOwed()
	rep.Drained = old.c.out.Load() - cut.oldOut
	if so.Mode == Handover {
		rep.Handed = owedBytes
		rep.NewStart = cut.nl.takeOver(owed, owedBytes)
	} else {
		rep.NewStart = cut.x
		for _, s := range owed {
			s.c.release()
		}
		if oldEnd > cut.x {
			rep.Overlapped = oldEnd - cut.x
		}
	}
	t.finishLeg(old, errSwappedOut)
	// The old device is closed once the swap returns (a capture flushed,
	// a pty link removed), unless its Close hangs past the drain timeout.
	t.waitDevicesClosed([]*leg{old}, timeout)
	rep.Elapsed = time.Since(start)
	t.swapDone(rep, cut.nl)
	return rep, nil
}

// swapTarget finds single-stream backend name for a swap, with its leg
// options and the tee's drain timeout.
func (t *Tee) swapTarget(name string) (*backend, LegOptions, time.Duration, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.backends[name]
	switch {
	case t.closed:
		return nil, LegOptions{}, 0, ErrClosed
	case !ok:
		t.swapsFailed[swapLeg].Add(1)
		return nil, LegOptions{}, 0, fmt.Errorf("tee %s: swap %q: %w", t.opts.Name, name, ErrNotFound)
	case b.source != nil:
		t.swapsFailed[swapLeg].Add(1)
		return nil, LegOptions{}, 0, fmt.Errorf("tee %s: swap %q: backend is a source; swap its listener instead", t.opts.Name, name)
	}
	return b, b.opts, t.opts.DrainTimeout, nil
}

// swapCut is where a swap cut the stream: offset x, the old leg (nil when
// there was none to drain or hand over from), how much it had written by
// then, and the new leg.
type swapCut struct {
	x      uint64
	old    *leg
	oldOut uint64
	nl     *leg
}

// cutOver, under the tee lock, cuts b's stream at the current offset: the
// old leg gets nothing from there on (or, in Overlap mode, keeps going
// until idle past it) and a new leg on dev, started here, begins there. In
// Handover mode the new leg is held until takeOver.
func (t *Tee) cutOver(b *backend, dev chardev.Chardev, opts LegOptions, mode SwapMode) (swapCut, error) {
	t.mu.Lock()
	if t.closed || t.backends[b.name] != b {
		t.mu.Unlock()
		return swapCut{}, fmt.Errorf("tee %s: swap %s: backend went away", t.opts.Name, b.name)
	}
	cut := swapCut{x: t.offset, old: b.swappableLeg()}
	if old := cut.old; old != nil {
		old.mu.Lock()
		cut.oldOut = old.c.out.Load()
		if mode == Overlap {
			old.overlap, old.overlapAt = true, cut.x
		} else {
			old.end = cut.x
		}
		old.wakeLocked()
		old.mu.Unlock()
	}
	b.opts = opts
	opts.Replay = 0 // the new leg continues the stream; it needs no scrollback
	cut.nl = t.newLegLocked(b, dev, opts, false)
	if cut.old != nil && mode == Handover {
		cut.nl.held = true
		// A chunk before the cut that the frontend reader is still
		// waiting to give the old leg goes to the new one if the old
		// one fails first (see pushBlocking).
		cut.old.mu.Lock()
		cut.old.successor = cut.nl
		cut.old.mu.Unlock()
	}
	t.mu.Unlock()
	t.startLeg(cut.nl)
	return cut, nil
}

// swappableLeg is b's current leg marked as being swapped out, or nil
// when there is none, or it failed and its writer is already removing it:
// then there is no previous leg to drain or hand over from. The tee lock
// is held.
func (b *backend) swappableLeg() *leg {
	if len(b.legs) == 0 {
		return nil
	}
	old := b.legs[len(b.legs)-1]
	old.mu.Lock()
	defer old.mu.Unlock()
	if old.finishing {
		return nil
	}
	old.swapping = true
	return old
}

// drainOld waits for the old leg's writer to finish up to the cut, failing
// the leg when the drain timeout passes or ctx ends first.
func drainOld(ctx context.Context, old *leg, timeout time.Duration) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-old.writerDone.done():
	case <-timer.C:
		old.fail(errDrainTimeout)
		<-old.writerDone.done()
	case <-ctx.Done():
		old.fail(fmt.Errorf("swap: %w", ctx.Err()))
		<-old.writerDone.done()
	}
}

// takeOver gives the held new leg of a Handover swap what the old leg
// could not write, ahead of its own bytes, and releases it. It returns the
// stream offset of the new leg's first byte.
func (nl *leg) takeOver(owed []span, owedBytes uint64) uint64 {
	nl.mu.Lock()
	defer nl.mu.Unlock()
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
	nl.c.first.Store(nl.next)
	nl.c.next.Store(nl.next)
	nl.held = false
	nl.wakeLocked()
	return nl.next
}

func (t *Tee) swapDone(rep SwapReport, nl *leg) {
	t.swapsDone[swapLeg].Add(1)
	t.swapTimes[swapLeg].observe(rep.Elapsed)
	r := rep
	t.emit(Event{Kind: EventSwap, Backend: rep.Backend, Leg: nl.name, Offset: rep.Cut, Swap: &r,
		Reason: fmt.Sprintf("%s swap: drained %d, handed over %d", rep.Mode, rep.Drained, rep.Handed)})
}
