package escape

// This file hands the escape machine's state to another process (a
// chartee upgrade): an escape key typed just before the cut is still
// waiting for its command key in the process that takes over.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"chartee/chardev"
)

// ErrState is wrapped by every error about a bad state document.
var ErrState = errors.New("bad escape state")

// State is a Machine's state between two calls to Step.
type State struct {
	// Key is the escape key as KeyName writes it ("^E").
	Key string `json:"key"`
	// Armed: the key was typed and the command key is awaited.
	Armed bool `json:"armed,omitempty"`
}

// State exports the machine's state.
func (m *Machine) State() State { return State{Key: KeyName(m.Key), Armed: m.armed} }

// SetState makes the machine continue from s. The key must be the
// machine's own: a half-typed command for another key means nothing.
func (m *Machine) SetState(s State) error {
	if s.Key != KeyName(m.Key) {
		return fmt.Errorf("%w: key %q, this machine's is %s", ErrState, s.Key, KeyName(m.Key))
	}
	m.armed = s.Armed
	return nil
}

// ParseState reads a State document strictly: one JSON object, no
// unknown field, a usable key.
func ParseState(doc []byte) (State, error) {
	var s State
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrState, err)
	}
	if dec.More() {
		return State{}, fmt.Errorf("%w: trailing data after the document", ErrState)
	}
	if _, err := ParseKey(s.Key); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrState, err)
	}
	return s, nil
}

// Export returns the escape state of a connection stopped at a cut: its
// last Read returned an error and left nothing scanned and not returned.
func (c *Conn) Export() (State, error) {
	if n := len(c.data) + len(c.rest); n > 0 || c.held.Op != OpNone {
		return State{}, fmt.Errorf("escape: export: not stopped at a cut (%d bytes read and not yet returned)", n)
	}
	return c.m.State(), nil
}

// Resume wraps dev like Wrap, continuing from s, exported by Export.
func Resume(dev chardev.Chardev, key byte, s State) (*Conn, error) {
	c := Wrap(dev, key).(*Conn)
	if err := c.m.SetState(s); err != nil {
		return nil, err
	}
	return c, nil
}
