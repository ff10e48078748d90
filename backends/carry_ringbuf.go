package backends

// A ring buffer across a process upgrade: its kept bytes travel in a
// memfd (up to 1GiB: too much for the state document, and a memfd costs
// no disk), its next offset in the state, so the new process serves the
// same offsets: a scrollback download or a follower resumes where it was.

import (
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"chartee/backends/ring"
	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Freezer = (*Ringbuf)(nil)
	_ chardev.Carrier = (*Ringbuf)(nil)
)

// ringbufState is a carried ring buffer's state document; its one file
// is a memfd holding Kept bytes, oldest first.
type ringbufState struct {
	// Written is the offset after the newest byte kept.
	Written uint64 `json:"written"`
	// Kept is how many bytes the memfd holds.
	Kept int64 `json:"kept"`
}

// decodeRingbufState decodes and checks a carried ring buffer's state.
func decodeRingbufState(data []byte) (ringbufState, error) {
	var st ringbufState
	if err := decodeState("ringbuf", data, &st); err != nil {
		return st, err
	}
	if st.Kept < 0 || st.Kept > ringbufMaxSize || uint64(st.Kept) > st.Written {
		return st, fmt.Errorf("ringbuf: carried state: %d bytes kept up to offset %d", st.Kept, st.Written)
	}
	return st, nil
}

// Freeze makes Read return chardev.ErrFrozen until Thaw.
func (r *Ringbuf) Freeze() error {
	r.gate.freeze()
	return nil
}

// Thaw undoes Freeze.
func (r *Ringbuf) Thaw() error {
	r.gate.thaw()
	return nil
}

// Carry copies the kept bytes into a memfd.
func (r *Ringbuf) Carry() (chardev.Carried, error) {
	fd, err := unix.MemfdCreate("chartee-ringbuf", unix.MFD_CLOEXEC)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("ringbuf: carry: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "chartee-ringbuf")
	written, kept, err := r.buf.Carry(f)
	if err != nil {
		f.Close()
		return chardev.Carried{}, fmt.Errorf("ringbuf: carry: %w", err)
	}
	doc, err := json.Marshal(ringbufState{Written: written, Kept: kept})
	if err != nil {
		f.Close()
		return chardev.Carried{}, err
	}
	return chardev.Carried{Files: []*os.File{f}, State: doc}, nil
}

// ringbufInherit rebuilds a ring buffer a chartee upgrade carried, with
// the new spec's size (a smaller one keeps the newest bytes). It takes the
// carried files, whatever happens.
func ringbufInherit(s chardev.Spec, c chardev.Carried) (chardev.Chardev, error) {
	defer closeFiles(c.Files)
	spec, ok := s.(*RingbufSpec)
	if !ok {
		return nil, fmt.Errorf("ringbuf: spec is %T, want *RingbufSpec", s)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := carriedFiles("ringbuf", c.Files, 1); err != nil {
		return nil, err
	}
	st, err := decodeRingbufState(c.State)
	if err != nil {
		return nil, err
	}
	info, err := c.Files[0].Stat()
	if err != nil {
		return nil, fmt.Errorf("ringbuf: inherit: %w", err)
	}
	if !info.Mode().IsRegular() || info.Size() != st.Kept {
		return nil, fmt.Errorf("ringbuf: inherit: the carried memfd holds %d bytes (%s), the state says %d", info.Size(), info.Mode().Type(), st.Kept)
	}
	buf, err := ring.Restore(int(spec.Size), st.Written, c.Files[0], st.Kept)
	if err != nil {
		return nil, fmt.Errorf("ringbuf: inherit: %w", err)
	}
	return &Ringbuf{buf: buf, done: make(chan struct{})}, nil
}
