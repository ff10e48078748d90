package chardev

// BuffersWriter is a device that writes several buffers with one system
// call (writev(2)). The engine hands a leg's writer its queued chunks in
// batches; without this, a batch costs one write(2) per chunk, and a
// capture file pays the filesystem's per-call cost (locking, the inode's
// time stamps) for each one. WriteBuffers writes bufs in order and returns
// how many bytes it wrote, fewer than all only with an error, as io.Writer
// does. It may write buffer by buffer where the device has no vectored
// write (a protocol layer), and it may consume bufs as net.Buffers.WriteTo
// does (the slices, never the bytes). The engine calls it where it would
// call Write.
type BuffersWriter interface {
	WriteBuffers(bufs [][]byte) (int64, error)
}
