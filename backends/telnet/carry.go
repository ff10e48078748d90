package telnet

// This file hands a connection over to another process (a chartee
// upgrade): Export, on a connection stopped at a cut, returns everything
// the protocol has agreed with the peer and everything half-read, and
// ResumeServer / ResumeClient rebuild the connection from it over the same
// socket, so the peer sees no new negotiation, no repeated greeting, no
// lost or doubled byte. The documents are JSON; Parse*State read them
// strictly and check them, so a bad one is an error, never a panic.
//
// Not kept, because the connection never keeps them: NAWS window sizes and
// terminal types (both refused: a serial line has no window), and notices
// (written at once, never queued here).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
	"unicode/utf8"

	"chartee/chardev"
)

// ToldState is the line state an RFC 2217 client was last told, as wire
// values (zero: never told).
type ToldState struct {
	Baud     uint32 `json:"baud,omitempty"`
	DataSize byte   `json:"data_size,omitempty"`
	Parity   byte   `json:"parity,omitempty"`
	StopSize byte   `json:"stop_size,omitempty"`
	Flow     byte   `json:"flow,omitempty"`
}

// ServerState is a ServerConn's state at a cut.
type ServerState struct {
	// Greeted: the option requests and banner were sent.
	Greeted     bool            `json:"greeted"`
	Decoder     DecoderState    `json:"decoder"`
	Negotiation NegotiatorState `json:"negotiation"`
	// The RFC 2217 COM-PORT-OPTION state.
	Suspended bool `json:"suspended,omitempty"` // FLOWCONTROL-SUSPEND in force
	LineMask  byte `json:"line_mask"`
	ModemMask byte `json:"modem_mask"`
	// LastModem is the last NOTIFY-MODEMSTATE sent (lines only), -1 for
	// none.
	LastModem int `json:"last_modem"`
	// BreakHeld is how long BREAK-ON had been in force at the cut; nil
	// when it is off.
	BreakHeld *time.Duration `json:"break_held,omitempty"`
	DTR       bool           `json:"dtr"`
	RTS       bool           `json:"rts"`
	Told      ToldState      `json:"told"`
	// Pending is a line change not yet notified.
	Pending       *chardev.LineSettings `json:"pending,omitempty"`
	PeerSignature Text                  `json:"peer_signature,omitempty"`
	DroppedSubneg uint64                `json:"dropped_subneg,omitempty"`
	BadComPort    uint64                `json:"bad_com_port,omitempty"`
	// OwedWire is what a write cut short at the cut still owes the
	// client to complete what it began (half an escape, the rest of a
	// protocol message); sent before anything else.
	OwedWire []byte `json:"owed_wire,omitempty"`
}

// maxOwedWire bounds OwedWire: the tail of one escape or of one protocol
// message, plus the messages written meanwhile.
const maxOwedWire = 64 << 10

// Export returns the connection's state. The connection must be stopped
// at a cut: its last Read returned the conn's deadline error (it is
// frozen) and left nothing decoded and not yet returned.
func (s *ServerConn) Export() (ServerState, error) {
	if n := len(s.data) + len(s.rest); n > 0 || s.held != nil {
		return ServerState{}, fmt.Errorf("telnet: export: not stopped at a cut (%d bytes read and not yet returned)", n)
	}
	owed, ok := s.w.owedBytes()
	if !ok {
		return ServerState{}, fmt.Errorf("telnet: export: a write is in progress")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applying != nil {
		return ServerState{}, fmt.Errorf("telnet: export: a line change is being applied")
	}
	st := ServerState{
		Greeted:     s.greeted.Load(),
		Decoder:     s.dec.State(),
		Negotiation: s.neg.State(),
		Suspended:   s.suspended,
		LineMask:    s.lineMask, ModemMask: s.modemMask, LastModem: s.lastModem,
		DTR: s.dtr, RTS: s.rts,
		Told: ToldState{Baud: s.told.baud, DataSize: s.told.dataSize, Parity: s.told.parity,
			StopSize: s.told.stop, Flow: s.told.flow},
		PeerSignature: Text(s.peerSig),
		DroppedSubneg: s.droppedSubneg.Load(),
		BadComPort:    s.badComPort.Load(),
		OwedWire:      owed,
	}
	if s.breakOn {
		held := time.Since(s.breakFrom)
		st.BreakHeld = &held
	}
	if s.pending != nil {
		p := *s.pending
		st.Pending = &p
	}
	return st, nil
}

// ParseServerState reads a ServerState document strictly.
func ParseServerState(doc []byte) (ServerState, error) {
	var st ServerState
	if err := strictJSON(doc, &st); err != nil {
		return ServerState{}, err
	}
	switch {
	case st.LastModem < -1 || st.LastModem > 0xff:
		return ServerState{}, stateErr("last modem state %d: want -1 to 255", st.LastModem)
	case st.BreakHeld != nil && *st.BreakHeld < 0:
		return ServerState{}, stateErr("break held %v: negative", *st.BreakHeld)
	case len(st.PeerSignature) > DefaultMaxSubneg:
		return ServerState{}, stateErr("peer signature of %d bytes", len(st.PeerSignature))
	case len(st.OwedWire) > maxOwedWire:
		return ServerState{}, stateErr("%d bytes owed on the wire, over %d", len(st.OwedWire), maxOwedWire)
	}
	if st.Pending != nil {
		if err := st.Pending.Validate(); err != nil {
			return ServerState{}, stateErr("pending line change: %v", err)
		}
	}
	return st, nil
}

// ResumeServer rebuilds, over conn, a server connection exported by
// Export with the same cfg. It does not greet again when the exported
// one had. Its Read and Write go on where the exported one stopped.
func ResumeServer(conn net.Conn, cfg Config, st ServerState) (*ServerConn, error) {
	s := NewServer(conn, cfg)
	if err := s.resume(st); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *ServerConn) resume(st ServerState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.dec.SetState(st.Decoder); err != nil {
		return err
	}
	if err := s.neg.SetState(st.Negotiation); err != nil {
		return err
	}
	if st.Decoder.Binary != s.neg.Enabled(Remote, OptBinary) {
		return stateErr("decoder binary mode %v disagrees with the negotiated one", st.Decoder.Binary)
	}
	if st.Greeted {
		s.greeted.Store(true)
		s.greetOnce.Do(func() {})
	}
	s.suspended = st.Suspended
	s.lineMask, s.modemMask, s.lastModem = st.LineMask, st.ModemMask, st.LastModem
	if st.BreakHeld != nil {
		s.breakOn, s.breakFrom = true, time.Now().Add(-*st.BreakHeld)
	}
	s.dtr, s.rts = st.DTR, st.RTS
	s.told = toldLine{baud: st.Told.Baud, dataSize: st.Told.DataSize, parity: st.Told.Parity,
		stop: st.Told.StopSize, flow: st.Told.Flow}
	s.peerSig = string(st.PeerSignature)
	s.droppedSubneg.Store(st.DroppedSubneg)
	s.badComPort.Store(st.BadComPort)
	s.w.owed = append([]byte(nil), st.OwedWire...)
	if st.Pending != nil && s.cfg.RFC2217 {
		p := *st.Pending
		s.pending = &p
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return nil
}

// ClientState is a ClientConn's state at a cut.
type ClientState struct {
	Decoder     DecoderState    `json:"decoder"`
	Negotiation NegotiatorState `json:"negotiation"`
	// Suspended: the server sent FLOWCONTROL-SUSPEND.
	Suspended bool `json:"suspended,omitempty"`
	// Line and Modem are what the server last said is in force.
	Line            chardev.LineSettings `json:"line"`
	Modem           chardev.ModemStatus  `json:"modem"`
	ModemSeen       bool                 `json:"modem_seen,omitempty"`
	ServerSignature Text                 `json:"server_signature,omitempty"`
	// OwedWire is what a write cut short at the cut still owes the
	// server (see ServerState.OwedWire).
	OwedWire []byte `json:"owed_wire,omitempty"`
}

// ParseClientState reads a ClientState document strictly.
func ParseClientState(doc []byte) (ClientState, error) {
	var st ClientState
	if err := strictJSON(doc, &st); err != nil {
		return ClientState{}, err
	}
	if err := st.Line.Validate(); err != nil {
		return ClientState{}, stateErr("line: %v", err)
	}
	if len(st.ServerSignature) > DefaultMaxSubneg {
		return ClientState{}, stateErr("server signature of %d bytes", len(st.ServerSignature))
	}
	if len(st.OwedWire) > maxOwedWire {
		return ClientState{}, stateErr("%d bytes owed on the wire, over %d", len(st.OwedWire), maxOwedWire)
	}
	return st, nil
}

// strictJSON decodes exactly one JSON value with no unknown fields.
func strictJSON(doc []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return stateErr("%v", err)
	}
	if dec.More() {
		return stateErr("trailing data after the document")
	}
	return nil
}

// Freeze stops the connection at a cut: the reader goroutine stops
// reading the socket, Read returns what was decoded before and then the
// socket's deadline error (os.ErrDeadlineExceeded), and what the server
// sends meanwhile waits in the kernel. Thaw undoes it.
func (c *ClientConn) Freeze() error {
	c.mu.Lock()
	if c.frozen {
		c.mu.Unlock()
		return nil
	}
	c.frozen, c.thaw = true, make(chan struct{})
	c.mu.Unlock()
	return c.conn.SetReadDeadline(time.Unix(1, 0))
}

// Thaw undoes Freeze.
func (c *ClientConn) Thaw() error {
	err := c.conn.SetReadDeadline(time.Time{})
	c.mu.Lock()
	if c.frozen {
		c.frozen, c.parked = false, false
		close(c.thaw)
	}
	c.mu.Unlock()
	return err
}

// NetConn is the connection under the protocol.
func (c *ClientConn) NetConn() net.Conn { return c.conn }

// Export returns the connection's state. It must be frozen, and Read must
// have returned everything decoded before the cut.
func (c *ClientConn) Export() (ClientState, error) {
	owed, ok := c.w.owedBytes()
	if !ok {
		return ClientState{}, fmt.Errorf("telnet: export: a write is in progress")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.parked {
		return ClientState{}, fmt.Errorf("telnet: export: not stopped at a cut")
	}
	if n := len(c.leftover) + len(c.dataCh); n > 0 {
		return ClientState{}, fmt.Errorf("telnet: export: decoded data not yet read")
	}
	return ClientState{
		Decoder:         c.dec.State(),
		Negotiation:     c.neg.State(),
		Suspended:       c.suspended,
		Line:            c.line,
		Modem:           c.modem,
		ModemSeen:       c.modemSeen,
		ServerSignature: Text(c.serverSig),
		OwedWire:        owed,
	}, nil
}

// ResumeClient rebuilds, over conn, a client connection exported by
// Export with the same cfg: nothing is negotiated or sent again. It
// starts reading the socket at its first Read or RFC 2217 request, not
// before, so that a process that never becomes the connection's owner
// (a rolled-back upgrade) takes nothing from it.
func ResumeClient(conn net.Conn, cfg Config, st ClientState) (*ClientConn, error) {
	c := newClient(conn, cfg)
	c.dec.MaxSubneg = cfg.MaxSubneg
	if err := c.dec.SetState(st.Decoder); err != nil {
		return nil, err
	}
	if err := c.neg.SetState(st.Negotiation); err != nil {
		return nil, err
	}
	if st.Decoder.Binary != c.neg.Enabled(Remote, OptBinary) {
		return nil, stateErr("decoder binary mode %v disagrees with the negotiated one", st.Decoder.Binary)
	}
	c.suspended = st.Suspended
	c.line, c.modem, c.modemSeen, c.serverSig = st.Line, st.Modem, st.ModemSeen, string(st.ServerSignature)
	c.w.owed = append([]byte(nil), st.OwedWire...)
	return c, nil
}

// isFrozenErr reports a read stopped by Freeze.
func isFrozenErr(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// Text is a peer's free text (an RFC 2217 signature) in a state document:
// any bytes, which a JSON string would not keep (encoding/json replaces
// invalid UTF-8 with U+FFFD). Valid UTF-8 is written as a string, anything
// else as an array of byte values; both are read back.
type Text string

// MarshalJSON writes t as a string when it is valid UTF-8, else as bytes.
func (t Text) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(t)) {
		return json.Marshal(string(t))
	}
	vals := make([]int, len(t))
	for i := range len(t) {
		vals[i] = int(t[i])
	}
	return json.Marshal(vals)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Text) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = Text(s)
		return nil
	}
	var vals []int
	if err := json.Unmarshal(b, &vals); err != nil {
		return stateErr("text: want a string or an array of bytes")
	}
	buf := make([]byte, len(vals))
	for i, v := range vals {
		if v < 0 || v > 255 {
			return stateErr("text: %d is not a byte", v)
		}
		buf[i] = byte(v)
	}
	*t = Text(buf)
	return nil
}
