package chardev

import "context"

// ScrollbackReader is a leg device that keeps recent output for readers
// that come later (the ringbuf backend): the control API type-asserts a
// leg's device to it to serve GET .../data?offset=N&follow=1. Offsets
// count bytes ever written to the device.
type ScrollbackReader interface {
	// ReadAt copies kept bytes from offset off into p and returns the
	// count, the offset to ask for next and how many bytes between off
	// and the oldest kept byte were lost.
	ReadAt(off uint64, p []byte) (n int, next uint64, missed uint64)
	// Wait blocks until a byte at offset off or later exists, ctx ends,
	// or the device is closed (an error: the ringbuf's ring.ErrClosed).
	Wait(ctx context.Context, off uint64) error
	// Bounds returns the offset of the oldest kept byte and the offset
	// the next byte will get.
	Bounds() (oldest, next uint64)
}
