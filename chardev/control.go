package chardev

import (
	"errors"
	"time"
)

// ErrNotPermitted is returned by a Control when the leg is not allowed to do
// what it asked: set line settings without `control: true`, type while
// another leg holds the exclusive write lock.
var ErrNotPermitted = errors.New("not permitted for this leg")

// Control is the engine's handle given to a leg's device, so that protocol
// backends (telnet, RFC 2217, escape commands) can act on the tee on behalf
// of their client. The engine enforces the leg's permissions behind it.
//
// Calls may block briefly (they reach the frontend device) and must not be
// made while holding a lock the device's own Read or Write needs.
type Control interface {
	// SetLineSettings changes the frontend's line settings and records them
	// as the tee's line state. Refused unless the backend has control.
	SetLineSettings(LineSettings) error
	// LineSettings is the tee's recorded line state.
	LineSettings() LineSettings
	// SetModemLines drives the frontend's DTR/RTS (nil leaves a line as is).
	SetModemLines(dtr, rts *bool) error
	// ModemStatus reads the frontend's modem lines.
	ModemStatus() (ModemStatus, error)
	// Break sends a break to the frontend.
	Break(d time.Duration) error
	// PurgeInput discards input queued for the frontend and not yet written.
	PurgeInput()
	// TakeWriteLock asks for the exclusive right to type; ReleaseWriteLock
	// gives it up. Both are no-ops on a tee in shared input mode.
	TakeWriteLock() error
	ReleaseWriteLock()
	// Status is a short human-readable summary of the tee: frontend, legs,
	// who holds the write lock.
	Status() string
}

// ControlAware is implemented by devices that want the engine's Control
// handle; the engine calls SetControl once, before the leg's first Read.
type ControlAware interface {
	SetControl(Control)
}

// LineObserver is implemented by devices that want to hear when the tee's
// line state or the frontend's modem lines change (RFC 2217 notifications).
// Calls come from an engine goroutine and must not block.
type LineObserver interface {
	LineChanged(LineSettings)
}

// Source is a backend that produces a new device per accepted client (a
// listening socket). All its devices become legs under the backend's name.
type Source interface {
	// Accept waits for the next client. After Close it returns an error
	// wrapping net.ErrClosed.
	Accept() (Chardev, error)
	// Close stops accepting. Devices already accepted stay open.
	Close() error
	// Addr says where the source listens.
	Addr() string
}

// Peer is implemented by accepted devices that can name their client (a
// remote address), for status and logs.
type Peer interface {
	Peer() string
}

// InputRecorder is implemented by capture devices that also log what is
// typed into the frontend (a file with direction in or both). The engine
// calls RecordInput with each chunk just before writing it to the frontend
// (so a key is recorded before the echo it causes; a chunk whose write then
// fails is still recorded: it is what was sent); an error fails that leg
// like a write error would.
type InputRecorder interface {
	RecordInput(p []byte) error
}

// InputRecorderToggle is implemented by an InputRecorder whose
// configuration may record no input at all (a capture file with direction
// out). The engine asks once, when the device is attached, and hands no
// input to a device that says false: typing then never wakes that leg's
// writer (which would also write its coalesced output at once, for every
// key).
type InputRecorderToggle interface {
	RecordsInput() bool
}

// RecordsInput reports whether dev wants the input typed into the
// frontend: it is an InputRecorder or AttributedInputRecorder that does
// not say otherwise (InputRecorderToggle).
func RecordsInput(dev any) bool {
	_, plain := dev.(InputRecorder)
	_, attributed := dev.(AttributedInputRecorder)
	if !plain && !attributed {
		return false
	}
	if t, ok := dev.(InputRecorderToggle); ok {
		return t.RecordsInput()
	}
	return true
}

// Reopener is implemented by devices that can reopen what they write to
// (a capture file moved away by logrotate; SIGUSR1).
type Reopener interface {
	Reopen() error
}

// TeeNamer is implemented by specs whose defaults depend on the tee they
// are attached to (a nats backend's subject defaults to
// chartee.<appliance>.<tee>). The config layer calls SetTee for every
// device of a tee before using it; the daemon does the same for specs that
// come through the API.
type TeeNamer interface {
	SetTee(name string)
}

// Noticer is implemented by an interactive leg (a telnet, SSH or web
// session) that can show a one-line notice to the person behind it: a
// frontend failover or swap, a refused keystroke in exclusive mode. The
// text is one line without a line ending; the leg frames it so it stands
// apart from the console output ("[chartee] ..." on a line of its own).
//
// Raw byte streams (raw TCP, RFC 2217, files, ringbufs, ptys, NATS) never
// implement it: text injected there would corrupt the data. Notice must
// not block for long (it is called from engine goroutines) and is dropped
// silently if the leg cannot take it.
type Noticer interface {
	Notice(text string)
}

// Escaper is implemented by interactive legs with an escape key, so that
// messages about them can say which key to press ("^E l takes the write
// lock"). EscapeKey returns the key as a user types it ("^E"), or "".
type Escaper interface {
	EscapeKey() string
}

// Discarder is implemented by devices whose opening leaves a trace (a
// capture file created, a header staged). Discard closes a device that was
// opened but never used — a start or reload that failed after opening it —
// and undoes the open: a failed start leaves no capture file behind and
// never a header with nothing under it. Devices without it are closed.
type Discarder interface {
	Discard() error
}

// Discard discards dev if it can, and closes it otherwise.
func Discard(dev Chardev) error {
	if d, ok := dev.(Discarder); ok {
		return d.Discard()
	}
	return dev.Close()
}
