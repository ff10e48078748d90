// Package ring is a fixed-size scrollback buffer that many readers share
// without consuming it.
//
// QEMU's ringbuf chardev hands its bytes to one reader, which drains them.
// chartee's scrollback is read over HTTP by any number of clients, each at
// its own pace, some following live output. So a Buffer never drains:
// every byte ever written has an offset (the count of bytes written before
// it), a reader asks for an offset, and a reader that fell behind the
// buffer's size is told how many bytes it missed instead of blocking the
// writer. Wait lets a follower sleep until bytes past its offset arrive.
//
// Written here because no library fits: container/ring is a ring of
// values, not of bytes, and byte ring-buffer libraries are FIFO queues whose
// reads consume what they return.
package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultSize is the capacity of a zero Buffer and of New(0): 1 MiB.
const DefaultSize = 1 << 20

// ErrClosed is returned by Wait once the buffer is closed and no byte past
// the reader's offset will ever come.
var ErrClosed = errors.New("ring: buffer closed")

// Stats is a snapshot of a Buffer's bounds.
type Stats struct {
	// Written is the number of bytes ever written: the offset the next
	// byte will get.
	Written uint64
	// Oldest is the offset of the oldest byte still kept. Bytes from
	// Oldest up to Written are readable.
	Oldest uint64
	// Size is the capacity in bytes.
	Size int
}

// Buffer keeps the last Size bytes written to it. It is safe for concurrent
// use by one or more writers and any number of readers. The zero value is
// an empty buffer of DefaultSize bytes.
type Buffer struct {
	mu      sync.Mutex
	data    []byte // len(data) is the capacity; offset o lives at data[o%len]
	written uint64 // bytes ever written
	// floor is the offset of the first byte this buffer ever held: 0,
	// or where a restored buffer's carried bytes began (Restore).
	floor   uint64
	changed chan struct{} // closed on the next Write or Close; nil until a Wait needs it
	closed  bool
}

// New returns an empty buffer that keeps the last size bytes. A size of
// zero or less means DefaultSize.
func New(size int) *Buffer {
	if size <= 0 {
		size = DefaultSize
	}
	return &Buffer{data: make([]byte, size)}
}

// init allocates a zero Buffer's storage. Callers hold mu.
func (b *Buffer) init() {
	if b.data == nil {
		b.data = make([]byte, DefaultSize)
	}
}

// Write appends p, overwriting the oldest bytes once the buffer is full.
// It never blocks on readers and never fails; writing to a closed buffer
// still keeps the bytes (closing only ends Wait).
func (b *Buffer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	n := len(p)
	size := len(b.data)
	b.written += uint64(n)
	if n > size {
		p = p[n-size:] // only the last size bytes survive
	}
	// p now ends at offset written; place it so that it does.
	start := int((b.written - uint64(len(p))) % uint64(size))
	k := copy(b.data[start:], p)
	copy(b.data, p[k:])
	b.wake()
	return n, nil
}

// wake releases every Wait in progress. Callers hold mu.
func (b *Buffer) wake() {
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// oldest is the offset of the oldest kept byte. Callers hold mu.
func (b *Buffer) oldest() uint64 {
	size := uint64(len(b.data))
	if b.written <= size {
		return b.floor
	}
	return max(b.floor, b.written-size)
}

// ReadAt copies kept bytes starting at offset off into p. It returns the
// number of bytes copied, the offset to ask for next, and how many bytes
// were lost between off and the oldest kept byte (nonzero when the reader
// fell more than Size bytes behind; reading then starts at the oldest kept
// byte). An offset past the end reads nothing and next is the current end,
// so a reader with a stale offset from another buffer learns where this one
// stands.
func (b *Buffer) ReadAt(off uint64, p []byte) (n int, next uint64, missed uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if oldest := b.oldest(); off < oldest {
		missed = oldest - off
		off = oldest
	}
	if off >= b.written {
		return 0, b.written, missed
	}
	avail := b.written - off
	if uint64(len(p)) > avail {
		p = p[:avail]
	}
	size := uint64(len(b.data))
	start := int(off % size)
	n = copy(p, b.data[start:])
	n += copy(p[n:], b.data)
	return n, off + uint64(n), missed
}

// Wait blocks until a byte at offset off or later exists, ctx ends (its
// error is returned) or the buffer is closed (ErrClosed). A follower loops
// ReadAt until it returns nothing, then Waits at next.
func (b *Buffer) Wait(ctx context.Context, off uint64) error {
	for {
		b.mu.Lock()
		if b.written > off {
			b.mu.Unlock()
			return nil
		}
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close ends every Wait that waits for bytes not yet written. Kept bytes
// stay readable. Close is idempotent.
func (b *Buffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.wake()
}

// Stats returns the buffer's current bounds.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return Stats{Written: b.written, Oldest: b.oldest(), Size: len(b.data)}
}

// Carry writes the kept bytes, oldest first, to w and returns the offset
// of the byte after the last one (Stats().Written): with Restore, how a
// buffer outlives a process upgrade. w is memory (a memfd), so the lock
// is held while it writes: writers wait, readers get a consistent copy.
func (b *Buffer) Carry(w io.Writer) (written uint64, kept int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	oldest := b.oldest()
	size := uint64(len(b.data))
	start, end := int(oldest%size), int(b.written%size)
	n := b.written - oldest
	switch {
	case n == 0:
	case start < end:
		_, err = w.Write(b.data[start:end])
	default: // wrapped (or exactly full)
		if _, err = w.Write(b.data[start:]); err == nil {
			_, err = w.Write(b.data[:end])
		}
	}
	return b.written, int64(n), err
}

// Restore returns a buffer of the given size that continues one that
// Carry wrote n bytes of to r, ending at offset written: readers ask for
// the same offsets as before. A smaller size keeps only the newest bytes.
func Restore(size int, written uint64, r io.ReaderAt, n int64) (*Buffer, error) {
	if n < 0 || uint64(n) > written {
		return nil, fmt.Errorf("ring: restore: %d bytes kept up to offset %d", n, written)
	}
	b := New(size)
	keep := min(n, int64(len(b.data)))
	first := written - uint64(keep) // offset of the first byte kept
	sz := uint64(len(b.data))
	start := int(first % sz)
	head := min(keep, int64(len(b.data)-start))
	// Nothing to read when nothing is kept (some readers fail a read of
	// nothing at their end).
	if head > 0 {
		if _, err := r.ReadAt(b.data[start:start+int(head)], n-keep); err != nil {
			return nil, fmt.Errorf("ring: restore: %w", err)
		}
	}
	if rest := keep - head; rest > 0 {
		if _, err := r.ReadAt(b.data[:rest], n-keep+head); err != nil {
			return nil, fmt.Errorf("ring: restore: %w", err)
		}
	}
	b.written, b.floor = written, first
	return b, nil
}
