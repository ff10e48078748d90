package backends

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
)

func init() {
	chardev.Register("tcp-connect", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewTCPConnectSpec() },
		Open:    tcpConnect,
		Inherit: tcpInherit,
		Input:   true,
	})
}

// Interface guards.
var (
	_ chardev.Spec            = (*TCPConnectSpec)(nil)
	_ chardev.Chardev         = (*NetConn)(nil)
	_ chardev.Describer       = (*NetConn)(nil)
	_ chardev.LineController  = (*NetSerialConn)(nil)
	_ chardev.Breaker         = (*NetSerialConn)(nil)
	_ chardev.ModemController = (*NetSerialConn)(nil)
)

// NetDialOptions are the keys every connecting stream type (tcp-connect,
// unix-connect) shares.
type NetDialOptions struct {
	// Protocol is raw, telnet or rfc2217. With rfc2217 the device has line
	// settings, break and modem lines, carried to the remote port.
	Protocol string `yaml:"protocol" json:"protocol"`
	// Reconnect, when set, redials a lost connection with exponential
	// backoff while Read and Write wait; unset, a lost connection fails the
	// device.
	Reconnect *NetReconnect `yaml:"reconnect" json:"reconnect"`
	// TLS, when set, speaks TLS to the server.
	TLS *NetClientTLS `yaml:"tls" json:"tls"`
	// ConnectTimeout bounds each dial, TLS handshake included.
	ConnectTimeout chardev.Duration `yaml:"connect_timeout" json:"connect_timeout"`
}

// Validate checks the shared connecting options.
func (o *NetDialOptions) Validate() error {
	if err := netCheckProtocol(o.Protocol); err != nil {
		return err
	}
	if o.Reconnect != nil {
		if err := o.Reconnect.Validate(); err != nil {
			return fmt.Errorf("reconnect: %w", err)
		}
	}
	if o.TLS != nil {
		if err := o.TLS.Validate(); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	return nil
}

func (o *NetDialOptions) timeout() time.Duration {
	if o.ConnectTimeout > 0 {
		return o.ConnectTimeout.D()
	}
	return netDefaultConnectTimeout
}

// TCPConnectSpec configures tcp-connect: one TCP connection to a server,
// such as a remote console server or QEMU's
// `-chardev socket,server=on` on TCP. It can be a frontend or a leg.
type TCPConnectSpec struct {
	// Address is the server's host:port.
	Address string `yaml:"address" json:"address"`

	NetDialOptions `yaml:",inline"`
}

// NewTCPConnectSpec returns a spec with the defaults: raw protocol, a 10s
// connect timeout, no reconnection.
func NewTCPConnectSpec() *TCPConnectSpec {
	return &TCPConnectSpec{NetDialOptions: NetDialOptions{
		Protocol:       ProtocolRaw,
		ConnectTimeout: chardev.Duration(netDefaultConnectTimeout),
	}}
}

// Validate checks the spec; errors name the key.
func (s *TCPConnectSpec) Validate() error {
	if err := netCheckDialAddr("address", s.Address); err != nil {
		return err
	}
	return s.NetDialOptions.Validate()
}

func tcpConnect(ctx context.Context, spec chardev.Spec) (chardev.Chardev, error) {
	s, ok := spec.(*TCPConnectSpec)
	if !ok {
		return nil, fmt.Errorf("tcp-connect: spec is %T, want *TCPConnectSpec", spec)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("tcp-connect: %w", err)
	}
	host, _, _ := net.SplitHostPort(s.Address)
	dial, err := netDialFunc("tcp", s.Address, host, &s.NetDialOptions)
	if err != nil {
		return nil, fmt.Errorf("tcp-connect: %w", err)
	}
	return netOpenConn(ctx, "tcp-connect", s.Address, dial, &s.NetDialOptions)
}

// tcpInherit rebuilds a connection carried by a chartee upgrade.
func tcpInherit(spec chardev.Spec, c chardev.Carried) (chardev.Chardev, error) {
	s, ok := spec.(*TCPConnectSpec)
	if !ok {
		return nil, fmt.Errorf("tcp-connect: spec is %T, want *TCPConnectSpec", spec)
	}
	host, _, _ := net.SplitHostPort(s.Address)
	dial, err := netDialFunc("tcp", s.Address, host, &s.NetDialOptions)
	if err != nil {
		return nil, fmt.Errorf("tcp-connect: %w", err)
	}
	return netInheritConn(c, "tcp-connect", s.Address, dial, &s.NetDialOptions)
}

// netDialFunc returns the function that makes one connection: plain, or
// TLS with the handshake inside the same timeout.
func netDialFunc(network, addr, serverName string, o *NetDialOptions) (func(context.Context) (net.Conn, error), error) {
	nd := &net.Dialer{Timeout: o.timeout()}
	if o.TLS == nil {
		return func(ctx context.Context) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		}, nil
	}
	conf, err := o.TLS.config(serverName)
	if err != nil {
		return nil, err
	}
	td := &tls.Dialer{NetDialer: nd, Config: conf}
	return func(ctx context.Context) (net.Conn, error) {
		return td.DialContext(ctx, network, addr)
	}, nil
}

// netOpenConn dials once, so a wrong address or a refused connection is
// reported by Open, and returns the device: a NetSerialConn for rfc2217, a
// NetConn otherwise.
func netOpenConn(ctx context.Context, typ, addr string, dial func(context.Context) (net.Conn, error), o *NetDialOptions) (chardev.Chardev, error) {
	d := &NetConn{typ: typ, addr: addr, protocol: o.Protocol, dial: dial}
	if o.Reconnect != nil {
		d.backoff = o.Reconnect.backoff()
	}
	d.cond = sync.NewCond(&d.mu)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	stream, err := d.connect(ctx)
	if err != nil {
		d.cancel()
		return nil, err
	}
	d.cur, d.gen = stream, 1
	if o.Protocol == ProtocolRFC2217 {
		sc := &NetSerialConn{NetConn: d}
		d.onConnect = sc.replay
		return sc, nil
	}
	if o.Protocol == ProtocolTelnet {
		return &NetTelnetConn{NetConn: d}, nil
	}
	return d, nil
}

// NetTelnetConn is a NetConn speaking plain telnet: it has no line
// settings or modem lines, but it can send a break (IAC BREAK), which a
// telnet console server — QEMU's telnet chardev, a terminal server — turns
// into a break on its serial line (the magic SysRq prefix on Linux).
type NetTelnetConn struct {
	*NetConn
}

var _ chardev.Breaker = (*NetTelnetConn)(nil)

// Break sends IAC BREAK on the current connection.
func (d *NetTelnetConn) Break(dur time.Duration) error {
	c := d.connected()
	if c == nil {
		return fmt.Errorf("%s %s: break: not connected", d.typ, d.addr)
	}
	b, ok := c.(chardev.Breaker)
	if !ok {
		return fmt.Errorf("%s %s: break: %w", d.typ, d.addr, chardev.ErrUnsupported)
	}
	return b.Break(dur)
}

// NetConn is a connection made by chartee to a stream server (tcp-connect,
// unix-connect). With reconnect configured it survives the server going
// away: a lost connection is redialed in the background with exponential
// backoff and Read and Write wait for the new one; what Write could not
// send on the old connection is sent on the new. Without reconnect a lost
// connection fails the device, for the engine to reopen or drop.
type NetConn struct {
	// wfrozen: a process upgrade cut writes short (carry.go).
	wfrozen   atomic.Bool
	typ, addr string
	protocol  string
	dial      func(context.Context) (net.Conn, error)
	backoff   *chardev.Backoff // nil: no reconnection; owned by the redial loop
	onConnect func(chardev.Chardev)

	ctx    context.Context // ends redialing; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	cond    *sync.Cond      // signalled when cur, err or closed change
	cur     chardev.Chardev // nil while reconnecting
	gen     uint64          // counts connections, so a loss is handled once
	err     error           // terminal failure (no reconnect)
	lastErr error           // last failed redial, for Describe
	closed  bool
}

// Describe names the device, and says when it is reconnecting.
func (d *NetConn) Describe() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	desc := d.typ + " " + d.addr
	if d.cur == nil && !d.closed && d.err == nil {
		desc += " (reconnecting"
		if d.lastErr != nil {
			desc += ": " + d.lastErr.Error()
		}
		desc += ")"
	}
	return desc
}

// connect dials once and puts the protocol on.
func (d *NetConn) connect(ctx context.Context) (chardev.Chardev, error) {
	conn, err := d.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.typ, err)
	}
	stream, err := netWrapClient(conn, d.protocol)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%s %s: %w", d.typ, d.addr, err)
	}
	return stream, nil
}

// current waits for a usable connection and returns it with its
// generation.
func (d *NetConn) current() (chardev.Chardev, uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.cur == nil && d.err == nil && !d.closed {
		d.cond.Wait()
	}
	switch {
	case d.closed:
		return nil, 0, fmt.Errorf("%s %s: %w", d.typ, d.addr, net.ErrClosed)
	case d.err != nil:
		return nil, 0, d.err
	}
	return d.cur, d.gen, nil
}

// connected returns the connection in use, or nil while there is none.
func (d *NetConn) connected() chardev.Chardev {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// lost handles the failure of connection gen: it closes it and starts
// redialing, or fails the device without reconnect. A second report for
// the same connection (Read and Write both failing) is ignored.
func (d *NetConn) lost(gen uint64, cause error) {
	d.mu.Lock()
	if d.closed || d.cur == nil || d.gen != gen {
		d.mu.Unlock()
		return
	}
	dead := d.cur
	d.cur = nil
	if d.backoff == nil {
		if errors.Is(cause, io.EOF) {
			cause = fmt.Errorf("closed by the server: %w", cause)
		}
		d.err = fmt.Errorf("%s %s: %w", d.typ, d.addr, cause)
	} else {
		d.wg.Add(1)
		go d.redialLoop()
	}
	d.cond.Broadcast()
	d.mu.Unlock()
	_ = dead.Close()
}

// redialLoop dials until it connects or the device is closed.
func (d *NetConn) redialLoop() {
	defer d.wg.Done()
	for {
		if !d.backoff.Wait(d.ctx.Done()) {
			return
		}
		stream, err := d.connect(d.ctx)
		d.mu.Lock()
		if err != nil {
			d.lastErr = err
			d.mu.Unlock()
			continue
		}
		if d.closed {
			d.mu.Unlock()
			_ = stream.Close()
			return
		}
		d.cur, d.lastErr = stream, nil
		d.gen++
		d.backoff.Reset()
		d.cond.Broadcast()
		d.mu.Unlock()
		if d.onConnect != nil {
			d.onConnect(stream)
		}
		return
	}
}

// Read reads from the server, waiting through reconnections.
func (d *NetConn) Read(p []byte) (int, error) {
	for {
		c, gen, err := d.current()
		if err != nil {
			return 0, err
		}
		n, err := c.Read(p)
		if n > 0 || err == nil {
			return n, nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, chardev.ErrFrozen // see Freeze
		}
		d.lost(gen, err)
	}
}

// Write sends p to the server. With reconnect, what a lost connection did
// not take is sent on the next one.
func (d *NetConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		c, gen, err := d.current()
		if err != nil {
			return written, err
		}
		n, err := c.Write(p[written:])
		written += n
		if err != nil && d.wfrozen.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return written, fmt.Errorf("%s %s: write: %w", d.typ, d.addr, chardev.ErrFrozen)
		}
		if err != nil {
			d.lost(gen, err)
		}
	}
	return written, nil
}

// Close closes the connection and stops redialing. A blocked Read or Write
// returns an error wrapping net.ErrClosed.
func (d *NetConn) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	cur := d.cur
	d.cur = nil
	d.cond.Broadcast()
	d.mu.Unlock()
	d.cancel()
	var err error
	if cur != nil {
		if err = cur.Close(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	}
	d.wg.Wait()
	if err != nil {
		return fmt.Errorf("%s %s: close: %w", d.typ, d.addr, err)
	}
	return nil
}

// NetSerialConn is a NetConn speaking RFC 2217: a remote serial port. Line
// settings and modem lines set while reconnecting are remembered and
// applied to the next connection, and so are the last ones set before a
// loss.
type NetSerialConn struct {
	*NetConn

	smu  sync.Mutex
	line *chardev.LineSettings
	dtr  *bool
	rts  *bool
	// settled is what a connection carried from another process already
	// has in force: setting it once more (the engine replaying its line
	// state after the handover) sends nothing. Each is used up by the
	// first set of its kind.
	settled struct {
		line     *chardev.LineSettings
		dtr, rts *bool
	}
}

// settle records what the carried connection c has in force: what
// chartee set, or else what the server reported.
func (d *NetSerialConn) settle(c chardev.LineController) {
	d.smu.Lock()
	defer d.smu.Unlock()
	d.settled.line = d.line
	if d.settled.line == nil {
		if l, err := c.LineSettings(); err == nil {
			d.settled.line = &l
		}
	}
	d.settled.dtr, d.settled.rts = d.dtr, d.rts
}

// inForce reports whether l is what a carried connection already has,
// using that knowledge up.
func (d *NetSerialConn) inForce(l chardev.LineSettings) bool {
	s := d.settled.line
	d.settled.line = nil
	if s == nil {
		return false
	}
	if l.Baud == 0 {
		l.Baud = s.Baud
	}
	if l.DataBits == 0 {
		l.DataBits = s.DataBits
	}
	return l == *s
}

func (d *NetSerialConn) notConnected() error {
	return fmt.Errorf("%s %s: not connected (reconnecting)", d.typ, d.addr)
}

func (d *NetSerialConn) unsupported(what string) error {
	return fmt.Errorf("%s %s: %s: %w", d.typ, d.addr, what, chardev.ErrUnsupported)
}

// SetLineSettings sets the remote port's line; while reconnecting it is
// remembered and applied on connect.
func (d *NetSerialConn) SetLineSettings(l chardev.LineSettings) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("%s %s: %w", d.typ, d.addr, err)
	}
	d.smu.Lock()
	d.line = &l
	same := d.inForce(l)
	d.smu.Unlock()
	c := d.connected()
	if c == nil || same {
		return nil
	}
	lc, ok := c.(chardev.LineController)
	if !ok {
		return d.unsupported("line settings")
	}
	return lc.SetLineSettings(l)
}

// LineSettings returns the remote port's line as last reported.
func (d *NetSerialConn) LineSettings() (chardev.LineSettings, error) {
	c := d.connected()
	if c == nil {
		d.smu.Lock()
		defer d.smu.Unlock()
		if d.line != nil {
			return *d.line, nil
		}
		return chardev.LineSettings{}, d.notConnected()
	}
	lc, ok := c.(chardev.LineController)
	if !ok {
		return chardev.LineSettings{}, d.unsupported("line settings")
	}
	return lc.LineSettings()
}

// Break sends a break on the remote port.
func (d *NetSerialConn) Break(dur time.Duration) error {
	c := d.connected()
	if c == nil {
		return d.notConnected()
	}
	b, ok := c.(chardev.Breaker)
	if !ok {
		return d.unsupported("break")
	}
	return b.Break(dur)
}

// SetDTR drives the remote port's DTR; remembered while reconnecting.
func (d *NetSerialConn) SetDTR(on bool) error {
	return d.setModemLine(&d.dtr, &d.settled.dtr, on, chardev.ModemController.SetDTR)
}

// SetRTS drives the remote port's RTS; remembered while reconnecting.
func (d *NetSerialConn) SetRTS(on bool) error {
	return d.setModemLine(&d.rts, &d.settled.rts, on, chardev.ModemController.SetRTS)
}

// setModemLine remembers a modem line's state in *line (replayed on
// reconnect) and drives it on the current connection, if any, unless
// *settled says a carried connection has it so already.
func (d *NetSerialConn) setModemLine(line, settled **bool, on bool, set func(chardev.ModemController, bool) error) error {
	d.smu.Lock()
	*line = &on
	same := *settled != nil && **settled == on
	*settled = nil
	d.smu.Unlock()
	c := d.connected()
	if c == nil || same {
		return nil
	}
	mc, ok := c.(chardev.ModemController)
	if !ok {
		return d.unsupported("modem lines")
	}
	return set(mc, on)
}

// ModemStatus reads the remote port's modem lines.
func (d *NetSerialConn) ModemStatus() (chardev.ModemStatus, error) {
	c := d.connected()
	if c == nil {
		return chardev.ModemStatus{}, d.notConnected()
	}
	mc, ok := c.(chardev.ModemController)
	if !ok {
		return chardev.ModemStatus{}, d.unsupported("modem lines")
	}
	return mc.ModemStatus()
}

// replay applies the remembered line settings and modem lines to a new
// connection. It runs after the connection is published, outside the
// NetConn's lock, so a protocol that waits for the server's answer can
// have it read.
func (d *NetSerialConn) replay(c chardev.Chardev) {
	d.smu.Lock()
	line, dtr, rts := d.line, d.dtr, d.rts
	d.smu.Unlock()
	if lc, ok := c.(chardev.LineController); ok && line != nil {
		_ = lc.SetLineSettings(*line)
	}
	if mc, ok := c.(chardev.ModemController); ok {
		if dtr != nil {
			_ = mc.SetDTR(*dtr)
		}
		if rts != nil {
			_ = mc.SetRTS(*rts)
		}
	}
}
