package watch

// A process upgrade carries a tee's watches to the new process (see
// chartee's DESIGN.md): the watch leg stops at the cut like any leg, and
// its device hands over where it is in the stream, the tail of the output
// it matched (so a pattern half seen at the cut still matches once the
// rest arrives, and a match already reported is not reported again), and
// when each watch last ran its actions (cooldowns go on). Actions queued
// or running at the cut are not carried: they finish in the old process
// if they can before it exits (an exec'd program runs on, orphaned), and
// a match is never acted on twice.

import (
	"encoding/json"
	"fmt"

	"chartee/chardev"
)

// carryTail is how much of the matched output a watch leg carries: more
// than LookBack, so the line in progress and some context are rebuilt.
const carryTail = 2 * LookBack

var (
	_ chardev.Freezer = (*device)(nil)
	_ chardev.Carrier = (*device)(nil)
)

// State is what a watch leg carries to a new process.
type State struct {
	// At is the stream offset of the next byte the leg expects; Tail
	// the output just before it.
	At   uint64 `json:"at"`
	Tail []byte `json:"tail,omitempty"`
	// Cooldowns is when each watch (by Spec.String) last ran its
	// actions, in Unix nanoseconds.
	Cooldowns map[string]int64 `json:"cooldowns,omitempty"`
}

// ParseState reads a carried State, refusing one that cannot be right.
func ParseState(b []byte) (State, error) {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("watch: carried state: %w", err)
	}
	if len(st.Tail) > carryTail {
		return st, fmt.Errorf("watch: carried state: %d bytes of tail, at most %d", len(st.Tail), carryTail)
	}
	if uint64(len(st.Tail)) > st.At {
		return st, fmt.Errorf("watch: carried state: %d bytes of tail before offset %d", len(st.Tail), st.At)
	}
	return st, nil
}

// Freeze implements chardev.Freezer: the watch leg types nothing, so its
// reader only has to stop.
func (d *device) Freeze() error {
	d.frz.Lock()
	defer d.frz.Unlock()
	if !d.isFrozen {
		d.isFrozen = true
		close(d.frozen)
	}
	return nil
}

// Thaw undoes Freeze.
func (d *device) Thaw() error {
	d.frz.Lock()
	defer d.frz.Unlock()
	if d.isFrozen {
		d.isFrozen = false
		d.frozen = make(chan struct{})
	}
	return nil
}

// frozenCh is closed once the device is frozen.
func (d *device) frozenCh() <-chan struct{} {
	d.frz.Lock()
	defer d.frz.Unlock()
	return d.frozen
}

// Carry implements chardev.Carrier, on a frozen leg (its writer stopped).
func (d *device) Carry() (chardev.Carried, error) {
	st := State{At: d.at, Tail: d.tail.bytes(), Cooldowns: d.w.cooldowns()}
	b, err := json.Marshal(st)
	if err != nil {
		return chardev.Carried{}, err
	}
	return chardev.Carried{State: b}, nil
}

// Resume makes the watcher continue from what a watch leg of the process
// this one took over from carried: its next device starts with the
// matcher primed on the carried tail (matches in it are not reported
// again), and cooldowns go on for the watches whose spec is unchanged.
func (w *Watcher) Resume(st State) {
	s := w.state.Load()
	for i, sp := range s.specs {
		if at, ok := st.Cooldowns[sp.String()]; ok {
			s.last[i].Store(at)
		}
	}
	w.prime.Store(&st)
}

func (w *Watcher) cooldowns() map[string]int64 {
	s := w.state.Load()
	out := map[string]int64{}
	for i, sp := range s.specs {
		if at := s.last[i].Load(); at != 0 {
			out[sp.String()] = at
		}
	}
	return out
}

// primed feeds the carried tail to a new matcher, reporting nothing.
func (d *device) primed(st *State) {
	if st == nil || len(st.Tail) == 0 {
		return
	}
	d.m.Feed(st.Tail, st.At-uint64(len(st.Tail)), func(Match) {})
	d.tail.write(st.Tail)
}

// tailRing keeps (at least) the last carryTail bytes written, for Carry:
// it appends, and moves the last carryTail bytes to the front once it
// holds twice that, so keeping it costs a copy of each byte about twice.
type tailRing struct {
	buf []byte
}

func (r *tailRing) write(p []byte) {
	if len(p) >= carryTail {
		r.buf = append(r.buf[:0], p[len(p)-carryTail:]...)
		return
	}
	if len(r.buf)+len(p) > 2*carryTail {
		r.buf = append(r.buf[:0], r.buf[len(r.buf)-carryTail:]...)
	}
	r.buf = append(r.buf, p...)
}

func (r *tailRing) reset() { r.buf = r.buf[:0] }

func (r *tailRing) bytes() []byte {
	b := r.buf
	if len(b) > carryTail {
		b = b[len(b)-carryTail:]
	}
	return append([]byte(nil), b...)
}

// errFrozenRead is what a frozen watch leg's Read returns.
var errFrozenRead = fmt.Errorf("watch: %w", chardev.ErrFrozen)
