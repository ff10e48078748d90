package tee

import (
	"context"
	"errors"
	"fmt"
	"time"

	"chartee/chardev"
)

// EventWatch is a watch's match, or one of its actions failing.
const EventWatch EventKind = "watch"

// Emit publishes e as an event of this tee (watches report matches and
// action failures this way). Tee and Time are filled in.
func (t *Tee) Emit(e Event) { t.emit(e) }

// Pacing slows input to the frontend for devices without flow control
// (bootloaders, BMCs): CharDelay after every byte, LineDelay after every
// line ending. It applies to everything typed, from every leg, `send` and
// watches alike; the order and interleaving of input are unchanged.
type Pacing struct {
	CharDelay time.Duration
	LineDelay time.Duration
}

func (p Pacing) on() bool { return p.CharDelay > 0 || p.LineDelay > 0 }

// SetPacing changes input pacing while the tee runs.
func (t *Tee) SetPacing(p Pacing) {
	if !p.on() {
		t.pacing.Store(nil)
		return
	}
	t.pacing.Store(&p)
}

// writeFrontend writes input to the frontend device, paced if asked. A
// paced write stops early when the tee closes; the bytes not written stay
// queued like after any short write. No lock is held while pacing, so
// stats, metrics and new input are not delayed.
func (t *Tee) writeFrontend(dev chardev.Chardev, b []byte) (int, error) {
	p := t.pacing.Load()
	if p == nil {
		return dev.Write(b)
	}
	n := 0
	for n < len(b) {
		k := pacedPiece(b[n:], *p)
		w, err := dev.Write(b[n : n+k])
		n += w
		if err != nil {
			return n, err
		}
		if d := pauseAfter(b, n, *p); d > 0 && !t.sleep(d) {
			return n, nil
		}
	}
	return n, nil
}

// pacedPiece is how many bytes of b go out before the next pause: one
// with a character delay, else up to and including the first line ending.
func pacedPiece(b []byte, p Pacing) int {
	if p.CharDelay > 0 {
		return 1
	}
	for i, c := range b {
		if c == '\r' || c == '\n' {
			return i + 1
		}
	}
	return len(b)
}

// pauseAfter is the pause once b[:n] has been written. "\r\n" is one line
// ending: the line delay comes after the "\n".
func pauseAfter(b []byte, n int, p Pacing) time.Duration {
	last := b[n-1]
	eol := last == '\n' || (last == '\r' && (n == len(b) || b[n] != '\n'))
	if eol && p.LineDelay > 0 {
		return max(p.LineDelay, p.CharDelay)
	}
	return p.CharDelay
}

// sleep waits d unless the tee closes first (false).
func (t *Tee) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// SendResult says what Send did.
type SendResult struct {
	// Written is how many bytes reached the frontend.
	Written int `json:"written"`
	// Offset is the output stream offset when the input was queued:
	// whatever the console answers comes at or after it, so a wait from
	// there cannot miss the answer.
	Offset uint64 `json:"offset"`
}

// ErrInputFull is returned (wrapped) when input does not fit in the input
// buffer; nothing of it is sent.
var ErrInputFull = errors.New("input buffer full")

// Send types p into the frontend on behalf of who (a script, a watch),
// under the input rules of a leg: in exclusive mode it is refused while a
// leg holds the write lock, unless force. The input goes through the same
// merge as the legs' (never split, never interleaved within) and Send
// returns once it has been written to the frontend, or ctx ends. Input
// that does not fit in the input buffer is refused whole.
func (t *Tee) Send(ctx context.Context, who string, p []byte, force bool) (SendResult, error) {
	m := &t.input
	res := SendResult{Offset: t.Offset()}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return res, ErrClosed
	}
	if m.mode == Exclusive && !force {
		if h := m.holderLocked(time.Now()); h != nil {
			m.mu.Unlock()
			return res, fmt.Errorf("tee %s: send from %s: write lock held by %s (force overrides): %w",
				t.opts.Name, who, h.name, chardev.ErrNotPermitted)
		}
	}
	if m.bytes+len(p) > m.limit {
		m.mu.Unlock()
		return res, fmt.Errorf("tee %s: send from %s: %d bytes, %d queued, buffer %d: %w",
			t.opts.Name, who, len(p), m.bytes, m.limit, ErrInputFull)
	}
	for rest := p; len(rest) > 0; {
		c := t.inChunks.get()
		k := copy(c.buf, rest)
		c.b = c.buf[:k]
		rest = rest[k:]
		m.q.push(span{c: c})
	}
	m.bytes += len(p)
	target := m.queued + uint64(len(p))
	m.queued = target
	m.ready.Signal()
	m.mu.Unlock()
	err := t.waitConsumed(ctx, target)
	if err == nil {
		res.Written = len(p)
	}
	return res, err
}

// waitConsumed waits until the input writer has consumed (written or
// purged) every input byte queued up to target.
func (t *Tee) waitConsumed(ctx context.Context, target uint64) error {
	m := &t.input
	stop := context.AfterFunc(ctx, func() {
		m.mu.Lock()
		m.consumedCh.Broadcast()
		m.mu.Unlock()
	})
	defer stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.consumed < target {
		if m.closed {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("tee %s: send: still queued (frontend down or paced): %w", t.opts.Name, err)
		}
		m.consumedCh.Wait()
	}
	return nil
}
