package backends

import (
	"context"
	"fmt"
	"os"
	"sync"

	"chartee/backends/ring"
	"chartee/chardev"
)

func init() {
	chardev.Register("ringbuf", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewRingbufSpec() },
		Open: func(ctx context.Context, s chardev.Spec) (chardev.Chardev, error) {
			spec, ok := s.(*RingbufSpec)
			if !ok {
				return nil, fmt.Errorf("ringbuf: spec is %T, want *RingbufSpec", s)
			}
			return NewRingbuf(*spec)
		},
		Inherit: ringbufInherit,
		Input:   false,
	})
}

// Interface guards.
var (
	_ chardev.Chardev          = (*Ringbuf)(nil)
	_ chardev.Describer        = (*Ringbuf)(nil)
	_ chardev.ScrollbackReader = (*Ringbuf)(nil)
)

// ringbufMaxSize bounds size: the buffer is allocated up front.
const ringbufMaxSize = 1 << 30

// RingbufSpec is the options of a `ringbuf` backend.
type RingbufSpec struct {
	// Size is how many bytes of the most recent output are kept
	// (default 1MiB, at most 1GiB, allocated when the device opens).
	Size chardev.Size `yaml:"size" json:"size"`
}

// NewRingbufSpec returns a RingbufSpec with the defaults filled in.
func NewRingbufSpec() *RingbufSpec {
	return &RingbufSpec{Size: ring.DefaultSize}
}

// Validate reports an impossible size. Zero means the default.
func (s *RingbufSpec) Validate() error {
	if s.Size < 0 || s.Size > ringbufMaxSize {
		return fmt.Errorf("ringbuf: size %s: want at most 1GiB (0 means the default, 1MiB)", s.Size)
	}
	return nil
}

// Ringbuf is an in-memory scrollback leg: it keeps the last Size bytes of
// the tee's output for any number of readers, which read by offset without
// consuming (see package ring). Unlike QEMU's ringbuf it never drains. It
// never types, so Read only waits for Close. Close ends followers' Wait;
// what was kept stays readable.
type Ringbuf struct {
	buf       *ring.Buffer
	done      chan struct{}
	closeOnce sync.Once
	gate      freezeGate // a process upgrade's (carry_ringbuf.go)
}

// NewRingbuf validates spec and allocates the buffer.
func NewRingbuf(spec RingbufSpec) (*Ringbuf, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return &Ringbuf{buf: ring.New(int(spec.Size)), done: make(chan struct{})}, nil
}

// Describe names the device for status and logs.
func (r *Ringbuf) Describe() string {
	return fmt.Sprintf("ringbuf %s", chardev.Size(r.buf.Stats().Size))
}

// Write keeps p, dropping the oldest bytes when full. It never blocks.
func (r *Ringbuf) Write(p []byte) (int, error) {
	select {
	case <-r.done:
		return 0, fmt.Errorf("ringbuf: write: %w", os.ErrClosed)
	default:
	}
	return r.buf.Write(p)
}

// Read blocks until Close, then reports the device closed.
func (r *Ringbuf) Read(p []byte) (int, error) {
	select {
	case <-r.done:
		return 0, fmt.Errorf("ringbuf: read: %w", os.ErrClosed)
	case <-r.gate.frozen():
		return 0, chardev.ErrFrozen
	}
}

// Close wakes Read and ends followers' Wait. It is idempotent.
func (r *Ringbuf) Close() error {
	r.closeOnce.Do(func() {
		close(r.done)
		r.buf.Close()
	})
	return nil
}

// ReadAt implements chardev.ScrollbackReader.
func (r *Ringbuf) ReadAt(off uint64, p []byte) (n int, next uint64, missed uint64) {
	return r.buf.ReadAt(off, p)
}

// Wait implements chardev.ScrollbackReader.
func (r *Ringbuf) Wait(ctx context.Context, off uint64) error {
	return r.buf.Wait(ctx, off)
}

// Bounds implements chardev.ScrollbackReader.
func (r *Ringbuf) Bounds() (oldest, next uint64) {
	st := r.buf.Stats()
	return st.Oldest, st.Written
}
