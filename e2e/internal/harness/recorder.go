package harness

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// Recorder keeps everything read from a stream (a socket, a pty) so a test
// can wait for text to appear and compare whole transcripts.
type Recorder struct {
	Name    string
	mu      sync.Mutex
	buf     []byte
	changed chan struct{} // closed and replaced on every read
	done    chan struct{}
	err     error
}

// Record starts reading r until it fails. At cleanup r is closed (when it
// is an io.Closer) and the reader waited for, so no goroutine outlives the
// test.
func Record(t testing.TB, name string, r io.Reader) *Recorder {
	rec := &Recorder{Name: name, changed: make(chan struct{}), done: make(chan struct{})}
	go rec.loop(r)
	t.Cleanup(func() {
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		select {
		case <-rec.done:
		case <-time.After(10 * time.Second):
			t.Errorf("e2e: recorder %s: reader did not stop after close", name)
		}
	})
	return rec
}

func (r *Recorder) loop(rd io.Reader) {
	defer close(r.done)
	b := make([]byte, 32<<10)
	for {
		n, err := rd.Read(b)
		r.mu.Lock()
		r.buf = append(r.buf, b[:n]...)
		if err != nil {
			r.err = err
		}
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Bytes is a copy of everything read so far.
func (r *Recorder) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf)
}

// Len is how many bytes were read so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buf)
}

// Err is the error that ended the stream, nil while it is open.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Done is closed when the stream ended.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// WaitUntil waits until cond holds for the bytes read so far, or fails the
// test after timeout, showing the tail of what was read.
func (r *Recorder) WaitUntil(t testing.TB, what string, timeout time.Duration, cond func([]byte) bool) {
	t.Helper()
	if err := r.Until(timeout, cond); err != nil {
		t.Fatalf("e2e: %s: waiting for %s: %v", r.Name, what, err)
	}
}

// Until is WaitUntil returning an error instead of failing.
func (r *Recorder) Until(timeout time.Duration, cond func([]byte) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(r.buf)
		ch, err, tail := r.changed, r.err, tailOf(r.buf, 600)
		r.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stream ended (%v); last bytes read: %q", err, tail)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("not seen within %v; last bytes read: %q", timeout, tail)
		}
	}
}

// WaitFor waits until s appears in the stream, at or after byte from, and
// returns the offset just past its first such occurrence.
func (r *Recorder) WaitFor(t testing.TB, s string, from int, timeout time.Duration) int {
	t.Helper()
	end := -1
	r.WaitUntil(t, fmt.Sprintf("%q", s), timeout, func(b []byte) bool {
		if from > len(b) {
			return false
		}
		if i := bytes.Index(b[from:], []byte(s)); i >= 0 {
			end = from + i + len(s)
			return true
		}
		return false
	})
	return end
}

func tailOf(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
