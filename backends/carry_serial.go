package backends

// A serial port across a process upgrade: the port's descriptor is handed
// over, never closed and reopened. Closing a tty can drop DTR (HUPCL), and
// reopening it can lose what the device sent meanwhile and re-run the
// open-time setup; with the descriptor handed over the line stays up, the
// termios in force stays in force, and what the device sends during the
// pause waits in the tty's input queue for the new process.
//
// The inherited port is built on the descriptor directly, without
// go.bug.st/serial: the library cannot adopt a descriptor (it only opens
// paths), and it waits with select(2), which panics on descriptors >=
// 1024, where a busy daemon's inherited files land. Everything Serial does
// after opening already goes through its own pollable duplicate and
// golang.org/x/sys/unix (termios, modem lines, break), so the inherited
// port is the same Serial with no library port: there is nothing for the
// library to do once the port is open. TIOCEXCL is a flag of the tty, not
// of a descriptor, so exclusive access carries over as it was.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Freezer = (*Serial)(nil)
	_ chardev.Carrier = (*Serial)(nil)

	_ chardev.WriteFreezer = (*Serial)(nil)
)

// serialState is a carried port's state document.
type serialState struct {
	Path     string `json:"path"`
	Resolved string `json:"resolved,omitempty"`
	// Line is the mode in force: what the port was last set to (a Linux
	// pty, say, does not keep all of it, so it is not read back).
	Line chardev.LineSettings `json:"line"`
	// Opened is the mode the config asked for at the open: a new config
	// asking for another is a change the upgrade does not make.
	Opened chardev.LineSettings `json:"opened"`
}

// decodeSerialState decodes and checks a carried port's state.
func decodeSerialState(data []byte) (serialState, error) {
	var st serialState
	if err := decodeState("serial", data, &st); err != nil {
		return st, err
	}
	if st.Path == "" {
		return st, errors.New("serial: carried state: no path")
	}
	if err := st.Line.Validate(); err != nil {
		return st, fmt.Errorf("serial: carried state: line settings: %w", err)
	}
	if err := st.Opened.Validate(); err != nil {
		return st, fmt.Errorf("serial: carried state: line settings at the open: %w", err)
	}
	return st, nil
}

// Freeze makes Read return chardev.ErrFrozen until Thaw: a read deadline
// in the past on the pollable descriptor stops a Read without consuming a
// byte.
func (s *Serial) Freeze() error {
	if err := s.f.SetReadDeadline(netPast); err != nil {
		return fmt.Errorf("serial: freeze %s: %w", s.path, err)
	}
	return nil
}

// Thaw undoes Freeze.
func (s *Serial) Thaw() error { return s.f.SetReadDeadline(time.Time{}) }

// FreezeWrite cuts a Write in progress short (flow control holds the
// line): it returns what it wrote, and the tee carries the rest.
func (s *Serial) FreezeWrite() error {
	if err := s.f.SetWriteDeadline(netPast); err != nil {
		return fmt.Errorf("serial: freeze %s: %w", s.path, err)
	}
	return nil
}

// ThawWrite undoes FreezeWrite.
func (s *Serial) ThawWrite() error { return s.f.SetWriteDeadline(time.Time{}) }

// Carry hands over the port's descriptor and the mode in force.
func (s *Serial) Carry() (chardev.Carried, error) {
	line, _ := s.LineSettings()
	doc, err := json.Marshal(serialState{Path: s.path, Resolved: s.resolved, Line: line, Opened: s.opened})
	if err != nil {
		return chardev.Carried{}, err
	}
	f, err := dupFile(s.f)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("serial: carry %s: %w", s.path, err)
	}
	return chardev.Carried{Files: []*os.File{f}, State: doc}, nil
}

// serialInherit rebuilds a port a chartee upgrade carried; its line
// settings are left as they are in force. It takes the carried files,
// whatever happens.
func serialInherit(sp chardev.Spec, c chardev.Carried) (chardev.Chardev, error) {
	defer closeFiles(c.Files)
	spec, ok := sp.(*SerialSpec)
	if !ok {
		return nil, fmt.Errorf("serial: spec is %T, want *SerialSpec", sp)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := carriedFiles("serial", c.Files, 1); err != nil {
		return nil, err
	}
	st, err := decodeSerialState(c.State)
	if err != nil {
		return nil, err
	}
	if st.Path != spec.Path {
		return nil, fmt.Errorf("serial: inherit: the running port is %s, the new config wants %s: upgrade with the old config, then reload", st.Path, spec.Path)
	}
	// The line settings in force continue (an RFC 2217 client may have
	// changed them); a config that asks for others than the port was
	// opened with is a change to make by a reload, which would otherwise
	// never see it.
	if want, _ := spec.LineSettings(); want != st.Opened {
		return nil, fmt.Errorf("serial: inherit: %s was opened as %v, the new config wants %v: upgrade with the old config, then reload", st.Path, st.Opened, want)
	}
	f, err := tty.Pollable(c.Files[0])
	if err != nil {
		return nil, fmt.Errorf("serial: inherit %s: %w", st.Path, err)
	}
	// A descriptor that is not a tty (a bug, a forged state) fails here
	// rather than at the first line change.
	if err := tty.Control(f, func(fd int) error { _, err := tty.Get(fd); return err }); err != nil {
		f.Close()
		return nil, fmt.Errorf("serial: inherit %s: not a tty: %w", st.Path, err)
	}
	resolved := st.Resolved
	if resolved == "" {
		resolved = st.Path
	}
	return &Serial{path: st.Path, resolved: resolved, f: f, done: make(chan struct{}), line: st.Line, opened: st.Opened}, nil
}
