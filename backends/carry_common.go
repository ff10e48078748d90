package backends

// Helpers the local types' carrying shares (carry_file.go, carry_pty.go,
// carry_serial.go, carry_ringbuf.go; see carry.go for what is carried).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
)

// maxCarriedState bounds a carried device's state document: they are a
// few hundred bytes (a ring buffer's contents travel in a memfd).
const maxCarriedState = 64 << 10

// decodeState decodes a carried device's state document into v: one JSON
// object, no unknown keys (a newer binary's state is refused, never half
// read), nothing after it.
func decodeState(typ string, data []byte, v any) error {
	if len(data) > maxCarriedState {
		return fmt.Errorf("%s: carried state of %d bytes, want at most %d", typ, len(data), maxCarriedState)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: carried state: %w", typ, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: carried state: data after the object", typ)
	}
	return nil
}

// dupFile duplicates f's descriptor (close-on-exec) without f.Fd(), which
// would put a pollable f into blocking mode.
func dupFile(f *os.File) (*os.File, error) { return dupNamed(f, f.Name()) }

// dupNamed is dupFile with the copy's name.
func dupNamed(f *os.File, name string) (*os.File, error) {
	fd := -1
	err := tty.Control(f, func(orig int) error {
		var err error
		fd, err = unix.FcntlInt(uintptr(orig), unix.F_DUPFD_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// carriedFiles checks that a carried device came with want files.
func carriedFiles(typ string, files []*os.File, want int) error {
	if len(files) != want {
		return fmt.Errorf("%s: inherit: want %d carried files, got %d", typ, want, len(files))
	}
	return nil
}

// closeFiles closes carried files nobody took.
func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// freezeGate is how a device whose Read only waits (a capture, a ring
// buffer: they never type) stops that Read at a process upgrade's cut:
// Read selects on frozen() and returns chardev.ErrFrozen when it closes.
// The zero value is thawed.
type freezeGate struct {
	mu sync.Mutex
	ch chan struct{} // closed while frozen
}

// frozen returns a channel closed once the gate is frozen.
func (g *freezeGate) frozen() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

func (g *freezeGate) freeze() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	select {
	case <-g.ch:
	default:
		close(g.ch)
	}
}

func (g *freezeGate) thaw() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		select {
		case <-g.ch:
			g.ch = nil
		default:
		}
	}
}
