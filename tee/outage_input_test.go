package tee

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"chartee/chardev/memdev"
)

// queuedInputBuffers is the buffer memory the queued input holds.
func queuedInputBuffers(t *Tee) (pinned, payload int) {
	m := &t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.q.len() {
		s := m.q.at(i)
		pinned += cap(s.c.buf)
		payload += len(s.c.b) - s.skip
	}
	return pinned, payload
}

// TestInputTypedByteByByteDuringAnOutageStaysCompact: input waiting for a
// frontend that is down is bounded by InputBuffer bytes; keystroke-sized
// reads must not each pin a whole read buffer, or the bound would be worth
// 4 KiB per byte of memory.
func TestInputTypedByteByByteDuringAnOutageStaysCompact(t *testing.T) {
	h := newHarness(t, Options{Reconnect: Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}})
	a := h.attach("a", LegOptions{Input: true})
	b := h.attach("b", LegOptions{Input: true})
	h.front.FailReads(errors.New("unplugged"))
	eventually(t, "frontend down", func() bool { return !h.tee.Stats().Frontend.Up })

	var want []byte
	for i := range 1500 {
		d, ch := a, byte('a'+i%26)
		if i%3 == 0 {
			d, ch = b, byte('A'+i%26)
		}
		d.Feed([]byte{ch})
		if !d.WaitFed(wait) {
			t.Fatal("input not read")
		}
		want = append(want, ch)
	}
	eventually(t, "input queued", func() bool { _, n := queuedInputBuffers(h.tee); return n == len(want) })
	if pinned, payload := queuedInputBuffers(h.tee); pinned > 4*payload+8<<10 {
		t.Fatalf("%d bytes of input pin %d bytes of buffers", payload, pinned)
	}

	again := memdev.New("front-again")
	memdev.Add(h.open, again)
	if !again.WaitWritten(len(want), wait) {
		t.Fatalf("frontend got %d of %d bytes", again.WrittenLen(), len(want))
	}
	// Each leg's bytes arrive in order (which leg's read is queued first
	// is a race between their readers).
	got := again.Written()
	for _, isA := range []bool{true, false} {
		leg := func(p []byte) []byte {
			var out []byte
			for _, c := range p {
				if (c >= 'a') == isA {
					out = append(out, c)
				}
			}
			return out
		}
		if g, w := leg(got), leg(want); !bytes.Equal(g, w) {
			t.Fatalf("leg a=%v: frontend got %q, want %q", isA, g, w)
		}
	}
}
