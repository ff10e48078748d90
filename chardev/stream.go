package chardev

// Resumer is implemented by leg devices whose client already holds part of
// the stream and wants the rest: a browser reconnecting after a network
// drop. The engine asks once, when it attaches the leg; the leg then starts
// at want, or at the oldest byte the tee's scrollback still holds when
// want is older than that (the device learns where through OffsetTracker).
// ok false, or a want beyond the current offset (a client of an earlier
// daemon), attaches the leg as a fresh one with the backend's replay.
type Resumer interface {
	ResumeFrom() (want uint64, ok bool)
}

// OffsetTracker is implemented by leg devices that need the stream offset
// of what they are given, to tell their client exactly where each byte
// belongs. The engine calls StreamAt once when the leg is attached, with
// the offset its stream starts at, and before every batch of Writes with
// the offset of the batch's first byte. The bytes written between two
// calls are contiguous in the stream; a jump is output this leg did not
// get (dropped on overflow, or older than the scrollback on resume).
// Calls come from the leg's writer goroutine, never concurrently with
// Write (the first one comes before the writer starts).
type OffsetTracker interface {
	StreamAt(off uint64)
}
