package capture

// This file is what the encoders carry across a chartee process upgrade:
// the state between two calls (a line left open, a UTF-8 sequence cut in
// two, who typed last), exported by State and taken back by Restore in the
// new process, so that the capture continues as if one encoder had written
// it all: no second header, no extra line break, times still counted from
// the header.

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// TimestampedState is a Timestamped encoder's state between two calls.
type TimestampedState struct {
	// MidLine: the last line written has no newline yet; Dir and User
	// are its direction and typist.
	MidLine bool      `json:"mid_line,omitempty"`
	Dir     Direction `json:"dir,omitempty"`
	User    string    `json:"user,omitempty"`
	// Cut: the next line's prefix carries '+' (it continues a line
	// broken by a direction change or a new file).
	Cut bool `json:"cut,omitempty"`
	// Pending is a line break queued for the next write (NewFile on a
	// file that ended mid-line): "" or "\n".
	Pending string `json:"pending,omitempty"`
}

// State exports the encoder's state.
func (t *Timestamped) State() TimestampedState {
	return TimestampedState{MidLine: t.midLine, Dir: t.dir, User: t.user, Cut: t.cut, Pending: string(t.buf)}
}

// Restore continues from a state State exported (in another process). A
// state no encoder could have been in is an error and changes nothing.
func (t *Timestamped) Restore(s TimestampedState) error {
	if err := s.validate(); err != nil {
		return err
	}
	t.midLine, t.dir, t.user, t.cut = s.MidLine, s.Dir, s.User, s.Cut
	t.buf = append(t.buf[:0], s.Pending...)
	return nil
}

func (s TimestampedState) validate() error {
	switch {
	case s.Dir != Output && s.Dir != Input:
		return fmt.Errorf("timestamped state: direction %d, want 0 (out) or 1 (in)", s.Dir)
	case s.Pending != "" && s.Pending != "\n":
		return fmt.Errorf("timestamped state: pending %q, want nothing or a line break", s.Pending)
	case len(s.User) > maxCarriedName:
		return fmt.Errorf("timestamped state: user name of %d bytes, want at most %d", len(s.User), maxCarriedName)
	}
	return nil
}

// AsciicastState is an Asciicast encoder's state between two calls.
type AsciicastState struct {
	// Started: the header is written.
	Started bool `json:"started,omitempty"`
	// Origin is the time event times count from, in Unix nanoseconds.
	Origin int64 `json:"origin,omitempty"`
	// Last is the last event time written, in seconds.
	Last float64 `json:"last,omitempty"`
	// HeldOut and HeldIn are the incomplete UTF-8 tails held back, per
	// direction.
	HeldOut []byte `json:"held_out,omitempty"`
	HeldIn  []byte `json:"held_in,omitempty"`
	// Typist is who typed the last input; Marker is a marker event
	// still to write before the next input.
	Typist string `json:"typist,omitempty"`
	Marker string `json:"marker,omitempty"`
}

// maxCarriedName bounds names in a carried state (a user name).
const maxCarriedName = 256

// State exports the encoder's state.
func (a *Asciicast) State() AsciicastState {
	s := AsciicastState{Started: a.started, Last: a.last, Typist: a.typist, Marker: a.pendingMarker,
		HeldOut: append([]byte(nil), a.held[Output]...), HeldIn: append([]byte(nil), a.held[Input]...)}
	if a.started {
		s.Origin = a.origin.UnixNano()
	}
	return s
}

// Restore continues from a state State exported (in another process). A
// state no encoder could have been in is an error and changes nothing.
func (a *Asciicast) Restore(s AsciicastState) error {
	if err := s.validate(); err != nil {
		return err
	}
	a.started, a.last, a.typist, a.pendingMarker = s.Started, s.Last, s.Typist, s.Marker
	a.origin = time.Time{}
	if s.Started {
		a.origin = time.Unix(0, s.Origin)
	}
	a.held[Output] = append([]byte(nil), s.HeldOut...)
	a.held[Input] = append([]byte(nil), s.HeldIn...)
	return nil
}

func (s AsciicastState) validate() error {
	if math.IsNaN(s.Last) || math.IsInf(s.Last, 0) || s.Last < 0 {
		return fmt.Errorf("asciicast state: last event time %v, want a finite time >= 0", s.Last)
	}
	for _, h := range [][]byte{s.HeldOut, s.HeldIn} {
		if len(h) > 0 && incompleteTail(h) != 0 {
			return fmt.Errorf("asciicast state: held bytes %q are not the start of one UTF-8 character", h)
		}
	}
	if len(s.Typist) > maxCarriedName || len(s.Marker) > len(MarkerInputBy)+maxCarriedName {
		return errors.New("asciicast state: typist or marker too long")
	}
	if !utf8.ValidString(s.Typist) || !utf8.ValidString(s.Marker) {
		return errors.New("asciicast state: typist or marker is not UTF-8")
	}
	return nil
}
