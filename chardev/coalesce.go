package chardev

import "time"

// Coalescer is a device that prefers fewer, larger writes to prompt ones:
// a capture file, which nobody reads keystroke by keystroke. The engine
// may hold output queued for it up to CoalesceDelay (or until a batch's
// worth is queued) before waking the leg's writer, so a stream of small
// chunks costs one thread wake-up and one writev per batch instead of one
// per chunk, and a keystroke's echo to the other legs never waits behind
// the capture's write. Nothing else changes: the output is written in
// order, counted against the leg's queue, and drained before a swap cuts
// over or a shutdown finishes.
type Coalescer interface {
	CoalesceDelay() time.Duration
}
