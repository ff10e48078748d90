package backends

import (
	"context"
	"fmt"
	"os"
	"sync"

	"chartee/chardev"
)

func init() {
	chardev.Register("null", chardev.Factory{
		NewSpec: func() chardev.Spec { return &NullSpec{} },
		Open: opener("null", func(context.Context, *NullSpec) (*Null, error) {
			return NewNull(), nil
		}),
		// Nothing to carry: the new process's null is the same.
		Inherit: func(chardev.Spec, chardev.Carried) (chardev.Chardev, error) { return NewNull(), nil },
		Input:   false,
	})
}

var (
	_ chardev.Chardev   = (*Null)(nil)
	_ chardev.Describer = (*Null)(nil)
	_ chardev.Freezer   = (*Null)(nil)
	_ chardev.Carrier   = (*Null)(nil)
)

// NullSpec configures a null device; it has no options.
type NullSpec struct{}

// Validate accepts everything: there is nothing to check.
func (*NullSpec) Validate() error { return nil }

// Null is a sink: writes are discarded, Read waits until Close. It serves
// tests, and configs that need a frontend or leg that does nothing. The
// zero value is an open device.
type Null struct {
	initOnce  sync.Once
	closed    chan struct{}
	closeOnce sync.Once
	gate      freezeGate // a process upgrade's (carry.go)
}

// NewNull returns an open null device.
func NewNull() *Null { return &Null{} }

func (n *Null) done() chan struct{} {
	n.initOnce.Do(func() { n.closed = make(chan struct{}) })
	return n.closed
}

// Describe names the device.
func (*Null) Describe() string { return "null" }

// Read blocks until Close, then fails.
func (n *Null) Read([]byte) (int, error) {
	select {
	case <-n.done():
		return 0, fmt.Errorf("null: read: %w", os.ErrClosed)
	case <-n.gate.frozen():
		return 0, chardev.ErrFrozen
	}
}

// Freeze makes Read return chardev.ErrFrozen until Thaw.
func (n *Null) Freeze() error { n.gate.freeze(); return nil }

// Thaw undoes Freeze.
func (n *Null) Thaw() error { n.gate.thaw(); return nil }

// Carry hands over nothing: a null device has no state.
func (n *Null) Carry() (chardev.Carried, error) { return chardev.Carried{State: []byte("{}")}, nil }

// Write discards p.
func (n *Null) Write(p []byte) (int, error) {
	select {
	case <-n.done():
		return 0, fmt.Errorf("null: write: %w", os.ErrClosed)
	default:
		return len(p), nil
	}
}

// Close wakes pending Reads. Safe to call more than once.
func (n *Null) Close() error {
	n.closeOnce.Do(func() { close(n.done()) })
	return nil
}
