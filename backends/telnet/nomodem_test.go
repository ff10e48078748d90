package telnet

import (
	"errors"
	"syscall"
	"testing"

	"chartee/chardev"
)

// TestRFC2217FrontendWithoutModemLines: a frontend with no modem lines (a
// pty answers ENOTTY, exec and TCP frontends ErrUnsupported) is reported
// as modem state 0, both when RFC 2217 comes up and when the client asks.
// Before, the server said nothing, and pyserial's port.cts raised "remote
// sends no NOTIFY_MODEMSTATE".
func TestRFC2217FrontendWithoutModemLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"unsupported", chardev.ErrUnsupported},
		{"pty-enotty", syscall.ENOTTY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, Config{RFC2217: true, Control: true})
			p.ctl.snapshot(func(f *fakeControl) { f.modemErr = tc.err })
			isModemState := func(m ComPortMsg) bool { return m.Code == ComNotifyModemState+ServerOffset }

			var first ComPortMsg
			r := newRawRFC2217(t, p)
			r.expect(func(ev *Event) bool {
				if ev.Kind != EventSubnegotiation {
					return false
				}
				m, err := ParseComPort(ev.Data)
				if err != nil || !isModemState(m) {
					return false
				}
				first = m
				return true
			})
			if first.Value != 0 {
				t.Fatalf("initial modem state %#x, want 0 (no lines asserted)", first.Value)
			}
			if got := r.call(ComPortMsg{Code: ComNotifyModemState}); got.Value != 0 {
				t.Fatalf("NOTIFY-MODEMSTATE answered %#x, want 0", got.Value)
			}
		})
	}
}

// TestRFC2217ModemStateWhenFrontendDown: a client asking for the modem
// state while the lines cannot be read (the frontend is down) still gets
// an answer, of no lines asserted.
func TestRFC2217ModemStateWhenFrontendDown(t *testing.T) {
	p := newPair(t, Config{RFC2217: true, Control: true})
	r := newRawRFC2217(t, p)
	p.ctl.snapshot(func(f *fakeControl) { f.modemErr = errors.New("tee t: frontend is down") })
	if got := r.call(ComPortMsg{Code: ComNotifyModemState}); got.Value != 0 {
		t.Fatalf("NOTIFY-MODEMSTATE answered %#x, want 0", got.Value)
	}
}
