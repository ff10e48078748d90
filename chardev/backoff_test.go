package chardev

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestBackoff checks the delays: Initial first, doubling to the cap, never
// more than the step nor (with jitter) less than three quarters of it, and
// Initial again after Reset.
func TestBackoff(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		initial := time.Duration(rapid.Int64Range(1, int64(time.Second)).Draw(t, "initial"))
		capd := time.Duration(rapid.Int64Range(0, 100*int64(time.Second)).Draw(t, "max"))
		jitter := rapid.Bool().Draw(t, "jitter")
		b := Backoff{Initial: initial, Max: capd, Jitter: jitter}
		step, limit := initial, max(capd, initial)
		for i := range rapid.IntRange(1, 40).Draw(t, "steps") {
			d := b.Next()
			lo := step
			if jitter {
				lo = step - step/4
			}
			if d > step || d < lo {
				t.Fatalf("Next %d = %s, want within [%s, %s]", i, d, lo, step)
			}
			step = min(2*step, limit)
		}
		b.Reset()
		if d := b.Next(); d > initial || (!jitter && d != initial) {
			t.Fatalf("after Reset Next = %s, want %s", d, initial)
		}
	})
}

func TestBackoffWait(t *testing.T) {
	done := make(chan struct{})
	b := Backoff{Initial: time.Nanosecond}
	if !b.Wait(done) {
		t.Fatal("Wait with done open returned false")
	}
	close(done)
	b = Backoff{Initial: time.Hour}
	if b.Wait(done) {
		t.Fatal("Wait with done closed returned true")
	}
}
