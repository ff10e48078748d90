package tee

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// trickle is a frontend that returns k bytes per Read as fast as it is
// read: a serial console delivering a few bytes per interrupt, at a rate
// no real one reaches.
type trickle struct {
	k      int
	n      int
	paused atomic.Bool
	done   chan struct{}
	closed sync.Once
}

func newTrickle(k int) *trickle { return &trickle{k: k, done: make(chan struct{})} }

func (d *trickle) Read(p []byte) (int, error) {
	select {
	case <-d.done:
		return 0, memdev.ErrClosed
	default:
	}
	if d.paused.Load() {
		// Hold still, so that what the heap holds is what the tee
		// keeps, not garbage allocated during the collection.
		<-d.done
		return 0, memdev.ErrClosed
	}
	n := min(d.k, len(p))
	for i := range n {
		p[i] = byte('a' + (d.n+i)%26)
	}
	d.n += n
	return n, nil
}

func (d *trickle) Write(p []byte) (int, error) { return len(p), nil }
func (d *trickle) Close() error                { d.closed.Do(func() { close(d.done) }); return nil }

// heapInUse is the bytes of live heap objects after a full collection
// (twice, so sync.Pool's victim cache is emptied too).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestQueueBoundsLegMemory: a leg's queue limit bounds the memory its
// queued output keeps alive, whatever the frontend's read size. A stalled
// leg fed 1-byte and 8-byte reads must cost about its queue limit (the
// bound in docs/DESIGN.md), not one pooled read buffer per read; and the
// memory comes back once the leg and the tee are gone.
func TestQueueBoundsLegMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap: not with -short")
	}
	for _, tc := range []struct {
		read  int
		queue int
		pol   Overflow
	}{
		{1, 4 << 10, Drop},
		{1, 4 << 10, Block},
		{8, 16 << 10, Drop},
		{8, 16 << 10, Block},
	} {
		t.Run(fmt.Sprintf("read=%d/queue=%d/%s", tc.read, tc.queue, tc.pol), func(t *testing.T) {
			base := heapInUse()
			front := newTrickle(tc.read)
			opts := Options{Name: "mem", Frontend: memdev.Opener(nil, front), Hold: true}
			tee, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tee.Close()
			leg := memdev.New("slow")
			leg.Stall()
			if err := tee.Attach(context.Background(), "slow", LegOptions{Queue: tc.queue, Overflow: tc.pol}, memdev.Opener(nil, leg)); err != nil {
				t.Fatal(err)
			}
			tee.Start()
			// Full: a drop leg has dropped many times its queue, a block
			// leg holds the reader (the offset stops moving).
			full := func() bool {
				ls, ok := legStats(tee, "slow")
				if !ok {
					return false
				}
				if tc.pol == Drop {
					return ls.Dropped > uint64(8*tc.queue)
				}
				return ls.QueueBytes >= int64(tc.queue/2) && internalOffset(tee) > tee.Offset()
			}
			eventually(t, "stalled leg full", full)
			if tc.pol == Block {
				// The reader waits for room: the offset holds still.
				eventually(t, "the frontend reader waiting for the full block leg", func() bool {
					o := tee.Offset()
					time.Sleep(20 * time.Millisecond)
					return tee.Offset() == o && internalOffset(tee) > o
				})
			}
			front.paused.Store(true)
			used := heapInUse() - min(base, heapInUse())
			bound := legMemoryBound(tc.queue, tee.opts) + teeMemoryBound(tee.opts)
			const noise = 1 << 20 // GC, test and runtime bookkeeping
			t.Logf("heap in use by the tee: %d KiB (bound %d KiB + %d KiB noise)", used>>10, bound>>10, noise>>10)
			if used > uint64(bound+noise) {
				t.Fatalf("a stalled %s leg with a %d-byte queue fed %d-byte reads keeps %d KiB alive; bound %d KiB",
					tc.pol, tc.queue, tc.read, used>>10, bound>>10)
			}

			if err := tee.Detach("slow"); err != nil {
				t.Fatal(err)
			}
			tee.Close()
			if after := heapInUse(); after > base+noise {
				t.Fatalf("%d KiB still in use after the leg and the tee are gone", (after-base)>>10)
			}
		})
	}
}

var _ chardev.Chardev = (*trickle)(nil)
