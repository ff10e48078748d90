package chardev

// ReadWaiter is a device whose leg need not keep a goroutine waiting in
// Read: WaitReadable arranges for ready to be called once, from another
// goroutine, when a Read would not block — input, end of file, an error,
// Close, or Freeze — and returns at once. It reports false when it cannot
// wait this way now (a protocol layer that buffers, a device that is
// closing or frozen); ready is then never called and the caller reads as
// usual. A raw network client that never types, the common idle client,
// then costs its connection and its leg's state but no goroutine stack
// and no read buffer (the engine reads after ready, into a buffer it
// takes then).
//
// The engine calls WaitReadable only from the leg's reader, never twice
// without a Read in between, and reads at least once after each ready.
type ReadWaiter interface {
	WaitReadable(ready func()) bool
}
