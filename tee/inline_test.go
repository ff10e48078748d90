package tee

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// tryDev is a memdev leg that can also try a write without waiting: each
// TryWrite takes 0 to 3 bytes in turn (a socket whose buffer is full, or
// nearly), so both the inline path and the writer goroutine carry bytes.
// unsupported makes it answer ErrUnsupported instead.
type tryDev struct {
	*memdev.Device
	mu          sync.Mutex
	turn        int
	unsupported bool
	tries       atomic.Int64
	took        atomic.Int64
}

func (d *tryDev) TryWrite(p []byte) (int, error) {
	d.tries.Add(1)
	if d.unsupported {
		return 0, fmt.Errorf("try: %w", chardev.ErrUnsupported)
	}
	d.mu.Lock()
	k := min(d.turn%4, len(p))
	d.turn++
	d.mu.Unlock()
	if k == 0 {
		return 0, nil
	}
	n, err := d.Device.Write(p[:k])
	d.took.Add(int64(n))
	return n, err
}

var _ chardev.NonBlockingWriter = (*tryDev)(nil)

// TestInlineWritesKeepTheStreamExact: output written inline by the
// frontend reader (partly, or not at all when the device would block) and
// by the leg's writer goroutine reaches the device exactly once, in order.
func TestInlineWritesKeepTheStreamExact(t *testing.T) {
	for _, pol := range []Overflow{Block, Drop} {
		t.Run(pol.String(), func(t *testing.T) {
			h := newHarness(t, Options{})
			d := &tryDev{Device: memdev.New("try")}
			if err := h.tee.Attach(context.Background(), "try", LegOptions{Overflow: pol, Queue: 1 << 20}, memdev.Opener(nil, d)); err != nil {
				t.Fatal(err)
			}
			var stream []byte
			for i := range 300 {
				p := pattern(1+i%7, i)
				stream = append(stream, p...)
				h.emit(p)
			}
			waitBytes(t, d.Device, stream)
			if got := d.Written(); !bytes.Equal(got, stream) {
				t.Fatalf("device got %d bytes, want the stream's %d", len(got), len(stream))
			}
			if d.tries.Load() == 0 || d.took.Load() == 0 || d.took.Load() == int64(len(stream)) {
				t.Fatalf("inline tries %d took %d of %d: not both paths exercised", d.tries.Load(), d.took.Load(), len(stream))
			}
			// The counters follow the write that delivered the bytes.
			eventually(t, "stats to count the stream", func() bool {
				ls, _ := legStats(h.tee, "try")
				return ls.BytesOut == uint64(len(stream)) && ls.QueueBytes == 0
			})
		})
	}
}

// TestIdleLegHasOneGoroutine: an idle leg keeps only its reader; its
// writer runs while there is output to write.
func TestIdleLegHasOneGoroutine(t *testing.T) {
	h := newHarness(t, Options{})
	const n = 50
	devs := make([]*memdev.Device, n)
	before := runtime.NumGoroutine()
	for i := range n {
		devs[i] = h.attach(string(rune('a'+i%26))+string(rune('a'+i/26)), LegOptions{})
	}
	h.emit([]byte("x"))
	for _, d := range devs {
		waitBytes(t, d, []byte("x"))
	}
	eventually(t, "writers gone idle", func() bool { return runtime.NumGoroutine()-before <= n+2 })
}
