package tee

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"chartee/chardev/memdev"
)

// resumeDev is a memdev leg that asks to resume at want and records the
// stream offsets the engine tells it.
type resumeDev struct {
	*memdev.Device
	want uint64
	ok   bool

	mu  sync.Mutex
	ats []uint64
}

func (d *resumeDev) ResumeFrom() (uint64, bool) { return d.want, d.ok }

func (d *resumeDev) StreamAt(off uint64) {
	d.mu.Lock()
	d.ats = append(d.ats, off)
	d.mu.Unlock()
}

func (d *resumeDev) first() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ats[0]
}

func (h *harness) attachResume(name string, want uint64, ok bool) *resumeDev {
	h.t.Helper()
	d := &resumeDev{Device: memdev.New(name), want: want, ok: ok}
	if err := h.tee.Attach(context.Background(), name, LegOptions{}, memdev.Opener(nil, d)); err != nil {
		h.t.Fatal(err)
	}
	return d
}

func TestResumeFromOffset(t *testing.T) {
	h := newHarness(t, Options{Scrollback: 1000})
	data := pattern(3000, 1)
	h.emit(data[:600])

	// Within the scrollback: exactly the missing bytes, then live output.
	a := h.attachResume("a", 250, true)
	if got := a.first(); got != 250 {
		t.Fatalf("start offset %d, want 250", got)
	}
	// Older than the scrollback keeps: starts at the oldest byte kept;
	// the difference is the exact loss.
	h.emit(data[600:3000])
	b := h.attachResume("b", 100, true)
	if got := b.first(); got < 2000 || got > 3000 {
		t.Fatalf("start offset %d, want within the last 1000+ bytes", got)
	}
	// Beyond the stream (a client of an earlier run): a fresh leg.
	c := h.attachResume("c", 5000, true)
	if got := c.first(); got != 3000 {
		t.Fatalf("fresh leg starts at %d, want 3000", got)
	}
	h.emit([]byte("live"))
	all := append(bytes.Clone(data), "live"...)
	waitBytes(t, a.Device, all[250:])
	waitBytes(t, b.Device, all[b.first():])
	waitBytes(t, c.Device, all[3000:])
}

// segDev records each write with the stream offset it was told.
type segDev struct {
	*resumeDev
	cur  uint64
	segs []seg
}

type seg struct {
	at uint64
	b  []byte
}

func (d *segDev) StreamAt(off uint64) {
	d.resumeDev.StreamAt(off)
	d.mu.Lock()
	d.cur = off
	d.mu.Unlock()
}

func (d *segDev) Write(p []byte) (int, error) {
	n, err := d.resumeDev.Write(p)
	d.mu.Lock()
	d.segs = append(d.segs, seg{d.cur, bytes.Clone(p[:n])})
	d.cur += uint64(n)
	d.mu.Unlock()
	return n, err
}

// TestOffsetTrackerGaps checks that a drop-policy leg is told the offset
// of every batch, so the bytes it gets are exactly where the stream has
// them, and that written + dropped is the whole stream.
func TestOffsetTrackerGaps(t *testing.T) {
	h := newHarness(t, Options{})
	d := &segDev{resumeDev: &resumeDev{Device: memdev.New("slow")}}
	d.Stall() // writes wait: the queue fills and drops
	if err := h.tee.Attach(context.Background(), "slow", LegOptions{Queue: 100}, memdev.Opener(nil, d)); err != nil {
		t.Fatal(err)
	}
	var stream []byte
	for i := range 20 {
		p := pattern(60, i)
		stream = append(stream, p...)
		h.emit(p)
	}
	d.Resume()
	// Let the queue drain first: chunks offered while the first one is
	// still being written would be dropped too, and the test would see
	// no batch after the gap.
	eventually(t, "queue drained after resume", func() bool {
		l, _ := legStats(h.tee, "slow")
		return l.QueueBytes == 0
	})
	for i := range 5 {
		p := pattern(60, 100+i)
		stream = append(stream, p...)
		h.emit(p)
	}
	var l LegStats
	eventually(t, "queue drained", func() bool {
		l, _ = legStats(h.tee, "slow")
		return l.QueueBytes == 0 && l.BytesOut+l.Dropped == uint64(len(stream))
	})
	if l.Dropped == 0 {
		t.Fatal("nothing dropped: the test did not exercise a gap")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	total := 0
	for i, s := range d.segs {
		if !bytes.Equal(s.b, stream[s.at:s.at+uint64(len(s.b))]) {
			t.Fatalf("write %d at offset %d differs from the stream there", i, s.at)
		}
		total += len(s.b)
	}
	if uint64(total) != l.BytesOut || len(d.ats) < 3 {
		t.Fatalf("wrote %d (engine says %d), %d offsets told", total, l.BytesOut, len(d.ats))
	}
}
