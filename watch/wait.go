package watch

import (
	"errors"
	"io"
	"sync"

	"chartee/chardev"
)

// Waiter is the device of a `ctl wait` leg: it matches one pattern over
// the stream from where it was asked to start and reports the first
// match. It implements chardev.Resumer, so the engine replays the
// scrollback from that offset before live output, and OffsetTracker, so
// matches carry their stream offsets.
type Waiter struct {
	from   uint64
	resume bool

	mu      sync.Mutex
	m       *Matcher
	at      uint64
	start   uint64
	started bool
	match   *Match

	found chan struct{} // closed at the first match
	done  chan struct{}
	once  sync.Once
}

var (
	_ chardev.Chardev       = (*Waiter)(nil)
	_ chardev.Resumer       = (*Waiter)(nil)
	_ chardev.OffsetTracker = (*Waiter)(nil)
)

// NewWaiter waits for p. With resume, matching starts at stream offset
// from (as far back as the scrollback reaches); otherwise at the live end.
func NewWaiter(p Pattern, from uint64, resume bool) *Waiter {
	return &Waiter{from: from, resume: resume, m: NewMatcher([]Pattern{p}),
		found: make(chan struct{}), done: make(chan struct{})}
}

// ResumeFrom is where the leg starts.
func (w *Waiter) ResumeFrom() (uint64, bool) { return w.from, w.resume }

// StreamAt is told the offset of the next write.
func (w *Waiter) StreamAt(off uint64) {
	w.mu.Lock()
	if !w.started {
		w.start, w.started = off, true
	}
	w.at = off
	w.mu.Unlock()
}

// Start is the offset matching really started at (later than the asked
// one when the scrollback did not reach back that far).
func (w *Waiter) Start() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.start
}

// Found is closed at the first match.
func (w *Waiter) Found() <-chan struct{} { return w.found }

// Match is the first match, or nil.
func (w *Waiter) Match() *Match {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.match
}

// LastLines are the last lines seen (for a timeout report).
func (w *Waiter) LastLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.m.Context() {
		out = append(out, string(l))
	}
	return out
}

// Write matches p; after the first match the rest is ignored.
func (w *Waiter) Write(p []byte) (int, error) {
	select {
	case <-w.done:
		return 0, errors.New("watch: waiter closed")
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.match == nil {
		w.m.Feed(p, w.at, func(m Match) {
			if w.match == nil {
				w.match = &m
				close(w.found)
			}
		})
	}
	w.at += uint64(len(p))
	return len(p), nil
}

// Read types nothing; it returns when the waiter is closed.
func (w *Waiter) Read([]byte) (int, error) {
	<-w.done
	return 0, io.EOF
}

// Close ends the leg.
func (w *Waiter) Close() error {
	w.once.Do(func() { close(w.done) })
	return nil
}

// Describe names the device in status.
func (w *Waiter) Describe() string { return "wait" }
