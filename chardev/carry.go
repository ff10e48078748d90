package chardev

import (
	"errors"
	"os"
)

// ErrFrozen is returned (wrapped) by Read and Accept of a device or source
// that Freeze stopped: not a failure, the engine waits for Thaw or for
// the process to hand over.
var ErrFrozen = errors.New("frozen for a process upgrade")

// Freezer is implemented by devices and sources that can stop at a cut
// without losing a byte: Freeze makes a Read (or Accept) in progress, and
// every later one, return ErrFrozen at once, leaving whatever the peer
// sends waiting in the kernel behind the open file; Thaw undoes it. A
// process upgrade freezes every device, hands their files to the new
// process, and either exits (the new process reads on from the same
// kernel buffers) or thaws (rollback). Write is not affected.
type Freezer interface {
	Freeze() error
	Thaw() error
}

// Carried is what a device or source hands to the process that takes
// over: its open files and a state document only its own backend type
// reads back (through Factory.Inherit or Adopter.Adopt).
type Carried struct {
	Files []*os.File
	State []byte
}

// Carrier is implemented by devices and sources that can be handed over
// to a new process. Carry is called on a frozen device; the files it
// returns are duplicates the caller closes (the device keeps its own, for
// a rollback). A device that cannot be carried in its current state (a
// TLS session, whose keys live in this process) says why.
type Carrier interface {
	Carry() (Carried, error)
}

// Adopter is implemented by sources whose accepted devices can be carried:
// Adopt rebuilds, in the new process, a client the old process's source
// had accepted, so it counts against the source's limits like one it
// accepted itself.
type Adopter interface {
	Adopt(c Carried) (Chardev, error)
}

// Freeze freezes v if it can, and says it cannot otherwise.
func Freeze(v any) error {
	f, ok := v.(Freezer)
	if !ok {
		return ErrUnsupported
	}
	return f.Freeze()
}

// Thaw thaws v if it is a Freezer.
func Thaw(v any) {
	if f, ok := v.(Freezer); ok {
		f.Thaw()
	}
}

// ErrNotCarried is wrapped by Carry's error for a device that can never be
// carried (a TLS or SSH session: its keys live in this process). A process
// upgrade does not refuse for it: the device gets every byte up to the
// cut, a notice if it shows notices, and is closed; its client reconnects
// to the new process.
var ErrNotCarried = errors.New("cannot be carried to a new process (its session keys live in this one)")

// WriteFreezer is implemented by devices whose Write in progress can be
// cut short without losing count of a byte: FreezeWrite makes a Write in
// progress, and every later one, return what it wrote so far with an
// error wrapping ErrFrozen; ThawWrite undoes it. A process upgrade uses it
// on a leg whose peer stopped reading: what the leg still owes at the cut
// is carried to the new process, which writes it first.
type WriteFreezer interface {
	FreezeWrite() error
	ThawWrite() error
}

// FreezeWrite freezes v's writes if it can, and says it cannot otherwise.
func FreezeWrite(v any) error {
	f, ok := v.(WriteFreezer)
	if !ok {
		return ErrUnsupported
	}
	return f.FreezeWrite()
}

// ThawWrite thaws v's writes if it is a WriteFreezer.
func ThawWrite(v any) {
	if f, ok := v.(WriteFreezer); ok {
		f.ThawWrite()
	}
}
