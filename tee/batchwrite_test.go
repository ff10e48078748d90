package tee

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// batchDev writes a batch in one call (chardev.BuffersWriter), as a raw
// client's socket or a raw capture file does, and notes how many buffers
// each call got; writes is how often the engine called Write instead.
type batchDev struct {
	*memdev.Device
	coalesce time.Duration
	writes   atomic.Int64
	mu       sync.Mutex
	calls    []int // buffers per WriteBuffers call
}

func (d *batchDev) CoalesceDelay() time.Duration { return d.coalesce }

func (d *batchDev) Write(p []byte) (int, error) {
	d.writes.Add(1)
	return d.Device.Write(p)
}

func (d *batchDev) WriteBuffers(bufs [][]byte) (int64, error) {
	d.mu.Lock()
	d.calls = append(d.calls, len(bufs))
	d.mu.Unlock()
	var all []byte
	for _, b := range bufs {
		all = append(all, b...)
	}
	n, err := d.Device.Write(all)
	return int64(n), err
}

// mostBuffers is the largest number of buffers one call got.
func (d *batchDev) mostBuffers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	most := 0
	for _, n := range d.calls {
		most = max(most, n)
	}
	return most
}

var (
	_ chardev.BuffersWriter = (*batchDev)(nil)
	_ chardev.Coalescer     = (*batchDev)(nil)
)

func attachBatchDev(t *testing.T, h *harness, name string, coalesce time.Duration) *batchDev {
	t.Helper()
	d := &batchDev{Device: memdev.New(name), coalesce: coalesce}
	if err := h.tee.Attach(context.Background(), name, LegOptions{Overflow: Block, Queue: 1 << 20}, memdev.Opener(nil, d)); err != nil {
		t.Fatal(err)
	}
	if coalesce > 0 {
		// Past maxCoalesceDelay, which only a test can do: what is
		// held is decided by the batch size alone, not by how long a
		// loaded machine takes to emit it.
		l := findLeg(t, h.tee, name)
		l.mu.Lock()
		l.coalesce = coalesce
		l.mu.Unlock()
	}
	return d
}

// TestBatchWrittenInOneCall: a leg whose device writes a batch in one
// call gets its queued spans that way — several spans per call, never a
// Write per span — and the stream exact. (DESIGN.md: the writer hands up
// to 64 queued spans to the device as one writev.)
func TestBatchWrittenInOneCall(t *testing.T) {
	h := newHarness(t, Options{})
	d := attachBatchDev(t, h, "client", 0)
	d.Stall() // the spans below queue up behind the first write
	var all []byte
	for i := range 10 {
		p := pattern(1000, i) // past compactMax: each is a span of its own
		h.emit(p)
		all = append(all, p...)
	}
	d.Resume()
	waitBytes(t, d.Device, all)
	if most := d.mostBuffers(); most < 2 {
		t.Errorf("the most spans one call got is %d; want the queued spans in one call", most)
	}
	if n := d.writes.Load(); n != 0 {
		t.Errorf("the engine called Write %d times on a device that takes batches", n)
	}
}

// TestCaptureBatchInOneCall: a coalescing capture that writes a batch in
// one call gets each batch's worth of 4 KiB reads in one call.
func TestCaptureBatchInOneCall(t *testing.T) {
	h := newHarness(t, Options{})
	d := attachBatchDev(t, h, "cap", time.Hour)
	var all []byte
	for i := 0; len(all) < coalesceBatch; i++ {
		p := pattern(4<<10, i)
		h.emit(p)
		all = append(all, p...)
	}
	waitBytes(t, d.Device, all)
	if most, want := d.mostBuffers(), coalesceBatch/(4<<10)/2; most < want {
		t.Errorf("the most spans one call got is %d; want a batch's %d reads mostly in one call (≥ %d)", most, coalesceBatch/(4<<10), want)
	}
	if n := d.writes.Load(); n != 0 {
		t.Errorf("the engine called Write %d times on a device that takes batches", n)
	}
}
