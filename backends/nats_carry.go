package backends

// How a nats backend goes through a chartee upgrade (see carry.go for the
// network types): its connection to the servers is not handed over (the
// client library's state cannot be), the new process connects again. What
// goes with it is what makes the stream continue for a consumer: the
// Chartee-Session and the byte offset (so Chartee-Offset and the
// Nats-Msg-Id of the next message follow on, and a consumer sees no new
// session), the length of a message a JetStream publish was waiting on at
// the cut (the new process publishes that message again, the same bytes
// under the same Nats-Msg-Id, so the stream drops it if it had stored it:
// dedup continues), and input received but not yet typed. Input published
// on <subject>.in while no process is subscribed (the pause) is lost, as
// core NATS is at most once.

import (
	"context"
	"encoding/json"
	"fmt"

	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Freezer      = (*NATSConn)(nil)
	_ chardev.WriteFreezer = (*NATSConn)(nil)
	_ chardev.Carrier      = (*NATSConn)(nil)
)

// natsCarried is a nats device's carried state.
type natsCarried struct {
	Session string `json:"session"`
	Offset  uint64 `json:"offset"`
	// Pending is the length of the message in flight at the cut (0:
	// none): the new process's first message is exactly that long.
	Pending int    `json:"pending,omitempty"`
	Input   []byte `json:"input,omitempty"`
}

// freezeChans are a NATSConn's freezes (a process upgrade): frozen ends
// Read, wfrozen ends a publish wait.
func (d *NATSConn) freezeChans() (frozen, wfrozen chan struct{}) {
	d.fmu.Lock()
	defer d.fmu.Unlock()
	if d.frozen == nil {
		d.frozen, d.wfrozen = make(chan struct{}), make(chan struct{})
	}
	return d.frozen, d.wfrozen
}

// Freeze makes Read return chardev.ErrFrozen until Thaw; input arriving
// meanwhile waits in the device.
func (d *NATSConn) Freeze() error {
	f, _ := d.freezeChans()
	d.fmu.Lock()
	defer d.fmu.Unlock()
	if !d.isFrozen {
		d.isFrozen = true
		close(f)
	}
	return nil
}

// Thaw undoes Freeze.
func (d *NATSConn) Thaw() error {
	d.freezeChans()
	d.fmu.Lock()
	defer d.fmu.Unlock()
	if d.isFrozen {
		d.isFrozen, d.frozen = false, make(chan struct{})
	}
	return nil
}

// FreezeWrite ends a Write waiting for the servers (a JetStream ack, a
// reconnection) with chardev.ErrFrozen, reporting the bytes stored before
// the message it waited on.
func (d *NATSConn) FreezeWrite() error {
	_, w := d.freezeChans()
	d.fmu.Lock()
	defer d.fmu.Unlock()
	if !d.isWFrozen {
		d.isWFrozen = true
		close(w)
	}
	return nil
}

// ThawWrite undoes FreezeWrite.
func (d *NATSConn) ThawWrite() error {
	d.freezeChans()
	d.fmu.Lock()
	defer d.fmu.Unlock()
	if d.isWFrozen {
		d.isWFrozen, d.wfrozen = false, make(chan struct{})
	}
	return nil
}

// writeFrozen is wfrozen, for publish.
func (d *NATSConn) writeFrozen() <-chan struct{} {
	_, w := d.freezeChans()
	return w
}

// Carry hands over the session, the offset, the message in flight and
// the input not yet read. No file: the new process connects again.
func (d *NATSConn) Carry() (chardev.Carried, error) {
	d.wmu.Lock()
	st := natsCarried{Session: d.session, Offset: d.offset, Pending: d.pending}
	d.wmu.Unlock()
	d.rmu.Lock()
	st.Input = append(st.Input, d.rest...)
	for more := true; more; {
		select {
		case m := <-d.in:
			st.Input = append(st.Input, m.Data...)
		default:
			more = false
		}
	}
	d.rest = st.Input // a rollback reads them here
	d.rmu.Unlock()
	b, err := json.Marshal(st)
	return chardev.Carried{State: b}, err
}

// natsInherit opens a nats device for spec that continues the one a
// chartee upgrade carried.
func natsInherit(spec chardev.Spec, c chardev.Carried) (chardev.Chardev, error) {
	st, err := parseNATSCarried(c.State)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsDefaultAckTimeout)
	defer cancel()
	dev, err := natsOpen(ctx, spec)
	if err != nil {
		return nil, err
	}
	d := dev.(*NATSConn)
	d.session, d.offset, d.pending, d.rest = st.Session, st.Offset, st.Pending, st.Input
	return d, nil
}

// parseNATSCarried reads a carried nats state, refusing one that cannot
// be right (no session, a negative or oversized pending message).
func parseNATSCarried(b []byte) (natsCarried, error) {
	var st natsCarried
	if err := netStrictJSON(b, &st); err != nil {
		return st, fmt.Errorf("nats: inherit: %w", err)
	}
	if st.Session == "" || st.Pending < 0 || st.Pending > natsMaxMessage {
		return st, fmt.Errorf("nats: inherit: session %q, pending %d", st.Session, st.Pending)
	}
	return st, nil
}
