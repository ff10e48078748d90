package backends

// A file capture across a process upgrade: the open file is handed over
// (O_APPEND, so the new process writes on at its end, the same file even
// if logrotate renamed it meanwhile) with the encoder's state and the
// size rotation counts, so the capture reads as if one process wrote it:
// no second asciicast header, no extra line break.

import (
	"encoding/json"
	"fmt"
	"os"

	"chartee/backends/capture"
	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Freezer = (*File)(nil)
	_ chardev.Carrier = (*File)(nil)
)

// fileState is a carried capture's state document.
type fileState struct {
	// Path, Format and Direction are the spec it was opened with: a
	// capture is only continued by a spec that writes the same.
	Path      string        `json:"path"`
	Format    FileFormat    `json:"format"`
	Direction FileDirection `json:"direction"`
	// Size is how many bytes the file holds, as rotation counts them.
	Size        int64                     `json:"size"`
	Timestamped *capture.TimestampedState `json:"timestamped,omitempty"`
	Asciicast   *capture.AsciicastState   `json:"asciicast,omitempty"`
}

// decodeFileState decodes and checks a carried capture's state.
func decodeFileState(data []byte) (fileState, error) {
	var st fileState
	if err := decodeState("file", data, &st); err != nil {
		return st, err
	}
	if st.Size < 0 {
		return st, fmt.Errorf("file: carried state: size %d", st.Size)
	}
	if st.Path == "" {
		return st, fmt.Errorf("file: carried state: no path")
	}
	switch {
	case st.Format == FileTimestamped && (st.Timestamped == nil || st.Asciicast != nil),
		st.Format == FileAsciicast && (st.Asciicast == nil || st.Timestamped != nil),
		st.Format == FileRaw && (st.Timestamped != nil || st.Asciicast != nil):
		return st, fmt.Errorf("file: carried state: format %q with another format's encoder state", st.Format)
	case st.Format != FileRaw && st.Format != FileTimestamped && st.Format != FileAsciicast:
		return st, fmt.Errorf("file: carried state: format %q", st.Format)
	}
	return st, nil
}

// Freeze makes Read return chardev.ErrFrozen until Thaw. Writes are the
// tee's to stop (it drains the leg to the cut and writes no more).
func (f *File) Freeze() error {
	f.gate.freeze()
	return nil
}

// Thaw undoes Freeze. An inherited capture's first Thaw is the commit of
// the upgrade: from then on it is this process's to close.
func (f *File) Thaw() error {
	f.inherited.Store(false)
	f.gate.thaw()
	return nil
}

// Carry hands over the open file with the encoder's state. A capture
// still staged (nothing written yet) is committed first: it is live.
func (f *File) Carry() (chardev.Carried, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return chardev.Carried{}, f.errClosed("carry")
	default:
	}
	file := f.sink.file()
	if file == nil {
		return chardev.Carried{}, fmt.Errorf("file: carry %s: no open file after an earlier failure", f.spec.Path)
	}
	if err := f.sink.commit(); err != nil {
		return chardev.Carried{}, fileError(err)
	}
	st := fileState{Path: f.spec.Path, Format: f.spec.Format, Direction: f.spec.Direction, Size: f.sink.size}
	switch enc := f.enc.(type) {
	case *capture.Timestamped:
		s := enc.State()
		st.Timestamped = &s
	case *capture.Asciicast:
		s := enc.State()
		st.Asciicast = &s
	}
	doc, err := json.Marshal(st)
	if err != nil {
		return chardev.Carried{}, fileError(err)
	}
	dup, err := dupFile(file)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("file: carry: %w", err)
	}
	return chardev.Carried{Files: []*os.File{dup}, State: doc}, nil
}

// fileInherit rebuilds a capture a chartee upgrade carried. It takes the
// carried files, whatever happens.
func fileInherit(s chardev.Spec, c chardev.Carried) (chardev.Chardev, error) {
	spec, ok := s.(*FileSpec)
	if !ok {
		closeFiles(c.Files)
		return nil, fmt.Errorf("file: spec is %T, want *FileSpec", s)
	}
	f, err := inheritFile(*spec, c, nil)
	if err != nil {
		closeFiles(c.Files)
		return nil, err
	}
	return f, nil
}

// inheritFile is fileInherit with a clock for tests.
func inheritFile(spec FileSpec, c chardev.Carried, now capture.Clock) (*File, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec.fillDefaults()
	if err := carriedFiles("file", c.Files, 1); err != nil {
		return nil, err
	}
	st, err := decodeFileState(c.State)
	if err != nil {
		return nil, err
	}
	if st.Path != spec.Path || st.Format != spec.Format || st.Direction != spec.Direction {
		return nil, fmt.Errorf("file: inherit: the running capture is %s (%s, %s), the new config wants %s (%s, %s): upgrade with the old config, then reload",
			st.Path, st.Format, st.Direction, spec.Path, spec.Format, spec.Direction)
	}
	file := c.Files[0]
	info, err := file.Stat()
	if err != nil {
		return nil, fileError(err)
	}
	if !info.Mode().IsRegular() && spec.Rotate.MaxSize > 0 {
		return nil, fmt.Errorf("file: inherit: %s is not a regular file (%s), so it cannot be rotated", spec.Path, info.Mode().Type())
	}
	f := &File{spec: spec, sink: fileSink{path: spec.Path, rotate: spec.Rotate, size: st.Size}, done: make(chan struct{})}
	f.enc = fileEncoder(&f.sink, spec, now)
	switch enc := f.enc.(type) {
	case *capture.Timestamped:
		err = enc.Restore(*st.Timestamped)
	case *capture.Asciicast:
		err = enc.Restore(*st.Asciicast)
	}
	if err != nil {
		return nil, fmt.Errorf("file: inherit: %w", err)
	}
	f.sink.current.Store(file)
	// Until the tee thaws it (the old process committed), the file is
	// still the old process's: Close and Discard only let go of it.
	f.inherited.Store(true)
	return f, nil
}

// release closes this process's descriptor of an inherited capture that
// never ran: nothing is flushed or written, the capture is the old
// process's (a failed upgrade) or no one's.
func (f *File) release() error {
	f.closeOnce.Do(func() { close(f.done) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if file := f.sink.current.Swap(nil); file != nil {
		return file.Close()
	}
	return nil
}
