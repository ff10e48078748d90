package chardev

// NonBlockingWriter is a device that can attempt a write without waiting.
// TryWrite writes what the device takes at once — possibly nothing — and
// returns at once; it never blocks, and it reports an error only when the
// device has failed (not when it would block), or, wrapping ErrUnsupported,
// when this device cannot after all (a TLS or telnet client): the engine
// then stops trying. The engine uses it to write
// a chunk from the frontend reader itself when a leg is idle, instead of
// waking the leg's writer goroutine: one thread wake-up less per keystroke
// echo. Whatever TryWrite does not take, the leg's writer writes later.
// The engine never calls TryWrite and Write at the same time.
type NonBlockingWriter interface {
	TryWrite(p []byte) (int, error)
}
