package telnet

import (
	"testing"

	"chartee/chardev"
)

// echoControl is a fakeControl that, like the engine, tells every leg of
// a line change — the one that asked included — synchronously, from
// within SetLineSettings.
type echoControl struct {
	fakeControl
	observer chardev.LineObserver
}

func (c *echoControl) SetLineSettings(l chardev.LineSettings) error {
	if err := c.fakeControl.SetLineSettings(l); err != nil {
		return err
	}
	c.observer.LineChanged(l)
	return nil
}

// TestRFC2217OwnChangeNotNotified: a client's own SET-BAUDRATE is answered
// once, and not also notified with the rest of the line state. pyserial
// sets flow control only after baud rate and friends are answered, and an
// unrequested SET-CONTROL answer before that kills its reader thread (see
// ServerConn.LineChanged); TestRealPyserialRFC2217 in package backends
// shows it with pyserial itself. Changes made by others are still
// notified.
func TestRFC2217OwnChangeNotNotified(t *testing.T) {
	p := newPair(t, Config{RFC2217: true, Control: true})
	ctl := &echoControl{observer: p.server}
	ctl.line = chardev.LineSettings{Baud: 38400, DataBits: 8}
	ctl.modemErr = chardev.ErrUnsupported // no modem-state notification either
	p.server.SetControl(ctl)
	r := newRawRFC2217(t, p)

	setCmd := func(m ComPortMsg) bool {
		c := m.Command()
		return m.FromServer() && c >= ComSetBaudRate && c <= ComSetControl
	}
	var seen []ComPortMsg
	collectUntil := func(last ComPortMsg) {
		t.Helper()
		r.expect(func(ev *Event) bool {
			if ev.Kind != EventSubnegotiation {
				return false
			}
			m, err := ParseComPort(ev.Data)
			if err != nil || !setCmd(m) {
				return false
			}
			seen = append(seen, m)
			return m.Code == last.Code && m.Value == last.Value
		})
	}

	write(t, p.client, ComPortMsg{Code: ComSetBaudRate, Value: 9600}.Append(nil))
	// Flow control is asked about only now, as pyserial does: its answer
	// must be the first SET-CONTROL the client sees.
	write(t, p.client, ComPortMsg{Code: ComSetControl, Value: uint32(CtlFlowRequest)}.Append(nil))
	collectUntil(ComPortMsg{Code: ComSetControl + ServerOffset, Value: uint32(CtlFlowNone)})
	want := []ComPortMsg{
		{Code: ComSetBaudRate + ServerOffset, Value: 9600},
		{Code: ComSetControl + ServerOffset, Value: uint32(CtlFlowNone)},
	}
	same := len(seen) == len(want)
	for i := 0; same && i < len(want); i++ {
		same = seen[i].Code == want[i].Code && seen[i].Value == want[i].Value
	}
	if !same {
		t.Fatalf("server sent %+v, want exactly the answers %+v", seen, want)
	}
	if got := ctl.LineSettings(); got.Baud != 9600 {
		t.Fatalf("line %v: the request was not applied", got)
	}

	// Another leg changes the line: this client hears of it.
	seen = nil
	p.server.LineChanged(chardev.LineSettings{Baud: 19200, DataBits: 8})
	collectUntil(ComPortMsg{Code: ComSetBaudRate + ServerOffset, Value: 19200})
}
