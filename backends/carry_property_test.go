package backends

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/backends/escape"
	"chartee/backends/telnet"
	"chartee/chardev"

	"pgregory.net/rapid"
)

// scriptConn is one process's view of a connection whose peer sent in:
// Read returns it in the chunks given; then, like an idle socket, it
// returns io.EOF (the peer left), or waits for a read deadline in the
// past (a freeze) and returns os.ErrDeadlineExceeded. With cutAtEnd the
// freeze is taken to have come already. Writes are recorded.
type scriptConn struct {
	mu       sync.Mutex
	chunks   [][]byte
	eof      bool
	cutAtEnd bool
	idle     chan struct{} // closed once Read found nothing left
	frozen   chan struct{} // closed by a read deadline in the past
	out      bytes.Buffer
}

func newScriptConn(chunks [][]byte, eof, cutAtEnd bool) *scriptConn {
	return &scriptConn{chunks: chunks, eof: eof, cutAtEnd: cutAtEnd,
		idle: make(chan struct{}), frozen: make(chan struct{})}
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.chunks) > 0 {
		n := copy(p, c.chunks[0])
		if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
			c.chunks = c.chunks[1:]
		}
		c.mu.Unlock()
		return n, nil
	}
	select {
	case <-c.idle:
	default:
		close(c.idle)
	}
	c.mu.Unlock()
	switch {
	case c.eof:
		return 0, io.EOF
	case c.cutAtEnd:
		return 0, os.ErrDeadlineExceeded
	}
	<-c.frozen
	return 0, os.ErrDeadlineExceeded
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *scriptConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

func (c *scriptConn) SetReadDeadline(tm time.Time) error {
	if !tm.IsZero() {
		c.mu.Lock()
		select {
		case <-c.frozen:
		default:
			close(c.frozen)
		}
		c.mu.Unlock()
	}
	return nil
}

func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{Port: 1} }
func (c *scriptConn) SetDeadline(tm time.Time) error   { return c.SetReadDeadline(tm) }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// protoStream draws what a telnet peer sends: data (with the escape key
// ^E, command keys, CR, NUL and IAC IAC), commands, negotiations,
// subnegotiations (COM-PORT ones from fromServer's side, unterminated
// and oversize ones), and stray bytes.
func protoStream(t *rapid.T, fromServer bool) []byte {
	opts := []byte{telnet.OptBinary, telnet.OptEcho, telnet.OptSGA, telnet.OptComPort, 24, 31}
	codes := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	if fromServer {
		codes = []byte{100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 8, 9}
	}
	var out []byte
	if rapid.Bool().Draw(t, "comport") {
		// Agree to COM-PORT-OPTION first, so that its state has time
		// to matter.
		verb := telnet.WILL
		if fromServer {
			verb = telnet.DO
		}
		out = telnet.AppendNegotiation(out, verb, telnet.OptComPort)
	}
	for range rapid.IntRange(0, 30).Draw(t, "parts") {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0, 1:
			out = append(out, rapid.SliceOfN(rapid.SampledFrom([]byte("ab\r\n\x00\x05?z")), 0, 8).Draw(t, "data")...)
		case 2:
			out = append(out, telnet.IAC, rapid.SampledFrom([]byte{telnet.NOP, telnet.BRK, telnet.AYT, telnet.GA, telnet.SE, telnet.IAC}).Draw(t, "cmd"))
		case 3, 4:
			out = telnet.AppendNegotiation(out, rapid.SampledFrom([]byte{telnet.WILL, telnet.WONT, telnet.DO, telnet.DONT}).Draw(t, "verb"),
				rapid.SampledFrom(opts).Draw(t, "opt"))
		case 5, 9:
			m := telnet.ComPortMsg{Code: rapid.SampledFrom(codes).Draw(t, "code"),
				Value: uint32(rapid.IntRange(0, 19).Draw(t, "value")),
				Text:  []byte(rapid.StringMatching(`[a-z]{0,4}`).Draw(t, "text"))}
			if m.Command() == telnet.ComSetBaudRate {
				m.Value = uint32(rapid.SampledFrom([]int{0, 9600, 115200}).Draw(t, "baud"))
			}
			out = m.Append(out)
		case 6:
			out = telnet.AppendSubnegotiation(out, rapid.SampledFrom(opts).Draw(t, "sbopt"),
				rapid.SliceOfN(rapid.Byte(), 0, 24).Draw(t, "payload"))
		case 7:
			out = append(out, telnet.IAC, telnet.SB, rapid.SampledFrom(opts).Draw(t, "sbopt"))
			out = append(out, rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "payload")...)
		case 8:
			out = append(out, rapid.SliceOfN(rapid.Byte(), 1, 3).Draw(t, "bytes")...)
		}
	}
	return out
}

// sessions splits in at the drawn cuts, each session's part further cut
// into the chunks its reads return.
func sessions(t *rapid.T, in []byte) [][][]byte {
	cuts := rapid.SliceOfN(rapid.IntRange(0, len(in)), 0, 5).Draw(t, "cuts")
	slices.Sort(cuts)
	var out [][][]byte
	prev := 0
	for _, c := range append(cuts, len(in)) {
		part := in[prev:c]
		var chunks [][]byte
		for len(part) > 0 {
			n := rapid.IntRange(1, len(part)).Draw(t, "chunk")
			chunks = append(chunks, part[:n])
			part = part[n:]
		}
		out = append(out, chunks)
		prev = c
	}
	return out
}

// serverRun is what the chartee side of an accepted client did.
type serverRun struct {
	data, written []byte
	ctl           netControlRecord
	state         string
}

func (r serverRun) String() string {
	return fmt.Sprintf("data %q\nwritten %q\ncontrol %+v\nstate %s", r.data, r.written, r.ctl, r.state)
}

// stateWithoutClock is a client's state document without how long a
// BREAK-ON has been held, which depends on the clock.
func stateWithoutClock(t *rapid.T, doc []byte) string {
	cc, err := parseNetClientState(doc)
	if err != nil {
		t.Fatalf("state %s: %v", doc, err)
	}
	if cc.telnet != nil && cc.telnet.BreakHeld != nil {
		*cc.telnet.BreakHeld = 0
	}
	return fmt.Sprintf("%+v %+v %+v", cc.telnet, cc.escape, cc.protocol)
}

// runServer runs an accepted client's stream over the given sessions:
// the first is a fresh client, each later one resumes the state document
// the one before exported at its cut, as a new process would.
func runServer(t *rapid.T, src *NetSource, sess [][][]byte) serverRun {
	var run serverRun
	ctl := &propControl{netFakeControl: netFakeControl{netControlRecord: netControlRecord{line: chardev.LineSettings{Baud: 9600, DataBits: 8}}}}
	var doc []byte
	for i, chunks := range sess {
		last := i == len(sess)-1
		conn := newScriptConn(chunks, false, true)
		var stream chardev.Chardev
		var err error
		if doc == nil {
			stream, err = netWrapServer(conn, src.cfg.serve)
		} else {
			stream, _, err = src.resumeStream(conn, doc)
		}
		if err != nil {
			t.Fatalf("session %d: %v (state %s)", i, err, doc)
		}
		stream.(chardev.ControlAware).SetControl(ctl)
		buf := make([]byte, 7)
		for {
			n, err := stream.Read(buf)
			run.data = append(run.data, buf[:n]...)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("session %d: read: %v", i, err)
				}
				break
			}
		}
		// Every session ends in a cut; the last one's state is compared.
		if doc, err = netExportStream(stream, "peer", src.cfg.serve.protocol); err != nil {
			t.Fatalf("session %d: export: %v", i, err)
		}
		if last {
			run.state = stateWithoutClock(t, doc)
		}
		stream.Close()
		run.written = append(run.written, conn.written()...)
	}
	run.ctl = ctl.snapshot()
	return run
}

// propControl is a netFakeControl whose far-end modem lines change at
// every look, so that what a client was last told matters.
type propControl struct {
	netFakeControl
	looks int
}

func (c *propControl) ModemStatus() (chardev.ModemStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.looks++
	n := c.looks
	return chardev.ModemStatus{CTS: n&1 != 0, DSR: n&2 != 0, DCD: n&4 != 0, RI: n&8 != 0}, nil
}

// TestCarriedServerStreamProperty: what a telnet (with the escape key) or
// RFC 2217 client sends, cut anywhere with the connection's state
// exported to JSON and imported by a new connection at each cut, is read,
// answered and acted on exactly as by one connection never cut.
func TestCarriedServerStreamProperty(t *testing.T) {
	for _, proto := range []string{ProtocolTelnet, ProtocolRFC2217} {
		t.Run(proto, func(t *testing.T) {
			// RFC 2217 without an escape key, as by default: an escape
			// command's answer to a client that suspended our output is
			// written later, by a goroutine of its own, and is not carried
			// (escape.Conn.say).
			esc := map[string]string{ProtocolTelnet: "^E", ProtocolRFC2217: "none"}[proto]
			cfg, err := newNetSourceConfig("tcp-listen", &NetServeOptions{Protocol: proto, Control: true, Escape: esc, Banner: "hi\r\n"})
			if err != nil {
				t.Fatal(err)
			}
			src := &NetSource{cfg: cfg}
			rapid.Check(t, func(t *rapid.T) {
				in := protoStream(t, false)
				sess := sessions(t, in)
				whole := runServer(t, src, [][][]byte{slices.Concat(sess...)})
				carried := runServer(t, src, sess)
				if whole.String() != carried.String() {
					t.Fatalf("carried at %d cuts:\n%s\nwhole:\n%s", len(sess)-1, carried, whole)
				}
			})
		})
	}
}

// clientRun is what chartee's side of a connection to a port server did.
type clientRun struct {
	data, written []byte
	line, modem   string
	state         string
}

func (r clientRun) String() string {
	return fmt.Sprintf("data %q\nwritten %q\nline %s\nmodem %s\nstate %s", r.data, r.written, r.line, r.modem, r.state)
}

// runClient runs a port server's stream to a tcp-connect device over the
// given sessions, each later one resuming the state the one before
// exported at its cut.
func runClient(t *rapid.T, protocol string, sess [][][]byte) clientRun {
	var run clientRun
	o := &NetDialOptions{Protocol: protocol}
	var doc []byte
	for i, chunks := range sess {
		last := i == len(sess)-1
		conn := newScriptConn(chunks, false, false)
		var dev chardev.Chardev
		if doc == nil {
			tc := telnet.NewClient(conn, telnet.Config{RFC2217: protocol == ProtocolRFC2217})
			d := netAdoptConn(tc, "tcp-connect", "port", nil, o)
			dev = d
			if protocol == ProtocolRFC2217 {
				dev = &NetSerialConn{NetConn: d}
			}
		} else {
			var err error
			if dev, err = netResumeConn(conn, doc, "tcp-connect", "port", nil, o); err != nil {
				t.Fatalf("session %d: %v (state %s)", i, err, doc)
			}
		}
		// Every session ends in a cut, once everything before it was
		// read; the last one's is not carried.
		go func() {
			<-conn.idle
			chardev.Freeze(dev)
		}()
		buf := make([]byte, 7)
		for {
			n, err := dev.Read(buf)
			run.data = append(run.data, buf[:n]...)
			if err != nil {
				if !errors.Is(err, chardev.ErrFrozen) {
					t.Fatalf("session %d: read: %v", i, err)
				}
				break
			}
		}
		if last {
			var l chardev.LineSettings
			var lerr error
			if lc, ok := dev.(chardev.LineController); ok {
				l, lerr = lc.LineSettings()
			}
			m, merr := chardev.GetModemStatus(dev)
			run.line, run.modem = fmt.Sprint(l, lerr), fmt.Sprint(m, merr)
		}
		var st netConnState
		if sc, ok := dev.(*NetSerialConn); ok {
			st = sc.serialState()
		}
		var err error
		if _, doc, err = baseConn(dev).export(st); err != nil {
			t.Fatalf("session %d: export: %v", i, err)
		}
		if last {
			run.state = string(doc)
		}
		dev.Close()
		run.written = append(run.written, conn.written()...)
	}
	return run
}

// baseConn is the NetConn under a tcp-connect device.
func baseConn(dev chardev.Chardev) *NetConn {
	switch d := dev.(type) {
	case *NetSerialConn:
		return d.NetConn
	case *NetTelnetConn:
		return d.NetConn
	}
	return dev.(*NetConn)
}

// TestCarriedClientStreamProperty: what a port server sends to chartee's
// tcp-connect speaking telnet or rfc2217, cut anywhere with the
// connection's state exported to JSON and imported by a new connection
// at each cut, is read and answered exactly as by one connection never
// cut, and leaves the same line settings and modem lines known.
func TestCarriedClientStreamProperty(t *testing.T) {
	for _, proto := range []string{ProtocolTelnet, ProtocolRFC2217} {
		t.Run(proto, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				in := protoStream(t, true)
				sess := sessions(t, in)
				whole := runClient(t, proto, [][][]byte{slices.Concat(sess...)})
				carried := runClient(t, proto, sess)
				if whole.String() != carried.String() {
					t.Fatalf("carried at %d cuts:\n%s\nwhole:\n%s", len(sess)-1, carried, whole)
				}
			})
		})
	}
}

// FuzzNetClientState: any carried client's state document is refused
// with an error or puts a stream on a connection, for each protocol a
// listener may speak, without a panic.
func FuzzNetClientState(f *testing.F) {
	f.Add([]byte(`{"peer":"127.0.0.1:5","protocol":"telnet","telnet":{"greeted":true,"decoder":{"binary":true,"at":"iac"},"negotiation":{"options":[{"option":0,"local":"yes","remote":"yes"},{"option":1,"local":"yes"}]},"line_mask":0,"modem_mask":255,"last_modem":-1,"dtr":true,"rts":true,"told":{}},"escape":{"key":"^E","armed":true}}`))
	f.Add([]byte(`{"peer":"x","protocol":"rfc2217","telnet":{"greeted":true,"decoder":{"at":"sb","option":44,"payload":"Ag=="},"negotiation":{"options":[{"option":44,"remote":"yes"}]},"last_modem":176,"suspended":true}}`))
	f.Add([]byte(`{"peer":"x"}`))
	f.Add([]byte(`{"peer":"x","protocol":"raw","telnet":{}}`))
	f.Add([]byte(`{"peer":"x","protocol":"ssh"}`))
	srcs := map[string]*NetSource{}
	for _, o := range []NetServeOptions{{Protocol: ProtocolRaw}, {Protocol: ProtocolTelnet}, {Protocol: ProtocolTelnet, Escape: "^]"},
		{Protocol: ProtocolRFC2217, Control: true}, {Protocol: ProtocolRaw, Escape: "^E"}} {
		cfg, err := newNetSourceConfig("tcp-listen", &o)
		if err != nil {
			f.Fatal(err)
		}
		srcs[o.Protocol+o.Escape] = &NetSource{cfg: cfg}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if _, err := parseNetClientState(doc); err != nil {
			return
		}
		for _, src := range srcs {
			conn := newScriptConn([][]byte{[]byte("a\xff\xf0b\x05?")}, true, false)
			stream, _, err := src.resumeStream(conn, doc)
			if err != nil {
				continue
			}
			buf := make([]byte, 16)
			for {
				if _, err := stream.Read(buf); err != nil {
					break
				}
			}
			stream.Close()
		}
	})
}

// FuzzNetConnState: any carried connection's state document is refused
// with an error or resumes a connection, for each protocol, without a
// panic.
func FuzzNetConnState(f *testing.F) {
	f.Add([]byte(`{"protocol":"rfc2217","telnet":{"decoder":{"binary":true},"negotiation":{"options":[{"option":0,"local":"yes","remote":"yes"},{"option":44,"local":"yes"}]},"line":{"baud":19200,"data_bits":7,"parity":2,"stop_bits":0,"flow":0},"modem":{"dtr":true,"rts":false,"cts":false,"dsr":false,"dcd":false,"ri":false}},"line":{"baud":19200,"data_bits":7,"parity":2,"stop_bits":0,"flow":0},"dtr":true,"rts":false}`))
	f.Add([]byte(`{"protocol":"telnet","telnet":{"decoder":{"at":"negotiation","command":253}}}`))
	f.Add([]byte(`{"protocol":"raw"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"protocol":"telnet","telnet":{},"dtr":true}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if _, err := parseNetConnState(doc); err != nil {
			return
		}
		for _, proto := range []string{ProtocolRaw, ProtocolTelnet, ProtocolRFC2217} {
			conn := newScriptConn([][]byte{[]byte("a\xff\xfb\x01b")}, true, false)
			dev, err := netResumeConn(conn, doc, "tcp-connect", "x", nil, &NetDialOptions{Protocol: proto})
			if err != nil {
				continue
			}
			buf := make([]byte, 16)
			for {
				if _, err := dev.Read(buf); err != nil {
					break
				}
			}
			chardev.GetModemStatus(dev)
			dev.Close()
		}
	})
}

// TestCarryConfigChanged: a carried client whose backend now speaks
// another protocol is refused, naming both; one whose escape key changed
// goes on with the new key, its half-typed escape command dropped; a
// connection whose protocol changed is refused too.
func TestCarryConfigChanged(t *testing.T) {
	mk := func(o NetServeOptions) *NetSource {
		cfg, err := newNetSourceConfig("tcp-listen", &o)
		if err != nil {
			t.Fatal(err)
		}
		return &NetSource{cfg: cfg}
	}
	telnetSrc := mk(NetServeOptions{Protocol: ProtocolTelnet})
	stream, err := netWrapServer(newScriptConn(nil, true, false), telnetSrc.cfg.serve)
	if err != nil {
		t.Fatal(err)
	}
	stream.(*escape.Conn).Read(make([]byte, 1)) // greets, reads EOF
	doc, err := netExportStream(stream, "p", ProtocolTelnet)
	if err != nil {
		t.Fatal(err)
	}
	armed := bytes.Replace(doc, []byte(`"key":"^E"`), []byte(`"key":"^E","armed":true`), 1)
	if _, _, err := mk(NetServeOptions{Protocol: ProtocolRaw}).resumeStream(newScriptConn(nil, true, false), armed); err == nil ||
		!strings.Contains(err.Error(), "speaks telnet, the backend now raw") {
		t.Errorf("protocol changed: %v", err)
	}
	got, _, err := mk(NetServeOptions{Protocol: ProtocolTelnet, Escape: "^]"}).resumeStream(newScriptConn([][]byte{[]byte("?")}, true, false), armed)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if n, _ := got.Read(buf); string(buf[:n]) != "?" {
		t.Errorf("with a new escape key the old one's half command is dropped: read %q, want the key as data", buf[:n])
	}
	if k := got.(chardev.Escaper).EscapeKey(); k != "^]" {
		t.Errorf("escape key %q", k)
	}
	conn := newScriptConn(nil, true, false)
	if _, err := netResumeConn(conn, []byte(`{"protocol":"raw"}`), "tcp-connect", "x", nil, &NetDialOptions{Protocol: ProtocolRFC2217}); err == nil ||
		!strings.Contains(err.Error(), "speaks raw, the config now rfc2217") {
		t.Errorf("connection protocol changed: %v", err)
	}
}
