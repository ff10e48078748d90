package telnet

import (
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
)

// Config configures a telnet connection, server or client side.
type Config struct {
	// RFC2217 enables the COM-PORT-OPTION. Without it the connection is
	// plain telnet and refuses option 44.
	RFC2217 bool
	// Control lets a server-side client change the frontend's line
	// settings, modem lines and break, and purge its input. Without it the
	// server answers RFC 2217 requests with the values in force.
	Control bool
	// Banner is sent to a server-side client after the option requests.
	Banner string
	// MaxSubneg bounds a subnegotiation payload; 0 means DefaultMaxSubneg.
	MaxSubneg int
	// ReplyTimeout is how long a client waits for the server to answer an
	// RFC 2217 request or option; 0 means DefaultReplyTimeout.
	ReplyTimeout time.Duration
}

// DefaultReplyTimeout is ClientConn's wait for an RFC 2217 answer; it is
// also what pyserial waits.
const DefaultReplyTimeout = 3 * time.Second

// BreakDuration is the break sent for a telnet IAC BRK, which has no
// length of its own; it is what tcsendbreak(fd, 0) sends.
const BreakDuration = 250 * time.Millisecond

// Signature is what chartee answers an RFC 2217 SIGNATURE request with.
const Signature = "chartee"

const (
	// breakMin and breakMax bound the break a client times with SET-CONTROL
	// BREAK-ON ... BREAK-OFF. Shorter than breakMin means "a break, please"
	// and gets BreakDuration.
	breakMin = 10 * time.Millisecond
	breakMax = 2 * time.Second

	ayt = "\r\n[chartee: yes]\r\n"
)

// Interface guards.
var (
	_ chardev.Chardev      = (*ServerConn)(nil)
	_ chardev.ControlAware = (*ServerConn)(nil)
	_ chardev.LineObserver = (*ServerConn)(nil)
	_ chardev.Peer         = (*ServerConn)(nil)
	_ chardev.Describer    = (*ServerConn)(nil)
	_ chardev.Noticer      = (*ServerConn)(nil)
)

// ServerConn is the server side of a telnet or RFC 2217 connection: a
// client connected to the tee. Read returns only the client's data, with
// the protocol stripped; protocol traffic is answered from within Read.
// Write escapes data for the wire. Everything written to the connection,
// data and protocol answers alike, goes through one lock, so an answer never
// lands inside a data write.
//
// RFC 2217 requests act on the tee through the chardev.Control given by
// SetControl, and only if Config.Control allows it.
type ServerConn struct {
	conn net.Conn
	cfg  Config

	greetOnce sync.Once
	greeted   atomic.Bool // greetOnce has run (for Export)
	w         wire        // every write to conn; never held with mu

	mu        sync.Mutex
	resumed   *sync.Cond // signalled when suspended clears or the conn closes
	neg       *Negotiator
	ctl       chardev.Control
	suspended bool
	wfrozen   bool // FreezeWrite: writes stop at once
	closed    bool
	lineMask  byte
	modemMask byte
	lastModem int // last modem state byte sent, -1 for none
	breakOn   bool
	breakFrom time.Time
	dtr, rts  bool // last known, for frontends without modem lines
	told      toldLine
	pending   *chardev.LineSettings // from LineChanged, not yet sent
	peerSig   string
	// applying is the line state this client's own request is setting,
	// while the request is being carried out; nil otherwise. See
	// LineChanged.
	applying *chardev.LineSettings

	droppedSubneg atomic.Uint64
	badComPort    atomic.Uint64

	// Read side, used only by the goroutine calling Read.
	dec  Decoder
	rbuf []byte
	rest []byte // raw input not yet decoded
	dbuf []byte // decode buffer
	data []byte // decoded data not yet returned, within dbuf
	held *Event // an event met after data that Read returned first

	notify    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// toldLine is the line state a client was last told, as wire values;
// zero means never told.
type toldLine struct {
	baud                         uint32
	dataSize, parity, stop, flow byte
}

// NewServer wraps an accepted connection. The option requests and banner
// are sent on the first Read or Write.
func NewServer(conn net.Conn, cfg Config) *ServerConn {
	s := &ServerConn{
		conn:      conn,
		w:         wire{conn: conn},
		cfg:       cfg,
		modemMask: 0xff,
		lastModem: -1,
		dtr:       true,
		rts:       true,
		rbuf:      make([]byte, 4096),
		notify:    make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.resumed = sync.NewCond(&s.mu)
	s.dec.MaxSubneg = cfg.MaxSubneg
	local := []byte{OptBinary, OptEcho, OptSGA}
	remote := []byte{OptBinary, OptSGA}
	if cfg.RFC2217 {
		local = append(local, OptComPort)
		remote = append(remote, OptComPort)
		s.wg.Add(1)
		go s.notifyLoop()
	}
	s.neg = NewNegotiator(local, remote)
	return s
}

// ServerStats counts what a ServerConn discarded from its client.
type ServerStats struct {
	// DroppedSubneg counts subnegotiations discarded as oversize or
	// unterminated.
	DroppedSubneg uint64
	// BadComPort counts malformed RFC 2217 commands.
	BadComPort uint64
	// RefusedOptions counts option requests refused.
	RefusedOptions uint64
}

// Stats returns the counters.
func (s *ServerConn) Stats() ServerStats {
	s.mu.Lock()
	refused := s.neg.Refused
	s.mu.Unlock()
	return ServerStats{
		DroppedSubneg:  s.droppedSubneg.Load(),
		BadComPort:     s.badComPort.Load(),
		RefusedOptions: uint64(refused),
	}
}

// SetControl gives the connection the tee's control handle.
func (s *ServerConn) SetControl(c chardev.Control) {
	s.mu.Lock()
	s.ctl = c
	s.mu.Unlock()
}

// Peer names the client.
func (s *ServerConn) Peer() string { return s.conn.RemoteAddr().String() }

// Describe names the connection for status and logs.
func (s *ServerConn) Describe() string {
	proto := "telnet"
	if s.cfg.RFC2217 {
		proto = "rfc2217"
	}
	return proto + " client " + s.Peer()
}

// PeerSignature is the RFC 2217 signature the client sent, if any.
func (s *ServerConn) PeerSignature() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerSig
}

// Notice shows text to the person at this telnet client, on a line of
// its own (chardev.Noticer). An RFC 2217 connection is a serial port for a
// program, not a terminal for a person: it shows nothing there.
func (s *ServerConn) Notice(text string) {
	if s.cfg.RFC2217 {
		return
	}
	s.greet()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	s.writeText("\r\n[chartee] " + oneLine(text) + "\r\n")
}

// oneLine keeps a notice to one line of printable text.
func oneLine(text string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimRight(text, "\r\n"))
}

// greet sends our option requests and the banner, once.
func (s *ServerConn) greet() {
	s.greetOnce.Do(func() {
		s.greeted.Store(true)
		s.mu.Lock()
		var b []byte
		b = s.neg.Request(b, Local, OptEcho, true)
		b = s.neg.Request(b, Local, OptSGA, true)
		b = s.neg.Request(b, Remote, OptSGA, true)
		b = s.neg.Request(b, Local, OptBinary, true)
		b = s.neg.Request(b, Remote, OptBinary, true)
		s.mu.Unlock()
		b = AppendData(b, []byte(s.cfg.Banner), false)
		s.writeRaw(b)
	})
}

// writeRaw writes protocol bytes. Errors are left for the next Read or
// Write to find: a conn that fails a write fails those too.
func (s *ServerConn) writeRaw(b []byte) {
	if len(b) == 0 {
		return
	}
	_ = s.w.raw(b)
}

// writeText sends text to the client as data.
func (s *ServerConn) writeText(text string) {
	s.mu.Lock()
	binary := s.neg.Enabled(Local, OptBinary)
	s.mu.Unlock()
	s.writeRaw(AppendData(nil, []byte(text), binary))
}

// OutputSuspended reports whether the client has suspended our output
// (RFC 2217 FLOWCONTROL-SUSPEND), so that Write waits for its resume.
func (s *ServerConn) OutputSuspended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.suspended && !s.closed && !s.wfrozen
}

// Write sends p to the client with IAC escaped. It waits while the client
// has suspended output (RFC 2217 FLOWCONTROL-SUSPEND).
func (s *ServerConn) Write(p []byte) (int, error) {
	s.greet()
	s.mu.Lock()
	for s.suspended && !s.closed && !s.wfrozen {
		s.resumed.Wait()
	}
	closed, frozen := s.closed, s.wfrozen
	binary := s.neg.Enabled(Local, OptBinary)
	s.mu.Unlock()
	switch {
	case closed:
		return 0, net.ErrClosed
	case frozen:
		return 0, os.ErrDeadlineExceeded // see FreezeWrite
	}
	return s.w.data(p, binary)
}

// FreezeWrite cuts a Write in progress short, and makes every later one
// return at once, with os.ErrDeadlineExceeded and the count of bytes that
// went out (chardev.WriteFreezer); a Write waiting for the client to
// resume its flow returns too. ThawWrite undoes it.
func (s *ServerConn) FreezeWrite() error {
	s.mu.Lock()
	s.wfrozen = true
	s.resumed.Broadcast()
	s.mu.Unlock()
	return s.conn.SetWriteDeadline(time.Unix(1, 0))
}

// ThawWrite undoes FreezeWrite.
func (s *ServerConn) ThawWrite() error {
	err := s.conn.SetWriteDeadline(time.Time{})
	s.mu.Lock()
	s.wfrozen = false
	s.mu.Unlock()
	return err
}

// Read returns the client's data. It answers option negotiation and RFC
// 2217 requests as they arrive; data that came before a protocol event is
// returned before the event is acted on.
func (s *ServerConn) Read(p []byte) (int, error) {
	s.greet()
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(s.data) > 0 {
			n := copy(p, s.data)
			s.data = s.data[n:]
			return n, nil
		}
		if s.held != nil {
			ev := s.held
			s.held = nil
			s.handle(ev)
		}
		if len(s.rest) == 0 {
			n, err := s.conn.Read(s.rbuf)
			if n == 0 {
				if err == nil {
					continue
				}
				return 0, err
			}
			s.rest = s.rbuf[:n]
		}
		var ev *Event
		s.dbuf, s.rest, ev = s.dec.Decode(s.dbuf[:0], s.rest)
		s.data = s.dbuf
		if ev == nil {
			continue
		}
		if len(s.data) > 0 {
			s.held = ev
			continue
		}
		s.handle(ev)
	}
}

// Close closes the connection; blocked Reads and Writes return.
func (s *ServerConn) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.resumed.Broadcast()
		s.mu.Unlock()
		close(s.done)
		s.closeErr = s.conn.Close()
		s.wg.Wait()
	})
	return s.closeErr
}

func (s *ServerConn) control() chardev.Control {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctl
}

func (s *ServerConn) handle(ev *Event) {
	switch ev.Kind {
	case EventNegotiation:
		s.negotiate(ev.Command, ev.Option)
	case EventCommand:
		s.command(ev.Command)
	case EventSubnegotiation:
		if ev.Option != OptComPort || !s.cfg.RFC2217 {
			return // an option we refused; nothing to say
		}
		m, err := ParseComPort(ev.Data)
		if err != nil || m.FromServer() {
			s.badComPort.Add(1)
			return
		}
		s.comPort(m)
	case EventSubnegDropped:
		s.droppedSubneg.Add(1)
	}
}

func (s *ServerConn) negotiate(cmd, opt byte) {
	s.mu.Lock()
	wasActive := s.comPortActive()
	reply := s.neg.Receive(nil, cmd, opt)
	s.dec.Binary = s.neg.Enabled(Remote, OptBinary)
	activated := !wasActive && s.comPortActive()
	s.mu.Unlock()
	s.writeRaw(reply)
	if activated {
		// Tell a new RFC 2217 client the modem lines, as pyserial expects.
		s.sendModemState(true)
	}
}

// comPortActive reports whether the client agreed to RFC 2217 in either
// direction (clients differ in which one they ask for). Needs s.mu.
func (s *ServerConn) comPortActive() bool {
	return s.neg.Enabled(Local, OptComPort) || s.neg.Enabled(Remote, OptComPort)
}

func (s *ServerConn) command(cmd byte) {
	switch cmd {
	case BRK:
		if ctl := s.control(); ctl != nil {
			_ = ctl.Break(BreakDuration)
		}
	case AYT:
		s.writeText(ayt)
	}
	// IP, AO, EC, EL, NOP, GA, DM: nothing to do for a serial line. A
	// client in character mode sends ^C and friends as data.
}

// comPort answers one RFC 2217 request.
func (s *ServerConn) comPort(m ComPortMsg) {
	ctl := s.control()
	allowed := s.cfg.Control && ctl != nil
	var (
		r  ComPortMsg
		ok bool
	)
	switch m.Command() {
	case ComSetBaudRate, ComSetDataSize, ComSetParity, ComSetStopSize:
		r, ok = s.comPortLine(ctl, allowed, m), true
	case ComSetControl:
		var ans byte
		if ans, ok = s.setControl(ctl, allowed, byte(m.Value)); ok {
			r = comPortReply(ComSetControl, uint32(ans))
		}
	case ComPurgeData:
		r, ok = s.comPortPurge(ctl, allowed, byte(m.Value))
	default:
		r, ok = s.comPortState(m)
	}
	if ok {
		s.sendComPort([]ComPortMsg{r})
	}
}

// comPortReply is the server's answer to command cmd.
func comPortReply(cmd byte, v uint32) ComPortMsg {
	return ComPortMsg{Code: cmd + ServerOffset, Value: v}
}

// comPortLine answers a request to set one of the line settings: applied
// when the client may and the value is valid, and answered with the value
// in force either way, as RFC 2217 asks.
func (s *ServerConn) comPortLine(ctl chardev.Control, allowed bool, m ComPortMsg) ComPortMsg {
	v := byte(m.Value)
	switch m.Command() {
	case ComSetBaudRate:
		line := s.setLine(ctl, allowed && m.Value != 0 && m.Value <= 1<<31-1, func(l *chardev.LineSettings) {
			l.Baud = int(m.Value)
		})
		baud := uint32(line.Baud)
		if baud == 0 {
			// The tee does not know its baud rate (a pty frontend, say):
			// there is no value to contradict the client with.
			baud = m.Value
		}
		return comPortReply(ComSetBaudRate, baud)
	case ComSetDataSize:
		line := s.setLine(ctl, allowed && v >= 5 && v <= 8, func(l *chardev.LineSettings) {
			l.DataBits = int(v)
		})
		size := byte(line.DataBits)
		if size == 0 {
			size = 8
		}
		return comPortReply(ComSetDataSize, uint32(size))
	case ComSetParity:
		p, ok := ParityFromCode(v)
		line := s.setLine(ctl, allowed && ok, func(l *chardev.LineSettings) { l.Parity = p })
		return comPortReply(ComSetParity, uint32(ParityCode(line.Parity)))
	default: // ComSetStopSize
		sb, ok := StopBitsFromCode(v)
		line := s.setLine(ctl, allowed && ok, func(l *chardev.LineSettings) { l.StopBits = sb })
		return comPortReply(ComSetStopSize, uint32(StopSizeCode(line.StopBits)))
	}
}

// comPortPurge answers a purge request. The transmit buffer is what the
// client sent that has not reached the line yet: the tee's input queue.
// The receive buffer is the client's own output queue, which the engine
// owns; nothing to do. An unknown value is counted and not answered.
func (s *ServerConn) comPortPurge(ctl chardev.Control, allowed bool, v byte) (ComPortMsg, bool) {
	if v < PurgeReceive || v > PurgeBoth {
		s.badComPort.Add(1)
		return ComPortMsg{}, false
	}
	if allowed && v != PurgeReceive {
		ctl.PurgeInput()
	}
	return comPortReply(ComPurgeData, uint32(v)), true
}

// comPortState answers the requests that touch only this connection's
// state (signature, flow suspension, notification masks) or report the
// line, none of which needs control.
func (s *ServerConn) comPortState(m ComPortMsg) (ComPortMsg, bool) {
	v := byte(m.Value)
	switch m.Command() {
	case ComSignature:
		if len(m.Text) == 0 {
			return ComPortMsg{Code: ComSignature + ServerOffset, Text: []byte(Signature)}, true
		}
		s.mu.Lock()
		s.peerSig = string(m.Text)
		s.mu.Unlock()
	case ComNotifyLineState:
		// We see no UART line errors; report none.
		return comPortReply(ComNotifyLineState, 0), true
	case ComNotifyModemState:
		s.sendModemState(true)
	case ComFlowSuspend, ComFlowResume:
		s.mu.Lock()
		s.suspended = m.Command() == ComFlowSuspend
		s.resumed.Broadcast()
		s.mu.Unlock()
	case ComSetLineStateMask:
		s.mu.Lock()
		s.lineMask = v
		s.mu.Unlock()
		return comPortReply(ComSetLineStateMask, uint32(v)), true
	case ComSetModemStateMask:
		s.mu.Lock()
		s.modemMask = v
		s.mu.Unlock()
		return comPortReply(ComSetModemStateMask, uint32(v)), true
	}
	return ComPortMsg{}, false
}

// setLine applies change to the tee's line settings when apply is true and
// returns the settings in force afterwards.
func (s *ServerConn) setLine(ctl chardev.Control, apply bool, change func(*chardev.LineSettings)) chardev.LineSettings {
	if ctl == nil {
		return chardev.LineSettings{}
	}
	line := ctl.LineSettings()
	if !apply {
		return line
	}
	want := line
	change(&want)
	if want == line || want.Validate() != nil {
		return line
	}
	s.mu.Lock()
	s.applying = &want
	s.mu.Unlock()
	err := ctl.SetLineSettings(want)
	s.mu.Lock()
	s.applying = nil
	s.mu.Unlock()
	if err != nil {
		return ctl.LineSettings()
	}
	return want
}

// setControl handles SET-CONTROL value v and returns the answer, false
// for values we do not answer.
func (s *ServerConn) setControl(ctl chardev.Control, allowed bool, v byte) (byte, bool) {
	switch v {
	case CtlFlowRequest, CtlFlowNone, CtlFlowXonXoff, CtlFlowHardware,
		CtlInFlowRequest, CtlInFlowNone, CtlInFlowXonXoff, CtlInFlowHardware,
		CtlFlowDCD, CtlInFlowDTR, CtlFlowDSR:
		f, ok := FlowFromCode(v)
		line := s.setLine(ctl, allowed && ok, func(l *chardev.LineSettings) { l.Flow = f })
		ans := FlowCode(line.Flow)
		if v >= CtlInFlowRequest && v <= CtlInFlowHardware || v == CtlInFlowDTR {
			ans += CtlInFlowNone - CtlFlowNone // the inbound codes
		}
		return ans, true
	case CtlBreakRequest, CtlBreakOn, CtlBreakOff:
		s.mu.Lock()
		on, from := s.breakOn, s.breakFrom
		switch {
		case v == CtlBreakOn && allowed:
			s.breakOn, s.breakFrom = true, time.Now()
		case v == CtlBreakOff && allowed:
			s.breakOn = false
		}
		now := s.breakOn
		s.mu.Unlock()
		if on && !now {
			_ = ctl.Break(breakLength(time.Since(from)))
		}
		if now {
			return CtlBreakOn, true
		}
		return CtlBreakOff, true
	case CtlDTRRequest, CtlDTROn, CtlDTROff:
		on := s.setModemLine(ctl, allowed && v != CtlDTRRequest, v == CtlDTROn, true)
		if on {
			return CtlDTROn, true
		}
		return CtlDTROff, true
	case CtlRTSRequest, CtlRTSOn, CtlRTSOff:
		on := s.setModemLine(ctl, allowed && v != CtlRTSRequest, v == CtlRTSOn, false)
		if on {
			return CtlRTSOn, true
		}
		return CtlRTSOff, true
	}
	return 0, false
}

// breakLength turns how long a client held BREAK-ON into the break sent.
func breakLength(held time.Duration) time.Duration {
	switch {
	case held < breakMin:
		return BreakDuration
	case held > breakMax:
		return breakMax
	}
	return held
}

// setModemLine drives DTR (dtr true) or RTS to on when apply is true and
// returns the line's state afterwards. A frontend without modem lines
// takes the request as a no-op, so the client is told what it asked for.
func (s *ServerConn) setModemLine(ctl chardev.Control, apply, on, dtr bool) bool {
	cache := &s.rts
	if dtr {
		cache = &s.dtr
	}
	if apply {
		var err error
		if dtr {
			err = ctl.SetModemLines(&on, nil)
		} else {
			err = ctl.SetModemLines(nil, &on)
		}
		if err == nil || chardev.IsUnsupported(err) {
			s.mu.Lock()
			*cache = on
			s.mu.Unlock()
			return on
		}
	}
	if ctl != nil {
		if ms, err := ctl.ModemStatus(); err == nil {
			if dtr {
				return ms.DTR
			}
			return ms.RTS
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return *cache
}

// sendModemState notifies the client of the frontend's modem lines if they
// changed since the last notification, or always when force is set.
//
// A frontend without modem lines (a pty, a spawned command, a TCP peer) is
// reported as a modem state of 0: no line asserted, as on a cable with
// only RX, TX and ground. Saying nothing would break clients that insist
// on an answer: pyserial's port.cts raises "remote sends no
// NOTIFY_MODEMSTATE". A forced notification (the client asked, or RFC
// 2217 just came up) is answered the same way when the lines cannot be
// read for another reason (the frontend is down); an unforced one is then
// skipped, so a passing outage does not look like a line change.
func (s *ServerConn) sendModemState(force bool) {
	ctl := s.control()
	if ctl == nil {
		return
	}
	ms, err := ctl.ModemStatus()
	if err != nil {
		if !force && !chardev.IsUnsupported(err) {
			return
		}
		ms = chardev.ModemStatus{}
	}
	state := ModemStateByte(ms)
	s.mu.Lock()
	if !s.comPortActive() || (!force && int(state) == s.lastModem) {
		s.mu.Unlock()
		return
	}
	if s.lastModem >= 0 {
		state |= modemDeltas(byte(s.lastModem), state)
	}
	s.lastModem = int(state & 0xf0)
	value := state & s.modemMask
	s.mu.Unlock()
	s.sendComPort([]ComPortMsg{{Code: ComNotifyModemState + ServerOffset, Value: uint32(value)}})
}

// modemDeltas returns the RFC 2217 change bits between two modem states.
func modemDeltas(before, after byte) byte {
	changed := before ^ after
	var d byte
	if changed&ModemCD != 0 {
		d |= ModemDeltaCD
	}
	if changed&ModemRI != 0 && after&ModemRI == 0 {
		d |= ModemTrailRI
	}
	if changed&ModemDSR != 0 {
		d |= ModemDeltaDSR
	}
	if changed&ModemCTS != 0 {
		d |= ModemDeltaCTS
	}
	return d
}

// sendComPort writes RFC 2217 messages and remembers the line values the
// client has been told.
func (s *ServerConn) sendComPort(msgs []ComPortMsg) {
	if len(msgs) == 0 {
		return
	}
	var b []byte
	s.mu.Lock()
	for _, m := range msgs {
		s.told.record(m)
		b = m.Append(b)
	}
	s.mu.Unlock()
	s.writeRaw(b)
}

func (t *toldLine) record(m ComPortMsg) {
	switch m.Code {
	case ComSetBaudRate + ServerOffset:
		t.baud = m.Value
	case ComSetDataSize + ServerOffset:
		t.dataSize = byte(m.Value)
	case ComSetParity + ServerOffset:
		t.parity = byte(m.Value)
	case ComSetStopSize + ServerOffset:
		t.stop = byte(m.Value)
	case ComSetControl + ServerOffset:
		if v := byte(m.Value); v >= CtlFlowNone && v <= CtlFlowHardware {
			t.flow = v
		}
	}
}

// changes lists the server notifications that bring a client told t up to
// date with l. Unknown values (zero baud or data size) are not sent.
func (t toldLine) changes(l chardev.LineSettings) []ComPortMsg {
	var msgs []ComPortMsg
	add := func(cmd byte, told, now uint32) {
		if now != 0 && now != told {
			msgs = append(msgs, ComPortMsg{Code: cmd + ServerOffset, Value: now})
		}
	}
	if l.Baud > 0 && l.Baud <= 1<<31-1 {
		add(ComSetBaudRate, t.baud, uint32(l.Baud))
	}
	add(ComSetDataSize, uint32(t.dataSize), uint32(l.DataBits))
	add(ComSetParity, uint32(t.parity), uint32(ParityCode(l.Parity)))
	add(ComSetStopSize, uint32(t.stop), uint32(StopSizeCode(l.StopBits)))
	add(ComSetControl, uint32(t.flow), uint32(FlowCode(l.Flow)))
	return msgs
}

// LineChanged queues a notification of the tee's new line state for an
// RFC 2217 client. It never blocks; the notification is written by the
// connection's own goroutine.
//
// The change this client's own request makes is not notified: the reply
// to the request tells it. Notifying it as well would send values the
// client did not ask about, and pyserial cannot take that while it opens
// the port: it sets baud rate, data size, parity and stop size first and
// only then flow control, and a SET-CONTROL answer arriving before its
// own request kills its reader thread (check_answer on an option with no
// value yet). That is what happened to every pyserial client opening at
// a baud rate other than the device's.
func (s *ServerConn) LineChanged(l chardev.LineSettings) {
	if !s.cfg.RFC2217 {
		return
	}
	s.mu.Lock()
	if s.applying != nil && lineSame(*s.applying, l) {
		s.mu.Unlock()
		return
	}
	s.pending = &l
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// notifyLoop sends queued line-state notifications until Close.
func (s *ServerConn) notifyLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.notify:
		}
		s.mu.Lock()
		l := s.pending
		s.pending = nil
		active := s.comPortActive()
		var msgs []ComPortMsg
		if l != nil && active {
			msgs = s.told.changes(*l)
		}
		s.mu.Unlock()
		s.sendComPort(msgs)
		if active {
			s.sendModemState(false)
		}
	}
}

// lineSame reports whether the engine's notified state b is the state a
// requested, where the engine fills a zero baud rate or data size with the
// value in force.
func lineSame(a, b chardev.LineSettings) bool {
	if a.Baud == 0 {
		a.Baud = b.Baud
	}
	if a.DataBits == 0 {
		a.DataBits = b.DataBits
	}
	return a == b
}
