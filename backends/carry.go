package backends

// This file is how the network types freeze at a cut and are carried to
// the process a chartee upgrade hands over to (chardev.Freezer, Carrier,
// Adopter, Factory.Inherit): a read deadline in the past stops a Read
// without losing a byte (what the peer sends waits in the kernel), and
// the socket's file descriptor is duplicated into the new process, so the
// peer never sees a reconnection.
//
// Carried, the peer seeing nothing (no reconnection, no new negotiation,
// no greeting or banner again, no lost or doubled byte):
//   - tcp-listen and unix-listen listeners (clients connecting during the
//     upgrade wait in the listen backlog) and their clients speaking raw,
//     telnet or rfc2217, with or without an escape key. A telnet or RFC
//     2217 client's state goes with it (package telnet's ServerState): the
//     options both sides agreed (RFC 1143 state, requests still awaiting
//     an answer included), the decoder's place in the byte stream (a cut
//     inside an IAC sequence, a subnegotiation or an NVT CR NUL decodes on
//     exactly), and the COM-PORT-OPTION state (the client's signature,
//     line and modem state masks, the modem state and line settings it
//     was last told, a line change not yet notified, FLOWCONTROL-SUSPEND,
//     a BREAK-ON in progress, DTR/RTS). The escape machine's state goes
//     too: an escape key typed just before the cut still waits for its
//     command key.
//   - tcp-connect and unix-connect connections speaking raw, telnet or
//     rfc2217 (chartee as the client of ser2net, say), as frontends or
//     legs: the agreed options and decoder state as above, and for rfc2217
//     the line settings, modem lines and signature the server reported
//     and those chartee applied, so the new process neither renegotiates
//     nor applies them again (the engine's replay of the line state after
//     the handover finds them in force and sends nothing), and on a later
//     reconnection replays them as before.
//   - file (a capture, as a leg): the open capture file (carry_file.go):
//     appending goes on at its end with the encoder's state (no second
//     asciicast header, no extra line break, a UTF-8 character cut at the
//     cut completed) and the size rotation counts.
//   - pty (frontend or leg): the master and chartee's slave descriptor
//     (carry_pty.go); the link stays, and a program on the slave (picocom,
//     a cat) sees no hangup, no gap and no new device.
//   - serial (frontend): the port's descriptor (carry_serial.go), never
//     closed and reopened (which could drop DTR through HUPCL and lose
//     input); the termios and line settings in force continue, and what
//     the device sends during the pause waits in the tty's input queue.
//
// A carried device is only continued by a new config that describes the
// same device: a capture to the same path in the same format and
// direction (rotation options may change), a pty with the same link, a
// serial port at the same path opened with the same line settings. A new
// config that changes one of those fails the upgrade, which rolls back
// and says so: upgrade with the old config, then reload.
//   - ringbuf: its kept bytes in a memfd and its next offset
//     (carry_ringbuf.go): the new process serves the same offsets, so a
//     scrollback download or a follower resumes where it was (a smaller
//     size in the new config keeps the newest bytes).
//   - null: nothing to carry; the new process's null is the same.
//
// Refused, naming the type and why (chardev.Factory.NotCarried; the
// upgrade is refused and nothing changes): exec (its child process cannot
// be re-parented), stdio (chartee's own stdin and stdout are not handed
// over), demo (its simulated console lives in the old process's memory),
// udp (not carried yet).
//
// Not carried: TLS sessions (their keys live in this process). A TLS
// listener is carried, its clients are not: Carry says chardev.ErrNotCarried
// and the old process closes them after the commit (with every byte up to
// the cut), and they reconnect to the carried listener. A dialed TLS
// connection (tcp-connect with tls) fails the freeze, naming itself: the
// upgrade rolls back, nothing changed. A stalled write (the peer stopped
// reading, or an RFC 2217 peer sent FLOWCONTROL-SUSPEND) is cut short at
// the cut (chardev.WriteFreezer: a write deadline in the past) on raw and
// telnet streams, with or without an escape key, returning what went out;
// the engine carries the rest, and what the telnet layer owes mid-escape
// (the second byte of a doubled IAC or of an NVT CR NUL, the rest of a
// protocol message) goes in its state and is sent first. TLS writes are
// never cut (a cut breaks TLS). nats (nats.go,
// nats_carry.go) carries no file: its session and offsets continue over a
// new connection. Telnet NAWS and TERMINAL-TYPE
// are refused by chartee's telnet, so there is no window size or terminal
// type to carry. A client whose protocol or escape key the new config
// changed cannot continue as it was: a changed protocol closes it, a
// changed escape key drops a half-typed escape command.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"chartee/backends/escape"
	"chartee/backends/telnet"
	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Freezer = (*NetSource)(nil)
	_ chardev.Carrier = (*NetSource)(nil)
	_ chardev.Adopter = (*NetSource)(nil)
	_ chardev.Freezer = (*NetClient)(nil)
	_ chardev.Carrier = (*NetClient)(nil)
	_ chardev.Freezer = (*NetConn)(nil)

	_ chardev.WriteFreezer = (*NetClient)(nil)
	_ chardev.WriteFreezer = (*NetConn)(nil)
	_ chardev.Carrier      = (*NetConn)(nil)
	_ chardev.Carrier      = (*NetSerialConn)(nil)
	_ chardev.Freezer      = (*telnet.ClientConn)(nil)
	_ chardev.WriteFreezer = (*telnet.ServerConn)(nil)
	_ chardev.WriteFreezer = (*telnet.ClientConn)(nil)
	_ chardev.WriteFreezer = (*escape.Conn)(nil)
)

// netPast is the deadline that freezes: any time in the past.
var netPast = time.Unix(1, 0)

// netFrozen turns the error of a read stopped by Freeze into
// chardev.ErrFrozen. Nothing else sets a read deadline on a carried
// socket (a TLS handshake does, but TLS is never carried).
func netFrozen(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return chardev.ErrFrozen
	}
	return err
}

type deadliner interface{ SetDeadline(time.Time) error }

// Freeze makes Accept return chardev.ErrFrozen until Thaw; clients that
// connect meanwhile wait in the listen backlog.
func (s *NetSource) Freeze() error {
	d, ok := s.ln.(deadliner)
	if !ok {
		return fmt.Errorf("%s %s: freeze: %w", s.cfg.typ, s.addr, chardev.ErrUnsupported)
	}
	return d.SetDeadline(netPast)
}

// Thaw undoes Freeze.
func (s *NetSource) Thaw() error {
	if d, ok := s.ln.(deadliner); ok {
		return d.SetDeadline(time.Time{})
	}
	return nil
}

// netSourceState is a carried listener's state document.
type netSourceState struct {
	NextID uint64 `json:"next_id"`
}

// Carry hands over the listening socket. A TLS listener is carried too
// (the new process loads its certificate from the spec); its sessions are
// not (see NetClient.Carry).
func (s *NetSource) Carry() (chardev.Carried, error) {
	f, err := netFile(s.ln)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s %s: %w", s.cfg.typ, s.addr, err)
	}
	s.mu.Lock()
	st, _ := json.Marshal(netSourceState{NextID: s.nextID})
	s.mu.Unlock()
	return chardev.Carried{Files: []*os.File{f}, State: st}, nil
}

// netInheritSource rebuilds a carried listener with the spec's options.
func netInheritSource(c chardev.Carried, cfg netSourceConfig) (*NetSource, error) {
	if len(c.Files) != 1 {
		return nil, fmt.Errorf("%s: inherit: want 1 file, got %d", cfg.typ, len(c.Files))
	}
	var st netSourceState
	if err := json.Unmarshal(c.State, &st); err != nil {
		return nil, fmt.Errorf("%s: inherit: %w", cfg.typ, err)
	}
	ln, err := net.FileListener(c.Files[0])
	c.Files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("%s: inherit: %w", cfg.typ, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// The socket file is the old process's until it exits; the
		// new one must not unlink it on a failed start either.
		ul.SetUnlinkOnClose(false)
	}
	s := newNetSource(ln, cfg)
	s.nextID = st.NextID
	return s, nil
}

// netClientState is a carried client's state document.
type netClientState struct {
	Peer string `json:"peer"`
	// Protocol is what the client speaks; empty is raw.
	Protocol string `json:"protocol,omitempty"`
	// Telnet is a telnet or rfc2217 client's telnet.ServerState.
	Telnet json.RawMessage `json:"telnet,omitempty"`
	// Escape is the escape machine's escape.State, for a client with an
	// escape key.
	Escape json.RawMessage `json:"escape,omitempty"`
}

// netClientCarry is a netClientState read back and checked.
type netClientCarry struct {
	peer, protocol string
	telnet         *telnet.ServerState
	escape         *escape.State
}

// parseNetClientState reads a carried client's state document strictly.
func parseNetClientState(doc []byte) (netClientCarry, error) {
	var st netClientState
	if err := netStrictJSON(doc, &st); err != nil {
		return netClientCarry{}, err
	}
	cc := netClientCarry{peer: st.Peer, protocol: netProtocolName(st.Protocol)}
	if err := netCheckProtocol(st.Protocol); err != nil {
		return cc, err
	}
	if (cc.protocol == ProtocolRaw) != (st.Telnet == nil) {
		return cc, fmt.Errorf("protocol %s with%s a telnet state", cc.protocol, map[bool]string{true: "", false: "out"}[st.Telnet != nil])
	}
	if st.Telnet != nil {
		ts, err := telnet.ParseServerState(st.Telnet)
		if err != nil {
			return cc, err
		}
		cc.telnet = &ts
	}
	if st.Escape != nil {
		es, err := escape.ParseState(st.Escape)
		if err != nil {
			return cc, err
		}
		cc.escape = &es
	}
	return cc, nil
}

// netStrictJSON decodes exactly one JSON value with no unknown fields.
func netStrictJSON(doc []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if dec.More() {
		return errors.New("state: trailing data after the document")
	}
	return nil
}

// Adopt rebuilds a client the old process's source had accepted, its
// protocol and escape state continued.
func (s *NetSource) Adopt(c chardev.Carried) (chardev.Chardev, error) {
	if len(c.Files) != 1 {
		return nil, fmt.Errorf("%s %s: adopt: want 1 file, got %d", s.cfg.typ, s.addr, len(c.Files))
	}
	conn, err := net.FileConn(c.Files[0])
	c.Files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s: adopt: %w", s.cfg.typ, s.addr, err)
	}
	stream, peer, err := s.resumeStream(conn, c.State)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s %s: adopt: %w", s.cfg.typ, s.addr, err)
	}
	s.mu.Lock()
	s.nextID++
	cl := newNetClient(s, conn, peer)
	s.clients = append(s.clients, cl)
	s.mu.Unlock()
	// The client had its banner and protocol start in the old process.
	cl.startOnce.Do(func() { cl.install(stream) })
	if s.cfg.serve.notices {
		return netNoticeClient{cl}, nil
	}
	return cl, nil
}

// resumeStream puts the carried protocol and escape state back on conn.
func (s *NetSource) resumeStream(conn net.Conn, doc []byte) (chardev.Chardev, string, error) {
	if s.cfg.tls != nil || s.cfg.wrapConn != nil {
		return nil, "", errors.New("this listener's clients cannot be carried")
	}
	cc, err := parseNetClientState(doc)
	if err != nil {
		return nil, "", err
	}
	serve := s.cfg.serve
	if want := netProtocolName(serve.protocol); cc.protocol != want {
		return nil, "", fmt.Errorf("client %s speaks %s, the backend now %s: closed", cc.peer, cc.protocol, want)
	}
	var stream chardev.Chardev = conn
	if cc.telnet != nil {
		if stream, err = telnet.ResumeServer(conn, netTelnetServerConfig(serve), *cc.telnet); err != nil {
			return nil, "", err
		}
	}
	if serve.escape != 0 {
		var esc *escape.Conn
		if cc.escape != nil {
			esc, err = escape.Resume(stream, serve.escape, *cc.escape)
		}
		if esc == nil || err != nil {
			// No escape key before, or another one: a half-typed
			// escape command for the old key is dropped.
			esc = escape.Wrap(stream, serve.escape).(*escape.Conn)
		}
		stream = esc
	}
	return stream, cc.peer, nil
}

// Freeze makes Read return chardev.ErrFrozen until Thaw.
// A reader waiting without a goroutine (WaitReadable) is woken to read,
// after the deadline is set, so that it parks like the others.
func (c *NetClient) Freeze() error {
	c.mu.Lock()
	c.rfrozen = true
	c.mu.Unlock()
	err := c.conn.SetReadDeadline(netPast)
	c.wakeReader()
	return err
}

// Thaw undoes Freeze.
func (c *NetClient) Thaw() error {
	c.mu.Lock()
	c.rfrozen = false
	c.mu.Unlock()
	return c.conn.SetReadDeadline(time.Time{})
}

// FreezeWrite cuts a write in progress short (a write deadline in the
// past): it returns how many bytes went out. Raw, or through telnet and
// an escape key: the telnet layer keeps what it owes the peer mid-escape
// (telnet.ServerConn.FreezeWrite) for its next write, here or in the
// process the client is carried to. Through TLS a write cut short leaves
// the peer with part of a record, so that says ErrUnsupported (the
// upgrade waits for the write, or closes the client).
func (c *NetClient) FreezeWrite() error {
	if !c.ready.Load() || c.src.cfg.tls != nil || c.src.cfg.wrapConn != nil {
		return fmt.Errorf("%s: freeze writes: %w", c.Describe(), chardev.ErrUnsupported)
	}
	c.mu.Lock()
	stream := c.stream
	c.mu.Unlock()
	c.wfrozen.Store(true)
	if err := chardev.FreezeWrite(stream); !chardev.IsUnsupported(err) {
		return err // the telnet layer set the deadline
	}
	return c.conn.SetWriteDeadline(netPast)
}

// ThawWrite undoes FreezeWrite.
func (c *NetClient) ThawWrite() error {
	if !c.wfrozen.Swap(false) {
		return nil
	}
	c.mu.Lock()
	stream := c.stream
	c.mu.Unlock()
	chardev.ThawWrite(stream)
	return c.conn.SetWriteDeadline(time.Time{})
}

// Carry hands over the client's connection with its protocol and escape
// state.
func (c *NetClient) Carry() (chardev.Carried, error) {
	switch {
	case c.src.cfg.tls != nil:
		// Closed with a notice after the handover; the client
		// reconnects to the carried listener.
		return chardev.Carried{}, fmt.Errorf("%s: TLS session: %w", c.Describe(), chardev.ErrNotCarried)
	case c.src.cfg.wrapConn != nil:
		return chardev.Carried{}, fmt.Errorf("%s: cannot be carried", c.Describe())
	case !c.ready.Load():
		return chardev.Carried{}, fmt.Errorf("%s: not started", c.Describe())
	}
	c.mu.Lock()
	stream := c.stream
	c.mu.Unlock()
	doc, err := netExportStream(stream, c.peer, c.src.cfg.serve.protocol)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s: %w", c.Describe(), err)
	}
	f, err := netFile(c.conn)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s: %w", c.Describe(), err)
	}
	return chardev.Carried{Files: []*os.File{f}, State: doc}, nil
}

// netExportStream is the state document of an accepted client's stream
// (NetSource.resumeStream reads it back).
func netExportStream(stream chardev.Chardev, peer, protocol string) ([]byte, error) {
	st := netClientState{Peer: peer, Protocol: protocol}
	if esc, ok := stream.(*escape.Conn); ok {
		es, err := esc.Export()
		if err != nil {
			return nil, err
		}
		st.Escape, _ = json.Marshal(es)
		stream = esc.Unwrap()
	}
	if sc, ok := stream.(*telnet.ServerConn); ok {
		ts, err := sc.Export()
		if err != nil {
			return nil, err
		}
		st.Telnet, _ = json.Marshal(ts)
	}
	return json.Marshal(st)
}

// Freeze makes Read return chardev.ErrFrozen until Thaw: for raw, a read
// deadline in the past; for telnet and rfc2217, the protocol's own
// reader stops after handing over what it decoded before the cut.
func (d *NetConn) Freeze() error {
	switch c := d.connected().(type) {
	case chardev.Freezer:
		return c.Freeze()
	case net.Conn:
		return c.SetReadDeadline(netPast)
	case nil:
		return fmt.Errorf("%s %s: freeze: not connected: %w", d.typ, d.addr, chardev.ErrUnsupported)
	}
	return fmt.Errorf("%s %s: freeze: %w", d.typ, d.addr, chardev.ErrUnsupported)
}

// Thaw undoes Freeze.
func (d *NetConn) Thaw() error {
	switch c := d.connected().(type) {
	case chardev.Freezer:
		return c.Thaw()
	case net.Conn:
		return c.SetReadDeadline(time.Time{})
	}
	return nil
}

// netConnState is a carried connection's state document.
type netConnState struct {
	// Protocol is what the connection speaks; empty is raw.
	Protocol string `json:"protocol,omitempty"`
	// Telnet is a telnet or rfc2217 connection's telnet.ClientState.
	Telnet json.RawMessage `json:"telnet,omitempty"`
	// Line, DTR and RTS are what chartee last set on an rfc2217 port
	// (replayed on a reconnection); nil when never set.
	Line *chardev.LineSettings `json:"line,omitempty"`
	DTR  *bool                 `json:"dtr,omitempty"`
	RTS  *bool                 `json:"rts,omitempty"`
}

// netConnCarry is a netConnState read back and checked.
type netConnCarry struct {
	protocol string
	telnet   *telnet.ClientState
	line     *chardev.LineSettings
	dtr, rts *bool
}

// parseNetConnState reads a carried connection's state document strictly.
func parseNetConnState(doc []byte) (netConnCarry, error) {
	var st netConnState
	if err := netStrictJSON(doc, &st); err != nil {
		return netConnCarry{}, err
	}
	cc := netConnCarry{protocol: netProtocolName(st.Protocol), line: st.Line, dtr: st.DTR, rts: st.RTS}
	if err := netCheckProtocol(st.Protocol); err != nil {
		return cc, err
	}
	if (cc.protocol == ProtocolRaw) != (st.Telnet == nil) {
		return cc, fmt.Errorf("protocol %s with%s a telnet state", cc.protocol, map[bool]string{true: "", false: "out"}[st.Telnet != nil])
	}
	if cc.protocol != ProtocolRFC2217 && (st.Line != nil || st.DTR != nil || st.RTS != nil) {
		return cc, fmt.Errorf("protocol %s with serial line state", cc.protocol)
	}
	if st.Line != nil {
		if err := st.Line.Validate(); err != nil {
			return cc, fmt.Errorf("line: %w", err)
		}
	}
	if st.Telnet != nil {
		ts, err := telnet.ParseClientState(st.Telnet)
		if err != nil {
			return cc, err
		}
		cc.telnet = &ts
	}
	return cc, nil
}

// FreezeWrite cuts a write in progress short, raw or through telnet
// (see NetClient.FreezeWrite); the cut is not taken for a lost
// connection. Not through TLS, nor while reconnecting.
func (d *NetConn) FreezeWrite() error {
	cur := d.connected()
	c, _ := cur.(net.Conn)
	tc, isTelnet := cur.(*telnet.ClientConn)
	if isTelnet {
		c = tc.NetConn()
	}
	if c == nil {
		return fmt.Errorf("%s %s: freeze writes: not connected: %w", d.typ, d.addr, chardev.ErrUnsupported)
	}
	if _, ok := c.(*tls.Conn); ok {
		return fmt.Errorf("%s %s: freeze writes: TLS: %w", d.typ, d.addr, chardev.ErrUnsupported)
	}
	d.wfrozen.Store(true)
	if isTelnet {
		return tc.FreezeWrite()
	}
	return c.SetWriteDeadline(netPast)
}

// ThawWrite undoes FreezeWrite.
func (d *NetConn) ThawWrite() error {
	if !d.wfrozen.Swap(false) {
		return nil
	}
	switch c := d.connected().(type) {
	case *telnet.ClientConn:
		return c.ThawWrite()
	case net.Conn:
		return c.SetWriteDeadline(time.Time{})
	}
	return nil
}

// Carry hands over the connection, with its protocol state.
func (d *NetConn) Carry() (chardev.Carried, error) { return d.carry(netConnState{}) }

func (d *NetConn) carry(st netConnState) (chardev.Carried, error) {
	conn, doc, err := d.export(st)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s %s: %w", d.typ, d.addr, err)
	}
	f, err := netFile(conn)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s %s: %w", d.typ, d.addr, err)
	}
	return chardev.Carried{Files: []*os.File{f}, State: doc}, nil
}

// export returns the socket under the connection and its state document
// (netResumeConn reads it back), st adding what NetSerialConn set.
func (d *NetConn) export(st netConnState) (net.Conn, []byte, error) {
	var conn net.Conn
	st.Protocol = d.protocol
	switch c := d.connected().(type) {
	case *telnet.ClientConn:
		ts, err := c.Export()
		if err != nil {
			return nil, nil, err
		}
		st.Telnet, _ = json.Marshal(ts)
		conn = c.NetConn()
	case net.Conn:
		conn = c
	default:
		return nil, nil, errors.New("only a connected stream can be carried")
	}
	if _, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return nil, nil, errors.New("TLS sessions cannot be carried")
	}
	doc, err := json.Marshal(st)
	return conn, doc, err
}

// serialState is what a NetSerialConn adds to its state document.
func (d *NetSerialConn) serialState() netConnState {
	d.smu.Lock()
	defer d.smu.Unlock()
	return netConnState{Line: d.line, DTR: d.dtr, RTS: d.rts}
}

// Carry hands over the connection with what chartee set on the port.
func (d *NetSerialConn) Carry() (chardev.Carried, error) { return d.carry(d.serialState()) }

// netInheritConn rebuilds a carried connection as the device
// netOpenConn would have made, redialing with o's options once it is
// lost.
func netInheritConn(c chardev.Carried, typ, addr string, dial func(context.Context) (net.Conn, error), o *NetDialOptions) (chardev.Chardev, error) {
	if o.TLS != nil {
		return nil, fmt.Errorf("%s %s: inherit: TLS connections are not carried", typ, addr)
	}
	if len(c.Files) != 1 {
		return nil, fmt.Errorf("%s %s: inherit: want 1 file, got %d", typ, addr, len(c.Files))
	}
	conn, err := net.FileConn(c.Files[0])
	c.Files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s: inherit: %w", typ, addr, err)
	}
	dev, err := netResumeConn(conn, c.State, typ, addr, dial, o)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s %s: inherit: %w", typ, addr, err)
	}
	return dev, nil
}

func netResumeConn(conn net.Conn, doc []byte, typ, addr string, dial func(context.Context) (net.Conn, error), o *NetDialOptions) (chardev.Chardev, error) {
	cc, err := parseNetConnState(doc)
	if err != nil {
		return nil, err
	}
	if want := netProtocolName(o.Protocol); cc.protocol != want {
		return nil, fmt.Errorf("the connection speaks %s, the config now %s", cc.protocol, want)
	}
	if cc.telnet == nil {
		return netAdoptConn(conn, typ, addr, dial, o), nil
	}
	tc, err := telnet.ResumeClient(conn, telnet.Config{RFC2217: cc.protocol == ProtocolRFC2217}, *cc.telnet)
	if err != nil {
		return nil, err
	}
	d := netAdoptConn(tc, typ, addr, dial, o)
	if cc.protocol == ProtocolTelnet {
		return &NetTelnetConn{NetConn: d}, nil
	}
	sc := &NetSerialConn{NetConn: d, line: cc.line, dtr: cc.dtr, rts: cc.rts}
	sc.settle(tc)
	d.onConnect = sc.replay
	return sc, nil
}

// netFile duplicates the socket under v.
func netFile(v any) (*os.File, error) {
	f, ok := v.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("%T has no file descriptor to carry", v)
	}
	return f.File()
}

// netAdoptConn makes a NetConn of a connection already established.
func netAdoptConn(conn chardev.Chardev, typ, addr string, dial func(context.Context) (net.Conn, error), o *NetDialOptions) *NetConn {
	d := &NetConn{typ: typ, addr: addr, protocol: o.Protocol, dial: dial}
	if o.Reconnect != nil {
		d.backoff = o.Reconnect.backoff()
	}
	d.cond = sync.NewCond(&d.mu)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.cur, d.gen = conn, 1
	return d
}
