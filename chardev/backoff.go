package chardev

import (
	"math/rand/v2"
	"time"
)

// Backoff is capped exponential backoff: the first Next is Initial, each
// one after doubles, up to Max (a Max below Initial means Initial). With
// Jitter, each delay is shortened by up to a quarter at random, so a crowd
// of clients retrying together spreads out. It is the one retry pacing of
// chartee: the engine's frontend reconnect and accept loops, listeners
// backing off EMFILE, connecting devices redialing.
//
// It is written here rather than taken from a library because it is a
// dozen lines and the libraries (cenkalti/backoff, jpillora/backoff) would
// be new dependencies for no behaviour this lacks. Not safe for concurrent
// use: one retry loop owns it.
type Backoff struct {
	Initial, Max time.Duration
	Jitter       bool
	next         time.Duration // 0: Initial comes next
}

// Next returns the delay before the next attempt and doubles the step.
func (b *Backoff) Next() time.Duration {
	if b.next <= 0 {
		b.next = b.Initial
	}
	d := b.next
	b.next = min(2*b.next, max(b.Max, b.Initial))
	if q := int64(d / 4); b.Jitter && q > 0 {
		d -= time.Duration(rand.Int64N(q))
	}
	return d
}

// Reset makes the next delay Initial again, after an attempt succeeded.
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps for Next, returning false early if done is closed.
func (b *Backoff) Wait(done <-chan struct{}) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// AcceptBackoff paces a loop around an Accept that fails for want of
// resources (EMFILE): 5 ms doubling to 1 s, as net/http does, instead of
// spinning.
func AcceptBackoff() Backoff {
	return Backoff{Initial: 5 * time.Millisecond, Max: time.Second}
}
