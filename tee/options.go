package tee

import (
	"fmt"
	"strings"
	"time"

	"chartee/chardev"
)

// Overflow is what a leg does when its queue is full.
type Overflow uint8

const (
	// Drop drops the chunk for this leg only and counts the bytes. The
	// default: a slow spectator must never slow the console.
	Drop Overflow = iota
	// Block makes the frontend read wait until the leg has room: lossless
	// for this leg, at the price of back-pressure on everyone.
	Block
	// Disconnect removes the slow leg.
	Disconnect
)

var overflowNames = [...]string{"drop", "block", "disconnect"}

func (o Overflow) String() string {
	if int(o) < len(overflowNames) {
		return overflowNames[o]
	}
	return fmt.Sprintf("overflow(%d)", o)
}

// ParseOverflow parses drop, block or disconnect.
func ParseOverflow(s string) (Overflow, error) {
	for i, n := range overflowNames {
		if strings.EqualFold(s, n) {
			return Overflow(i), nil
		}
	}
	return 0, fmt.Errorf("on_overflow %q: want drop, block or disconnect", s)
}

// MarshalText writes the policy name.
func (o Overflow) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText parses the policy name.
func (o *Overflow) UnmarshalText(b []byte) error {
	v, err := ParseOverflow(string(b))
	if err == nil {
		*o = v
	}
	return err
}

// InputMode says who may type into the frontend.
type InputMode uint8

const (
	// Shared merges input from every leg that has input enabled.
	Shared InputMode = iota
	// Exclusive gives one leg at a time the right to type: the first that
	// types takes it, and it is released after an idle time or when that
	// leg leaves. Everyone else's input is discarded and counted.
	Exclusive
)

func (m InputMode) String() string {
	if m == Exclusive {
		return "exclusive"
	}
	return "shared"
}

// ParseInputMode parses shared or exclusive.
func ParseInputMode(s string) (InputMode, error) {
	switch strings.ToLower(s) {
	case "shared", "":
		return Shared, nil
	case "exclusive":
		return Exclusive, nil
	}
	return 0, fmt.Errorf("input %q: want shared or exclusive", s)
}

// LegOptions are the per-backend settings every leg of that backend gets.
// The zero value is a drop-policy leg with the default queue, no input and
// no replay.
type LegOptions struct {
	// Input lets the leg type into the frontend. Without it, everything
	// the leg's device sends is discarded and counted.
	Input bool
	// Control lets the leg change the frontend's line settings and modem
	// lines (RFC 2217 clients).
	Control bool
	// Queue bounds the bytes waiting for this leg's writer (0: 256 KiB).
	Queue int
	// Overflow is what happens when the queue is full.
	Overflow Overflow
	// Replay is how many bytes of recent output a new leg gets first, like
	// conserver's replay. Bounded by the tee's Scrollback.
	Replay int
}

const defaultQueue = 256 << 10

func (o LegOptions) queueLimit() int {
	if o.Queue <= 0 {
		return defaultQueue
	}
	return o.Queue
}

// Backoff bounds the delays between reconnect rounds: Initial, doubling up
// to Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max < b.Initial {
		b.Max = 5 * time.Second
		if b.Max < b.Initial {
			b.Max = b.Initial
		}
	}
	return b
}

// Defaults the configuration layer also needs: it checks replay against
// the scrollback, and bounds a tee's shutdown by the drain timeout.
const (
	// DefaultScrollback is Options.Scrollback when zero.
	DefaultScrollback = 64 << 10
	// DefaultDrainTimeout is Options.DrainTimeout when zero.
	DefaultDrainTimeout = 5 * time.Second
)

// Options configure a Tee. Only Frontend is required.
type Options struct {
	// Name identifies the tee in events and stats.
	Name string
	// Frontend opens the device whose output is fanned out.
	Frontend chardev.Opener
	// Failover devices are tried in order when the frontend fails.
	Failover []chardev.Opener
	// Reconnect paces reopening a failed frontend (default 100ms to 5s).
	Reconnect Backoff
	// Input is shared or exclusive.
	Input InputMode
	// ExclusiveIdle releases the exclusive write lock after the holder has
	// not typed for this long (0: 30s).
	ExclusiveIdle time.Duration
	// InputBuffer bounds input waiting for the frontend, e.g. typed during
	// an outage (0: 64 KiB). Beyond it input is dropped and counted.
	InputBuffer int
	// Scrollback is how much recent output is kept for replay (0: 64 KiB).
	Scrollback int
	// ReadSize is the frontend read size, and so the largest chunk (0: 32 KiB).
	ReadSize int
	// DrainTimeout bounds how long a swap waits for the old leg (0: 5s).
	// It also bounds how long Detach and a swap wait for a removed
	// device's Close to finish.
	DrainTimeout time.Duration
	// Events, when set, is called with every event of the tee from the
	// very first (the frontend opening, which New may already emit), in
	// order, from a goroutine of the tee's own, until Close. Unlike
	// Subscribe after New it cannot miss the start. It may block for a
	// while (to log); past EventBuffer waiting events, further events
	// are dropped and counted by EventsMissed rather than slowing the
	// tee. It must not call Close or Shutdown.
	Events func(Event)
	// EventBuffer is how many events may wait for Events (0: 256).
	EventBuffer int
	// InputPacing slows everything typed into the frontend (zero: no
	// pacing). Configure changes it.
	InputPacing Pacing
	// Hold keeps the frontend closed until Start, so that the legs a
	// configuration attaches first see the stream from its first byte (a
	// capture that misses the first boot-log line is no capture).
	Hold bool
	// Resume continues a stream another process froze (a process
	// upgrade); nil starts at offset 0.
	Resume *Resume
}

func (o Options) withDefaults() Options {
	o.Reconnect = o.Reconnect.withDefaults()
	if o.ExclusiveIdle <= 0 {
		o.ExclusiveIdle = 30 * time.Second
	}
	if o.InputBuffer <= 0 {
		o.InputBuffer = 64 << 10
	}
	if o.Scrollback <= 0 {
		o.Scrollback = DefaultScrollback
	}
	if o.ReadSize <= 0 {
		o.ReadSize = 32 << 10
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 256
	}
	return o
}

// SwapMode chooses how a leg swap hands over the stream.
type SwapMode uint8

const (
	// Handover cuts the stream at one offset: the old leg gets every byte
	// before it and the new leg every byte from it, with bytes the old leg
	// could not take handed to the new leg first. Old + new = the stream.
	Handover SwapMode = iota
	// Overlap starts the new leg at once and lets the old one keep going
	// until it has caught up (or the drain timeout); bytes in between reach
	// both. Suits interactive legs, where a gap is worse than a repeat.
	Overlap
)

func (m SwapMode) String() string {
	if m == Overlap {
		return "overlap"
	}
	return "handover"
}

// ParseSwapMode parses handover or overlap.
func ParseSwapMode(s string) (SwapMode, error) {
	switch strings.ToLower(s) {
	case "handover", "":
		return Handover, nil
	case "overlap":
		return Overlap, nil
	}
	return 0, fmt.Errorf("swap mode %q: want handover or overlap", s)
}

// SwapOptions tune one Swap.
type SwapOptions struct {
	Mode SwapMode
	// DrainTimeout overrides the tee's drain timeout for this swap.
	DrainTimeout time.Duration
	// Options, when set, replace the backend's leg options for the new leg.
	Options *LegOptions
}

// SwapReport says what a leg swap did.
type SwapReport struct {
	Backend string `json:"backend"`
	Mode    string `json:"mode"`
	Cut     uint64 `json:"cut_offset"`
	// NewStart is the stream offset of the first byte the new leg got:
	// the cut, or earlier when bytes were handed over.
	NewStart   uint64        `json:"new_start_offset"`
	Drained    uint64        `json:"drained_bytes"`
	Handed     uint64        `json:"handed_over_bytes"`
	Overlapped uint64        `json:"overlap_bytes"`
	OldErr     string        `json:"old_error,omitempty"`
	Elapsed    time.Duration `json:"duration_ns"`
	// Effective is the backend as it runs after the swap, with the
	// options it inherited from the one it replaced (filled in by the
	// daemon): "file /var/log/b2.log (raw, out); input no, on_overflow
	// block, queue 256KiB, replay 0B".
	Effective string `json:"effective,omitempty"`
}

// FrontendSwapReport says what a frontend swap did.
type FrontendSwapReport struct {
	From        string        `json:"from"`
	To          string        `json:"to"`
	Offset      uint64        `json:"offset"`
	LineApplied bool          `json:"line_applied"`
	InputCarry  int           `json:"input_carried_bytes"`
	Elapsed     time.Duration `json:"duration_ns"`
}
