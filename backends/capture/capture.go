// Package capture holds the formats a capture file is written in: raw,
// timestamped lines and asciicast v2. Each is an encoder over an io.Writer
// with Out and In methods for the two directions of a tee (what the
// frontend said, what legs typed into it), and the text formats come with a
// parser so that a capture can be checked by reading it back.
//
// The encoders do no I/O of their own beyond writing to the io.Writer they
// are given, keep no buffer that could hold back data (except at most three
// bytes of an incomplete UTF-8 sequence in asciicast), and take a Clock so
// tests can drive time.
package capture

import (
	"io"
	"time"
)

// Direction says which way captured bytes flowed.
type Direction uint8

const (
	// Output is what the frontend device produced (fanned out to legs).
	Output Direction = iota
	// Input is what legs typed into the frontend.
	Input
)

func (d Direction) String() string {
	if d == Input {
		return "in"
	}
	return "out"
}

// Clock returns the current time. A nil Clock means time.Now.
type Clock func() time.Time

func (c Clock) now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// Encoder writes the bytes of both directions in some file format. Each
// call results in at most one Write on the underlying writer, so a capture
// killed between calls leaves whole records behind.
type Encoder interface {
	Out(p []byte) error
	In(p []byte) error
}

// AttributedEncoder is an Encoder that can also name who typed an input
// chunk (a user of the access configuration). "" is nobody in particular:
// a raw client, the API.
type AttributedEncoder interface {
	Encoder
	InFrom(user string, p []byte) error
}

// Raw writes bytes exactly as they came; with both directions captured the
// file is just their interleaving.
type Raw struct {
	W io.Writer
}

// Out writes p.
func (r Raw) Out(p []byte) error { return r.write(p) }

// In writes p.
func (r Raw) In(p []byte) error { return r.write(p) }

func (r Raw) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, err := r.W.Write(p)
	return err
}

var (
	_ Encoder = Raw{}
	_ Encoder = (*Timestamped)(nil)
	_ Encoder = (*Asciicast)(nil)

	_ AttributedEncoder = (*Timestamped)(nil)
	_ AttributedEncoder = (*Asciicast)(nil)
)
