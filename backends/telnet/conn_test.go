package telnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/chardev"
)

// fakeControl is a chardev.Control that records what a leg asked for.
type fakeControl struct {
	mu       sync.Mutex
	line     chardev.LineSettings
	modem    chardev.ModemStatus
	modemErr error
	setLines []chardev.LineSettings
	breaks   []time.Duration
	dtrs     []bool
	rtss     []bool
	purges   int
	locks    int
	unlocks  int
	lockErr  error
	status   string
}

var _ chardev.Control = (*fakeControl)(nil)

func (f *fakeControl) SetLineSettings(l chardev.LineSettings) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLines = append(f.setLines, l)
	f.line = l
	return nil
}

func (f *fakeControl) LineSettings() chardev.LineSettings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.line
}

func (f *fakeControl) SetModemLines(dtr, rts *bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dtr != nil {
		f.dtrs = append(f.dtrs, *dtr)
		f.modem.DTR = *dtr
	}
	if rts != nil {
		f.rtss = append(f.rtss, *rts)
		f.modem.RTS = *rts
	}
	return nil
}

func (f *fakeControl) ModemStatus() (chardev.ModemStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.modem, f.modemErr
}

func (f *fakeControl) Break(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.breaks = append(f.breaks, d)
	return nil
}

func (f *fakeControl) PurgeInput() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.purges++
}

func (f *fakeControl) TakeWriteLock() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locks++
	return f.lockErr
}

func (f *fakeControl) ReleaseWriteLock() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unlocks++
}

func (f *fakeControl) Status() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// snapshot runs fn under the fake's lock.
func (f *fakeControl) snapshot(fn func(f *fakeControl)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// waitFor polls cond until it holds or a generous timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Generous: a flood test's server decodes megabytes of hostile input
	// under -race on a loaded machine (10 s was once not enough).
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collector reads a device in the background, as the engine would.
type collector struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	err  error
	done chan struct{}
}

func collect(r io.Reader) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		p := make([]byte, 512)
		for {
			n, err := r.Read(p)
			c.mu.Lock()
			c.buf.Write(p[:n])
			if err != nil {
				c.err = err
			}
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *collector) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf.Bytes()...)
}

// waitBytes waits until the collector has received want (exactly).
func (c *collector) waitBytes(t *testing.T, want []byte) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d bytes", len(want)), func() bool { return len(c.bytes()) >= len(want) })
	if got := c.bytes(); !bytes.Equal(got, want) {
		t.Fatalf("received %q, want %q", got, want)
	}
}

// pair is a ServerConn and whatever the test connects to it, over real
// loopback TCP.
type pair struct {
	server *ServerConn
	ctl    *fakeControl
	got    *collector // what the server read from its client
	client net.Conn
}

// newPair listens on loopback, connects, and wraps the accepted conn in a
// ServerConn with cfg and a fake control; a collector reads the server.
func newPair(t *testing.T, cfg Config) *pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{server: NewServer(conn, cfg), ctl: &fakeControl{}, client: client}
	p.server.SetControl(p.ctl)
	p.got = collect(p.server)
	t.Cleanup(func() {
		client.Close()
		p.server.Close()
		<-p.got.done
	})
	return p
}

// newClient connects a ClientConn to the pair's server in place of the
// raw client.
func newClientPair(t *testing.T, serverCfg, clientCfg Config) (*pair, *ClientConn) {
	t.Helper()
	p := newPair(t, serverCfg)
	c := NewClient(p.client, clientCfg)
	t.Cleanup(func() { c.Close() })
	return p, c
}

func TestClientServerEightBitClean(t *testing.T) {
	for _, rfc2217 := range []bool{false, true} {
		t.Run(fmt.Sprintf("rfc2217=%v", rfc2217), func(t *testing.T) {
			cfg := Config{RFC2217: rfc2217}
			p, c := newClientPair(t, cfg, cfg)
			fromServer := collect(c)

			var all []byte
			for i := 0; i < 256; i++ {
				all = append(all, byte(i))
			}
			payload := bytes.Join([][]byte{all, []byte("\xff\xff\r\x00\r\n\r"), all, {IAC, SB, IAC, SE}}, nil)
			// Wait for the options to settle so the data goes in binary mode.
			waitFor(t, "binary both ways", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.neg.Enabled(Local, OptBinary) && c.neg.Enabled(Remote, OptBinary)
			})
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
			p.got.waitBytes(t, payload)
			if _, err := p.server.Write(payload); err != nil {
				t.Fatal(err)
			}
			fromServer.waitBytes(t, payload)
		})
	}
}

// TestServerNVTClient: a client that refuses binary mode gets RFC 854
// NVT treatment: CR NUL in means CR, a bare CR out is sent as CR NUL, and
// no negotiation byte ends up in the data.
func TestServerNVTClient(t *testing.T) {
	p := newPair(t, Config{Banner: "hello\r\n"})
	// Read the server's greeting: its option requests, then the banner.
	greeting := readUntil(t, p.client, []byte("hello\r\n"))
	for _, want := range [][]byte{{IAC, WILL, OptEcho}, {IAC, WILL, OptSGA}, {IAC, DO, OptSGA}, {IAC, WILL, OptBinary}, {IAC, DO, OptBinary}} {
		if !bytes.Contains(greeting, want) {
			t.Errorf("greeting %x lacks %x", greeting, want)
		}
	}
	// Refuse binary both ways, accept the rest, ask for something odd.
	write(t, p.client, []byte{IAC, DONT, OptBinary, IAC, WONT, OptBinary, IAC, DO, OptEcho, IAC, DO, OptSGA, IAC, WILL, OptSGA})
	write(t, p.client, []byte{IAC, WILL, 31, IAC, DO, 24})
	answers := readUntil(t, p.client, []byte{IAC, WONT, 24})
	if !bytes.Contains(answers, []byte{IAC, DONT, 31}) {
		t.Errorf("NAWS not refused: %x", answers)
	}
	write(t, p.client, []byte("a\r\x00b\r\nc\xff\xff\r\x00"))
	p.got.waitBytes(t, []byte("a\rb\r\nc\xff\r"))

	if _, err := p.server.Write([]byte("x\ry\r\n\xff")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, p.client, []byte("x\r\x00y\r\n\xff\xff"))
	if st := p.server.Stats(); st.RefusedOptions != 2 {
		t.Errorf("refused %d options, want 2", st.RefusedOptions)
	}
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads c until what it read contains want, and returns it all.
func readUntil(t *testing.T, c net.Conn, want []byte) []byte {
	t.Helper()
	var got []byte
	buf := make([]byte, 1024)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	defer c.SetReadDeadline(time.Time{})
	for !bytes.Contains(got, want) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading for %x: %v (got %x)", want, err, got)
		}
	}
	return got
}

func TestTelnetBreak(t *testing.T) {
	p, c := newClientPair(t, Config{}, Config{})
	if err := c.Break(time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "break", func() bool {
		var n int
		p.ctl.snapshot(func(f *fakeControl) { n = len(f.breaks) })
		return n == 1
	})
	p.ctl.snapshot(func(f *fakeControl) {
		if f.breaks[0] != BreakDuration {
			t.Errorf("IAC BRK sent a %v break, want %v", f.breaks[0], BreakDuration)
		}
	})
	if _, err := c.LineSettings(); !chardev.IsUnsupported(err) {
		t.Errorf("plain telnet LineSettings err = %v, want unsupported", err)
	}
	if err := c.SetDTR(true); !chardev.IsUnsupported(err) {
		t.Errorf("plain telnet SetDTR err = %v, want unsupported", err)
	}
}

func TestRFC2217SetLineSettingsWithControl(t *testing.T) {
	p, c := newClientPair(t, Config{RFC2217: true, Control: true}, Config{RFC2217: true})
	p.ctl.snapshot(func(f *fakeControl) { f.line = chardev.LineSettings{Baud: 9600, DataBits: 8} })
	want := chardev.LineSettings{Baud: 115200, DataBits: 7, Parity: chardev.ParityEven, StopBits: chardev.StopBits2, Flow: chardev.FlowRTSCTS}
	if err := c.SetLineSettings(want); err != nil {
		t.Fatal(err)
	}
	p.ctl.snapshot(func(f *fakeControl) {
		if f.line != want {
			t.Errorf("frontend line %v, want %v", f.line, want)
		}
		if len(f.setLines) != 5 {
			t.Errorf("%d SetLineSettings calls, want one per setting (5): %v", len(f.setLines), f.setLines)
		}
	})
	got, err := c.LineSettings()
	if err != nil || got != want {
		t.Errorf("client LineSettings = %v, %v; want %v", got, err, want)
	}
	if sig := c.ServerSignature(); sig != Signature {
		t.Errorf("server signature %q", sig)
	}
}

func TestRFC2217SetLineSettingsWithoutControl(t *testing.T) {
	p, c := newClientPair(t, Config{RFC2217: true}, Config{RFC2217: true})
	p.ctl.snapshot(func(f *fakeControl) { f.line = chardev.LineSettings{Baud: 9600, DataBits: 8} })
	p.ctl.snapshot(func(f *fakeControl) { f.modem = chardev.ModemStatus{DTR: true, RTS: true} })
	err := c.SetLineSettings(chardev.LineSettings{Baud: 115200})
	if err == nil || !strings.Contains(err.Error(), "kept 9600") {
		t.Fatalf("err = %v, want the server keeping 9600", err)
	}
	p.ctl.snapshot(func(f *fakeControl) {
		if len(f.setLines) != 0 {
			t.Errorf("frontend touched without control: %v", f.setLines)
		}
	})
	got, err := c.LineSettings()
	if err != nil || got.Baud != 9600 || got.DataBits != 0 && got.DataBits != 8 {
		t.Errorf("client LineSettings = %v, %v; want the server's 9600", got, err)
	}
	// The client may not drive the modem lines either.
	if err := c.SetDTR(false); err == nil {
		t.Error("SetDTR(false) without control succeeded")
	}
	p.ctl.snapshot(func(f *fakeControl) {
		if len(f.dtrs) != 0 {
			t.Errorf("DTR driven without control: %v", f.dtrs)
		}
	})
}

func TestRFC2217LineChangedNotifies(t *testing.T) {
	p, c := newClientPair(t, Config{RFC2217: true}, Config{RFC2217: true})
	waitFor(t, "COM-PORT-OPTION", func() bool {
		p.server.mu.Lock()
		defer p.server.mu.Unlock()
		return p.server.comPortActive()
	})
	l := chardev.LineSettings{Baud: 57600, DataBits: 8, Parity: chardev.ParityOdd, StopBits: chardev.StopBits1, Flow: chardev.FlowXONXOFF}
	p.server.LineChanged(l)
	waitFor(t, "client to hear the new line state", func() bool {
		got, err := c.LineSettings()
		return err == nil && got == l
	})
}

func TestRFC2217BreakAndModemLines(t *testing.T) {
	p, c := newClientPair(t, Config{RFC2217: true, Control: true}, Config{RFC2217: true})
	p.ctl.snapshot(func(f *fakeControl) { f.modem = chardev.ModemStatus{CTS: true, DCD: true} })
	if err := c.Break(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	p.ctl.snapshot(func(f *fakeControl) {
		if len(f.breaks) != 1 || f.breaks[0] < 50*time.Millisecond || f.breaks[0] > breakMax {
			t.Errorf("breaks %v, want one of about 50ms", f.breaks)
		}
	})
	if err := c.SetDTR(false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRTS(true); err != nil {
		t.Fatal(err)
	}
	p.ctl.snapshot(func(f *fakeControl) {
		if fmt.Sprint(f.dtrs, f.rtss) != "[false] [true]" {
			t.Errorf("dtr %v rts %v", f.dtrs, f.rtss)
		}
	})
	// The server sent the modem state when RFC 2217 came up; poll for a
	// fresh one to be sure it reflects the fake's lines.
	if err := c.writeRaw(ComPortMsg{Code: ComNotifyModemState}.Append(nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "modem state", func() bool {
		ms, err := c.ModemStatus()
		return err == nil && ms.CTS && ms.DCD && !ms.DSR && ms.RTS && !ms.DTR
	})
}

// rawRFC2217 is a hand-driven RFC 2217 client: it agrees to everything
// and decodes what the server sends.
type rawRFC2217 struct {
	t       *testing.T
	conn    net.Conn
	dec     Decoder
	data    []byte
	pending []byte // read, not yet decoded
}

func newRawRFC2217(t *testing.T, p *pair) *rawRFC2217 {
	r := &rawRFC2217{t: t, conn: p.client}
	write(t, p.client, []byte{IAC, WILL, OptComPort, IAC, DO, OptComPort})
	r.expect(func(ev *Event) bool {
		return ev.Kind == EventNegotiation && ev.Command == DO && ev.Option == OptComPort
	})
	return r
}

// expect decodes what the server sent until an event satisfies match,
// and returns it. Input after that event is kept for the next call.
func (r *rawRFC2217) expect(match func(*Event) bool) Event {
	r.t.Helper()
	buf := make([]byte, 1024)
	if err := r.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		r.t.Fatal(err)
	}
	for {
		for len(r.pending) > 0 {
			var ev *Event
			r.data, r.pending, ev = r.dec.Decode(r.data, r.pending)
			if ev != nil && match(ev) {
				e := *ev
				e.Data = append([]byte(nil), ev.Data...)
				return e
			}
		}
		if match(&Event{}) {
			return Event{}
		}
		n, err := r.conn.Read(buf)
		if err != nil {
			r.t.Fatalf("waiting for an event: %v", err)
		}
		r.pending = append([]byte(nil), buf[:n]...)
	}
}

// call sends a client command and returns the server's answer.
func (r *rawRFC2217) call(m ComPortMsg) ComPortMsg {
	r.t.Helper()
	write(r.t, r.conn, m.Append(nil))
	var got ComPortMsg
	r.expect(func(ev *Event) bool {
		if ev.Kind != EventSubnegotiation {
			return false
		}
		a, err := ParseComPort(ev.Data)
		if err != nil || a.Code != m.Command()+ServerOffset {
			return false
		}
		got = a
		return true
	})
	return got
}

func TestRFC2217ServerAnswers(t *testing.T) {
	p := newPair(t, Config{RFC2217: true, Control: true})
	p.ctl.snapshot(func(f *fakeControl) {
		f.line = chardev.LineSettings{Baud: 19200, DataBits: 8, Flow: chardev.FlowXONXOFF}
	})
	r := newRawRFC2217(t, p)
	tests := []struct {
		req  ComPortMsg
		want uint32
	}{
		{ComPortMsg{Code: ComSetBaudRate}, 19200}, // 0 asks for the current value
		{ComPortMsg{Code: ComSetDataSize}, 8},
		{ComPortMsg{Code: ComSetControl, Value: uint32(CtlFlowRequest)}, uint32(CtlFlowXonXoff)},
		{ComPortMsg{Code: ComSetControl, Value: uint32(CtlInFlowRequest)}, uint32(CtlInFlowXonXoff)},
		{ComPortMsg{Code: ComSetControl, Value: uint32(CtlBreakRequest)}, uint32(CtlBreakOff)},
		{ComPortMsg{Code: ComSetParity, Value: 9}, 1}, // nonsense value: current parity
		{ComPortMsg{Code: ComSetModemStateMask, Value: 0xf0}, 0xf0},
		{ComPortMsg{Code: ComSetLineStateMask, Value: 0}, 0},
		{ComPortMsg{Code: ComNotifyLineState}, 0},
		{ComPortMsg{Code: ComPurgeData, Value: uint32(PurgeReceive)}, uint32(PurgeReceive)},
		{ComPortMsg{Code: ComPurgeData, Value: uint32(PurgeTransmit)}, uint32(PurgeTransmit)},
	}
	for _, tt := range tests {
		if got := r.call(tt.req); got.Value != tt.want {
			t.Errorf("%+v answered %d, want %d", tt.req, got.Value, tt.want)
		}
	}
	if sig := r.call(ComPortMsg{Code: ComSignature}); string(sig.Text) != Signature {
		t.Errorf("signature %q", sig.Text)
	}
	p.ctl.snapshot(func(f *fakeControl) {
		if f.purges != 1 {
			t.Errorf("purges %d, want 1 (transmit buffer only)", f.purges)
		}
		if len(f.setLines) != 0 {
			t.Errorf("requests changed the line: %v", f.setLines)
		}
	})
	// A client's own signature is recorded, not answered.
	write(t, p.client, ComPortMsg{Code: ComSignature, Text: []byte("pyserial")}.Append(nil))
	r.call(ComPortMsg{Code: ComNotifyLineState})
	if got := p.server.PeerSignature(); got != "pyserial" {
		t.Errorf("peer signature %q", got)
	}
}

func TestRFC2217FlowControlSuspend(t *testing.T) {
	p := newPair(t, Config{RFC2217: true})
	r := newRawRFC2217(t, p)
	write(t, p.client, ComPortMsg{Code: ComFlowSuspend}.Append(nil))
	r.call(ComPortMsg{Code: ComNotifyLineState}) // the suspend has been read
	written := make(chan error, 1)
	go func() {
		_, err := p.server.Write([]byte("held"))
		written <- err
	}()
	select {
	case err := <-written:
		t.Fatalf("Write returned while suspended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	write(t, p.client, ComPortMsg{Code: ComFlowResume}.Append(nil))
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	r.expect(func(*Event) bool { return bytes.Contains(r.data, []byte("held")) })

	// Close releases a Write held by a suspended client.
	write(t, p.client, ComPortMsg{Code: ComFlowSuspend}.Append(nil))
	r.call(ComPortMsg{Code: ComNotifyLineState})
	go func() {
		_, err := p.server.Write([]byte("never"))
		written <- err
	}()
	p.server.Close()
	if err := <-written; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func TestServerOversizeSubnegotiationDropped(t *testing.T) {
	p := newPair(t, Config{RFC2217: true, MaxSubneg: 64})
	flood := append([]byte{IAC, SB, OptComPort, ComSignature}, bytes.Repeat([]byte{'x', IAC, IAC}, 10000)...)
	flood = append(flood, IAC, SE)
	flood = append(flood, "ok"...)
	write(t, p.client, flood)
	p.got.waitBytes(t, []byte("ok"))
	if st := p.server.Stats(); st.DroppedSubneg != 1 {
		t.Errorf("dropped %d subnegotiations, want 1", st.DroppedSubneg)
	}
}

func TestServerAYT(t *testing.T) {
	p := newPair(t, Config{})
	write(t, p.client, []byte{IAC, AYT})
	readUntil(t, p.client, []byte("[chartee: yes]"))
}

func TestServerCloseUnblocksRead(t *testing.T) {
	p := newPair(t, Config{})
	p.server.Close()
	<-p.got.done
	if p.got.err == nil {
		t.Fatal("Read returned no error after Close")
	}
	if err := p.server.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if p.server.Peer() == "" || !strings.HasPrefix(p.server.Describe(), "telnet client 127.0.0.1:") {
		t.Errorf("peer %q describe %q", p.server.Peer(), p.server.Describe())
	}
}

func TestClientCloseUnblocksRead(t *testing.T) {
	_, c := newClientPair(t, Config{}, Config{})
	got := collect(c)
	c.Close()
	<-got.done
	if got.err == nil {
		t.Fatal("Read returned no error after Close")
	}
}
