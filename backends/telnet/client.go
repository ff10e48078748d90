package telnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Chardev         = (*ClientConn)(nil)
	_ chardev.LineController  = (*ClientConn)(nil)
	_ chardev.Breaker         = (*ClientConn)(nil)
	_ chardev.ModemController = (*ClientConn)(nil)
	_ chardev.Describer       = (*ClientConn)(nil)
)

// clientQueue is how many decoded chunks the reader goroutine keeps ahead
// of Read; with 4 KiB reads it bounds buffered input to 64 KiB.
const clientQueue = 16

// ClientConn is the client side of a telnet or RFC 2217 connection:
// chartee using a remote port server (ser2net, a terminal server) as a
// device. A goroutine reads the connection, so RFC 2217 answers are seen
// even while nobody calls Read; data waits for Read in a bounded queue.
//
// With Config.RFC2217, line settings, break and modem lines travel as RFC
// 2217 commands, each waiting up to Config.ReplyTimeout for the server's
// answer. Without it, or when the server refuses COM-PORT-OPTION, they are
// unsupported, except Break, which is sent as IAC BRK.
type ClientConn struct {
	conn net.Conn
	cfg  Config

	w     wire       // every write to conn; never held with mu
	reqMu sync.Mutex // one RFC 2217 request in flight at a time

	mu        sync.Mutex
	resumed   *sync.Cond
	neg       *Negotiator
	suspended bool
	wfrozen   bool // FreezeWrite: writes stop at once
	closed    bool
	changed   chan struct{}            // closed and replaced when answers or options change
	answers   [ComPurgeData + 1]answer // by command
	line      chardev.LineSettings
	modem     chardev.ModemStatus
	modemSeen bool
	serverSig string
	readErr   error

	// frozen is set by Freeze; parked once the reader has stopped at
	// the cut, until thaw is closed.
	frozen, parked bool
	thaw           chan struct{}

	dec        Decoder // the reader goroutine's
	readerOnce sync.Once
	greeting   []byte
	dataCh     chan []byte // a nil chunk marks the cut of a freeze
	leftover   []byte

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// answer is the server's latest message for one command.
type answer struct {
	seq   uint64
	value uint32
}

// NewClient wraps a connection to a telnet or RFC 2217 server and starts
// negotiating.
func NewClient(conn net.Conn, cfg Config) *ClientConn {
	c := newClient(conn, cfg)
	c.greeting = c.greeting[:0]
	c.greeting = c.neg.Request(c.greeting, Local, OptBinary, true)
	c.greeting = c.neg.Request(c.greeting, Remote, OptBinary, true)
	c.greeting = c.neg.Request(c.greeting, Local, OptSGA, true)
	c.greeting = c.neg.Request(c.greeting, Remote, OptSGA, true)
	if cfg.RFC2217 {
		c.greeting = c.neg.Request(c.greeting, Local, OptComPort, true)
	}
	c.startReader()
	return c
}

// newClient makes a connection whose reader has not started.
func newClient(conn net.Conn, cfg Config) *ClientConn {
	c := &ClientConn{
		conn:    conn,
		w:       wire{conn: conn},
		cfg:     cfg,
		changed: make(chan struct{}),
		dataCh:  make(chan []byte, clientQueue),
		done:    make(chan struct{}),
	}
	c.resumed = sync.NewCond(&c.mu)
	local := []byte{OptBinary, OptSGA}
	remote := []byte{OptBinary, OptSGA, OptEcho}
	if cfg.RFC2217 {
		local = append(local, OptComPort)
		remote = append(remote, OptComPort)
	}
	c.neg = NewNegotiator(local, remote)
	c.dec.MaxSubneg = cfg.MaxSubneg
	return c
}

// startReader starts the reader goroutine, once.
func (c *ClientConn) startReader() {
	c.readerOnce.Do(func() {
		c.mu.Lock()
		closed := c.closed
		if !closed {
			c.wg.Add(1)
		}
		c.mu.Unlock()
		if closed {
			c.mu.Lock()
			c.readErr = net.ErrClosed
			c.mu.Unlock()
			close(c.dataCh)
			return
		}
		go c.readLoop(c.greeting)
	})
}

// Describe names the connection.
func (c *ClientConn) Describe() string {
	proto := "telnet"
	if c.cfg.RFC2217 {
		proto = "rfc2217"
	}
	return proto + " server " + c.conn.RemoteAddr().String()
}

// ServerSignature is the server's RFC 2217 signature, once it answered.
func (c *ClientConn) ServerSignature() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serverSig
}

func (c *ClientConn) replyTimeout() time.Duration {
	if c.cfg.ReplyTimeout > 0 {
		return c.cfg.ReplyTimeout
	}
	return DefaultReplyTimeout
}

func (c *ClientConn) writeRaw(b []byte) error {
	return c.w.raw(b)
}

// Read returns data from the server, with the protocol stripped. When
// the connection is frozen it returns what was decoded before the cut,
// then os.ErrDeadlineExceeded.
func (c *ClientConn) Read(p []byte) (int, error) {
	c.startReader()
	if len(c.leftover) == 0 {
		select {
		case chunk, ok := <-c.dataCh:
			if !ok {
				c.mu.Lock()
				defer c.mu.Unlock()
				return 0, c.readErr
			}
			if chunk == nil {
				return 0, os.ErrDeadlineExceeded // the cut of a freeze
			}
			c.leftover = chunk
		case <-c.done:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.leftover)
	c.leftover = c.leftover[n:]
	return n, nil
}

// Write sends p with IAC escaped, waiting while the server has suspended
// our output (RFC 2217 FLOWCONTROL-SUSPEND).
func (c *ClientConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.suspended && !c.closed && !c.wfrozen {
		c.resumed.Wait()
	}
	closed, frozen := c.closed, c.wfrozen
	binary := c.neg.Enabled(Local, OptBinary)
	c.mu.Unlock()
	switch {
	case closed:
		return 0, net.ErrClosed
	case frozen:
		return 0, os.ErrDeadlineExceeded // see FreezeWrite
	}
	return c.w.data(p, binary)
}

// FreezeWrite cuts a Write in progress short, and makes every later one
// return at once, with os.ErrDeadlineExceeded and the count of bytes that
// went out (chardev.WriteFreezer); a Write waiting for the server to
// resume its flow returns too. ThawWrite undoes it.
func (c *ClientConn) FreezeWrite() error {
	c.mu.Lock()
	c.wfrozen = true
	c.resumed.Broadcast()
	c.mu.Unlock()
	return c.conn.SetWriteDeadline(time.Unix(1, 0))
}

// ThawWrite undoes FreezeWrite.
func (c *ClientConn) ThawWrite() error {
	err := c.conn.SetWriteDeadline(time.Time{})
	c.mu.Lock()
	c.wfrozen = false
	c.mu.Unlock()
	return err
}

// Close closes the connection and stops the reader.
func (c *ClientConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.resumed.Broadcast()
		c.mu.Unlock()
		close(c.done)
		c.closeErr = c.conn.Close()
		c.wg.Wait()
	})
	return c.closeErr
}

// readLoop sends the greeting, then decodes the connection until it fails,
// answering the protocol and queueing data for Read.
func (c *ClientConn) readLoop(greeting []byte) {
	defer c.wg.Done()
	var err error
	defer func() {
		c.mu.Lock()
		c.readErr = err
		c.mu.Unlock()
		close(c.dataCh)
	}()
	if err = c.writeRaw(greeting); err != nil {
		return
	}
	buf := make([]byte, 4096)
	for {
		var n int
		n, err = c.conn.Read(buf)
		in := buf[:n]
		var data []byte
		for len(in) > 0 {
			var ev *Event
			data, in, ev = c.dec.Decode(data, in)
			if ev != nil {
				c.handle(ev)
			}
		}
		if len(data) > 0 && !c.queue(data) {
			return
		}
		if isFrozenErr(err) {
			if !c.park() {
				return
			}
			err = nil
			continue
		}
		if err != nil {
			return
		}
	}
}

// queue hands a chunk to Read; false when the connection closed.
func (c *ClientConn) queue(chunk []byte) bool {
	select {
	case c.dataCh <- chunk:
		return true
	case <-c.done:
		return false
	}
}

// park stops the reader at a freeze's cut: Read gets the cut marker after
// the data before it, and the reader waits for Thaw. It returns false
// when the connection closed. A deadline error with no freeze (a Thaw
// raced it: the deadline is already cleared) just reads on.
func (c *ClientConn) park() bool {
	c.mu.Lock()
	if !c.frozen {
		c.mu.Unlock()
		return true
	}
	thaw := c.thaw
	// Parked before the marker goes out: whoever acts on the marker
	// (Export, after the tee's reader stopped) sees it.
	c.parked = true
	c.mu.Unlock()
	if !c.queue(nil) {
		return false
	}
	select {
	case <-thaw:
		return true
	case <-c.done:
		return false
	}
}

func (c *ClientConn) handle(ev *Event) {
	switch ev.Kind {
	case EventNegotiation:
		c.mu.Lock()
		wasActive := c.comPortActive()
		reply := c.neg.Receive(nil, ev.Command, ev.Option)
		c.dec.Binary = c.neg.Enabled(Remote, OptBinary)
		activated := !wasActive && c.comPortActive()
		c.broadcastLocked()
		c.mu.Unlock()
		_ = c.writeRaw(reply)
		if activated {
			_ = c.writeRaw(ComPortMsg{Code: ComSignature}.Append(nil))
		}
	case EventSubnegotiation:
		if ev.Option != OptComPort || !c.cfg.RFC2217 {
			return
		}
		m, err := ParseComPort(ev.Data)
		if err != nil {
			return
		}
		c.serverMessage(m)
	}
	// Commands from a server (NOP, GA, ...) mean nothing to us.
}

// serverMessage records an RFC 2217 answer or notification.
func (c *ClientConn) serverMessage(m ComPortMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := m.Command()
	switch cmd {
	case ComSignature:
		if m.FromServer() {
			c.serverSig = string(m.Text)
		}
		return
	case ComFlowSuspend, ComFlowResume:
		// The RFC's table gives the server +100 codes; some servers send
		// the bare ones. Take both.
		c.suspended = cmd == ComFlowSuspend
		c.resumed.Broadcast()
		return
	}
	if !m.FromServer() {
		return
	}
	v := byte(m.Value)
	switch cmd {
	case ComSetBaudRate:
		c.line.Baud = int(m.Value)
	case ComSetDataSize:
		if v >= 5 && v <= 8 {
			c.line.DataBits = int(v)
		}
	case ComSetParity:
		if p, ok := ParityFromCode(v); ok {
			c.line.Parity = p
		}
	case ComSetStopSize:
		if s, ok := StopBitsFromCode(v); ok {
			c.line.StopBits = s
		}
	case ComSetControl:
		switch v {
		case CtlDTROn, CtlDTROff:
			c.modem.DTR = v == CtlDTROn
		case CtlRTSOn, CtlRTSOff:
			c.modem.RTS = v == CtlRTSOn
		default:
			if f, ok := FlowFromCode(v); ok && v <= CtlFlowHardware {
				c.line.Flow = f
			}
		}
	case ComNotifyModemState:
		st := ModemStatusFromByte(v)
		st.DTR, st.RTS = c.modem.DTR, c.modem.RTS
		c.modem, c.modemSeen = st, true
	}
	c.answers[cmd] = answer{seq: c.answers[cmd].seq + 1, value: m.Value}
	c.broadcastLocked()
}

// broadcastLocked wakes everyone waiting for an answer. Needs c.mu.
func (c *ClientConn) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// comPortActive needs c.mu.
func (c *ClientConn) comPortActive() bool {
	return c.neg.Enabled(Local, OptComPort) || c.neg.Enabled(Remote, OptComPort)
}

// waitComPort waits until RFC 2217 is negotiated, and fails with an
// unsupported error if it is not configured or the server refused it.
func (c *ClientConn) waitComPort(deadline <-chan time.Time) error {
	if !c.cfg.RFC2217 {
		return fmt.Errorf("telnet: plain telnet has no serial port control: %w", chardev.ErrUnsupported)
	}
	c.startReader()
	for {
		c.mu.Lock()
		active := c.comPortActive()
		pending := c.neg.Pending(Local, OptComPort)
		closed := c.closed
		ch := c.changed
		c.mu.Unlock()
		switch {
		case active:
			return nil
		case closed:
			return fmt.Errorf("rfc2217: %w", net.ErrClosed)
		case !pending:
			return fmt.Errorf("rfc2217: server refused COM-PORT-OPTION: %w", chardev.ErrUnsupported)
		}
		select {
		case <-ch:
		case <-deadline:
			return errors.New("rfc2217: server did not answer the COM-PORT-OPTION request")
		case <-c.done:
		}
	}
}

var comNames = [...]string{
	ComSignature: "SIGNATURE", ComSetBaudRate: "SET-BAUDRATE", ComSetDataSize: "SET-DATASIZE",
	ComSetParity: "SET-PARITY", ComSetStopSize: "SET-STOPSIZE", ComSetControl: "SET-CONTROL",
	ComNotifyLineState: "NOTIFY-LINESTATE", ComNotifyModemState: "NOTIFY-MODEMSTATE",
	ComFlowSuspend: "FLOWCONTROL-SUSPEND", ComFlowResume: "FLOWCONTROL-RESUME",
	ComSetLineStateMask: "SET-LINESTATE-MASK", ComSetModemStateMask: "SET-MODEMSTATE-MASK",
	ComPurgeData: "PURGE-DATA",
}

// request sends one RFC 2217 command and waits for the server's answer.
func (c *ClientConn) request(cmd byte, value uint32) (uint32, error) {
	timer := time.NewTimer(c.replyTimeout())
	defer timer.Stop()
	if err := c.waitComPort(timer.C); err != nil {
		return 0, err
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	c.mu.Lock()
	seq := c.answers[cmd].seq
	c.mu.Unlock()
	if err := c.writeRaw(ComPortMsg{Code: cmd, Value: value}.Append(nil)); err != nil {
		return 0, fmt.Errorf("rfc2217: %s: %w", comNames[cmd], err)
	}
	for {
		c.mu.Lock()
		a := c.answers[cmd]
		ch := c.changed
		c.mu.Unlock()
		if a.seq != seq {
			return a.value, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return 0, fmt.Errorf("rfc2217: no answer to %s within %s", comNames[cmd], c.replyTimeout())
		case <-c.done:
			return 0, fmt.Errorf("rfc2217: %s: %w", comNames[cmd], net.ErrClosed)
		}
	}
}

// set sends a command and checks the server took the value.
func (c *ClientConn) set(cmd byte, value uint32) error {
	got, err := c.request(cmd, value)
	if err != nil {
		return err
	}
	if got != value {
		return fmt.Errorf("rfc2217: %s %d: server kept %d", comNames[cmd], value, got)
	}
	return nil
}

// SetLineSettings sends the settings as RFC 2217 commands; zero Baud and
// DataBits are left alone. The first refused or unanswered setting is
// returned as the error.
func (c *ClientConn) SetLineSettings(l chardev.LineSettings) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("rfc2217: %w", err)
	}
	var errs []error
	if l.Baud != 0 {
		errs = append(errs, c.set(ComSetBaudRate, uint32(l.Baud)))
	}
	if l.DataBits != 0 {
		errs = append(errs, c.set(ComSetDataSize, uint32(l.DataBits)))
	}
	errs = append(errs,
		c.set(ComSetParity, uint32(ParityCode(l.Parity))),
		c.set(ComSetStopSize, uint32(StopSizeCode(l.StopBits))),
		c.set(ComSetControl, uint32(FlowCode(l.Flow))))
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// LineSettings returns what the server last said is in force.
func (c *ClientConn) LineSettings() (chardev.LineSettings, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cfg.RFC2217 || !c.comPortActive() {
		return chardev.LineSettings{}, fmt.Errorf("rfc2217: line settings: %w", chardev.ErrUnsupported)
	}
	return c.line, nil
}

// Break sends a break of length d: RFC 2217 BREAK-ON, a wait, BREAK-OFF;
// or a telnet IAC BRK (of the server's choosing length) when the server
// does not speak RFC 2217.
func (c *ClientConn) Break(d time.Duration) error {
	timer := time.NewTimer(c.replyTimeout())
	err := c.waitComPort(timer.C)
	timer.Stop()
	if chardev.IsUnsupported(err) {
		if err := c.writeRaw(AppendCommand(nil, BRK)); err != nil {
			return fmt.Errorf("telnet: break: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.set(ComSetControl, uint32(CtlBreakOn)); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
		return fmt.Errorf("rfc2217: break: %w", net.ErrClosed)
	}
	return c.set(ComSetControl, uint32(CtlBreakOff))
}

// SetDTR drives the server port's DTR line.
func (c *ClientConn) SetDTR(on bool) error {
	v := CtlDTROff
	if on {
		v = CtlDTROn
	}
	return c.set(ComSetControl, uint32(v))
}

// SetRTS drives the server port's RTS line.
func (c *ClientConn) SetRTS(on bool) error {
	v := CtlRTSOff
	if on {
		v = CtlRTSOn
	}
	return c.set(ComSetControl, uint32(v))
}

// ModemStatus returns the modem lines from the server's last
// NOTIFY-MODEMSTATE, and DTR and RTS as last acknowledged.
func (c *ClientConn) ModemStatus() (chardev.ModemStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cfg.RFC2217 || !c.comPortActive() {
		return chardev.ModemStatus{}, fmt.Errorf("rfc2217: modem lines: %w", chardev.ErrUnsupported)
	}
	return c.modem, nil
}
