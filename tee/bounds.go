package tee

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Waiting on devices is bounded. Every engine operation that waits for a
// device — a leg's goroutines to stop, a device's or a listener's Close
// to return — waits at most the drain timeout for each stage, and then
// goes on, telling it by an error event; the goroutine still stuck in
// the device is left to finish on its own. So Detach, SwapSource and
// Close return in bounded time whatever a device does (see their docs).

// closeAsync closes c in a goroutine of the tee's closers group, which
// Close waits for (bounded), and returns a channel closed when c's Close
// has returned.
func (t *Tee) closeAsync(c io.Closer) <-chan struct{} {
	done := make(chan struct{})
	t.closers.Add(1)
	go func() {
		defer t.closers.Done()
		defer close(done)
		c.Close()
	}()
	return done
}

// deadline is one bounded wait of an operation: every wait on it ends at
// the same time.
type deadline struct {
	t     *Tee
	what  string
	limit time.Duration
	timer *time.Timer
	hit   bool
}

func (t *Tee) newDeadline(what string, limit time.Duration) *deadline {
	return &deadline{t: t, what: what, limit: limit, timer: time.NewTimer(limit)}
}

func (d *deadline) stop() { d.timer.Stop() }

// wait waits for ch until the deadline; once the deadline has passed it
// no longer waits. It reports whether ch was closed.
func (d *deadline) wait(ch <-chan struct{}, backend, leg, waitingFor string) bool {
	if ch == nil {
		return true
	}
	if d.hit {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	select {
	case <-ch:
		return true
	case <-d.timer.C:
		d.hit = true
		d.t.emit(Event{Kind: EventError, Backend: backend, Leg: leg,
			Reason: fmt.Sprintf("%s: %s still running after %s; not waiting for it", d.what, waitingFor, d.limit)})
		return false
	}
}

// waitGroupDone returns a channel closed when wg's count reaches zero.
func waitGroupDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}
