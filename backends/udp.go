package backends

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/pion/transport/v4/udp"

	"chartee/chardev"
)

func init() {
	chardev.Register("udp", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewUDPSpec() },
		Listen:  udpListen,
		// With `remote` a udp spec is one stream and can be a frontend.
		Open:  opener("udp", OpenUDP),
		Input: true,
		// Datagrams have no connection to keep, but the per-peer legs
		// and their idle timers are not exported yet.
		NotCarried: "its socket and per-peer legs are not carried yet",
	})
}

// Interface guards.
var (
	_ chardev.Spec    = (*UDPSpec)(nil)
	_ chardev.Claimer = (*UDPSpec)(nil)
	_ chardev.Source  = (*udpRemoteSource)(nil)
	_ net.Conn        = (*udpDatagramConn)(nil)
)

// udpDefaultMaxDatagram keeps a datagram inside one Ethernet frame with
// room for IP, UDP and tunnel headers.
const udpDefaultMaxDatagram = 1400

// udpMaxPayload is the largest UDP payload over IPv4.
const udpMaxPayload = 65507

// UDPSpec configures udp. It has two forms, told apart by `remote`:
//
//   - listen only: a source. Every remote peer that sends a datagram to
//     the listen address becomes a leg of its own, until it is closed (an
//     idle_timeout suits UDP, which has no hang-up: a peer closed that way
//     comes back as a new leg with its next datagram).
//   - remote (and optionally listen, the local address to bind): a single
//     stream with that fixed peer. Datagrams from anyone else are ignored.
//
// The registry gives a type either Open or Listen, so udp is registered as
// a source and the remote form is a source that yields its one device once;
// OpenUDP opens the remote form as a plain device for callers that want one
// (a frontend).
//
// Each Write goes out as one datagram, or several of at most max_datagram
// bytes; each datagram read is delivered whole, in order, to Reads.
type UDPSpec struct {
	// Listen is the local host:port: what a source listens on, or the
	// address a remote stream binds to.
	Listen string `yaml:"listen" json:"listen"`
	// Remote is the fixed peer's host:port.
	Remote string `yaml:"remote" json:"remote"`
	// MaxDatagram is the largest datagram sent; longer writes are split.
	MaxDatagram chardev.Size `yaml:"max_datagram" json:"max_datagram"`
	// IdleTimeout forgets a listening peer quiet that long both ways; 0
	// never does.
	IdleTimeout chardev.Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// MaxClients caps the listening peers; 0 is unlimited.
	MaxClients int `yaml:"max_clients" json:"max_clients"`
	// OnFull is reject (the new peer's datagrams are dropped) or
	// kick-oldest.
	OnFull string `yaml:"on_full" json:"on_full"`
	// Allow lists the peer networks (CIDRs or addresses) a listening
	// source accepts datagrams from; empty allows all.
	Allow []string `yaml:"allow" json:"allow"`
}

// NewUDPSpec returns a spec with the defaults: 1400-byte datagrams, reject
// when full.
func NewUDPSpec() *UDPSpec {
	return &UDPSpec{MaxDatagram: udpDefaultMaxDatagram, OnFull: OnFullReject}
}

// SingleStream reports whether the spec is the remote form: one device
// rather than a source of legs.
func (s *UDPSpec) SingleStream() bool { return s.Remote != "" }

// Validate checks the spec; errors name the key.
func (s *UDPSpec) Validate() error {
	if s.Listen == "" && s.Remote == "" {
		return errors.New("listen or remote: one is required")
	}
	if s.Listen != "" {
		if err := netCheckListenAddr("listen", s.Listen); err != nil {
			return err
		}
	}
	if s.Remote != "" {
		if err := netCheckDialAddr("remote", s.Remote); err != nil {
			return err
		}
	}
	if s.MaxDatagram < 0 || s.MaxDatagram > udpMaxPayload {
		return fmt.Errorf("max_datagram %s: want 1 to %d bytes", s.MaxDatagram, udpMaxPayload)
	}
	if s.MaxClients < 0 {
		return fmt.Errorf("max_clients %d: must not be negative", s.MaxClients)
	}
	if err := netCheckOnFull(s.OnFull); err != nil {
		return err
	}
	_, err := netParseAllow(s.Allow)
	return err
}

// Claims is the local address bound, in either form: a listener's, or
// the one a remote stream sends from.
func (s *UDPSpec) Claims() []chardev.Claim {
	if s.Listen == "" {
		return nil
	}
	return []chardev.Claim{chardev.Bind("udp", "listen", s.Listen)}
}

func (s *UDPSpec) maxDatagram() int {
	if s.MaxDatagram <= 0 {
		return udpDefaultMaxDatagram
	}
	return int(s.MaxDatagram)
}

func udpSpecOf(spec chardev.Spec) (*UDPSpec, error) {
	s, ok := spec.(*UDPSpec)
	if !ok {
		return nil, fmt.Errorf("udp: spec is %T, want *UDPSpec", spec)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	return s, nil
}

func udpListen(ctx context.Context, spec chardev.Spec) (chardev.Source, error) {
	s, err := udpSpecOf(spec)
	if err != nil {
		return nil, err
	}
	if s.SingleStream() {
		dev, err := OpenUDP(ctx, s)
		if err != nil {
			return nil, err
		}
		return &udpRemoteSource{dev: dev, addr: s.Remote, done: make(chan struct{})}, nil
	}
	laddr, err := net.ResolveUDPAddr("udp", s.Listen)
	if err != nil {
		return nil, fmt.Errorf("udp: listen: %w", err)
	}
	lc := udp.ListenConfig{}
	ln, err := lc.Listen("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	allow, _ := netParseAllow(s.Allow)
	maxDatagram := s.maxDatagram()
	return newNetSource(ln, netSourceConfig{
		typ:         "udp",
		idle:        s.IdleTimeout.D(),
		maxClients:  s.MaxClients,
		kickOldest:  s.OnFull == OnFullKickOldest,
		allow:       allow,
		quietReject: true,
		wrapConn: func(c net.Conn) net.Conn {
			return newUDPDatagramConn(c, maxDatagram, false)
		},
	}), nil
}

// OpenUDP opens the remote form of udp as one device: a UDP socket
// connected to spec.Remote, bound to spec.Listen when given.
func OpenUDP(ctx context.Context, spec *UDPSpec) (chardev.Chardev, error) {
	s, err := udpSpecOf(spec)
	if err != nil {
		return nil, err
	}
	if s.Remote == "" {
		return nil, errors.New("udp: remote: required for a single stream")
	}
	var d net.Dialer
	if s.Listen != "" {
		laddr, err := net.ResolveUDPAddr("udp", s.Listen)
		if err != nil {
			return nil, fmt.Errorf("udp: listen: %w", err)
		}
		d.LocalAddr = laddr
	}
	conn, err := d.DialContext(ctx, "udp", s.Remote)
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	// A stand-alone source record gives the device its name and type; it
	// has no listener and is never accepted from.
	src := &NetSource{cfg: netSourceConfig{typ: "udp"}, addr: conn.LocalAddr().String(), done: make(chan struct{})}
	dc := newUDPDatagramConn(conn, s.maxDatagram(), true)
	return newNetClient(src, dc, conn.RemoteAddr().String()), nil
}

// udpRemoteSource is the remote form of udp seen as a source: its one
// device is yielded by the first Accept; later Accepts wait for Close.
type udpRemoteSource struct {
	addr      string
	done      chan struct{}
	closeOnce sync.Once

	mu  sync.Mutex
	dev chardev.Chardev // nil once handed out
}

func (s *udpRemoteSource) Addr() string { return s.addr }

func (s *udpRemoteSource) Accept() (chardev.Chardev, error) {
	s.mu.Lock()
	dev := s.dev
	s.dev = nil
	s.mu.Unlock()
	if dev != nil {
		return dev, nil
	}
	<-s.done
	return nil, fmt.Errorf("udp %s: %w", s.addr, net.ErrClosed)
}

// Close ends the source. The device, once accepted, is the engine's and
// stays open; one never accepted is closed here.
func (s *udpRemoteSource) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	dev := s.dev
	s.dev = nil
	s.mu.Unlock()
	if dev != nil {
		return dev.Close()
	}
	return nil
}

// udpDatagramConn gives a datagram connection the byte-stream behaviour a
// Chardev needs: a Read shorter than the datagram gets the rest on the
// next Reads instead of losing it, and a Write longer than maxDatagram is
// sent as several datagrams.
type udpDatagramConn struct {
	net.Conn
	maxDatagram int
	// connected: a socket connected to one peer, which reports an earlier
	// datagram's ICMP port-unreachable as ECONNREFUSED on the next call.
	// A peer that is not up yet is not a failure of the device; those
	// errors are skipped.
	connected bool

	rmu     sync.Mutex
	buf     []byte
	pending []byte
}

func newUDPDatagramConn(c net.Conn, maxDatagram int, connected bool) *udpDatagramConn {
	return &udpDatagramConn{Conn: c, maxDatagram: maxDatagram, connected: connected, buf: make([]byte, 1<<16)}
}

// Read returns bytes of the current datagram, reading the next when it is
// used up.
func (c *udpDatagramConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.pending) == 0 {
		n, err := c.Conn.Read(c.buf)
		if err != nil {
			if c.connected && errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			return 0, err
		}
		c.pending = c.buf[:n]
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write sends p as datagrams of at most maxDatagram bytes.
func (c *udpDatagramConn) Write(p []byte) (int, error) {
	sent := 0
	for sent < len(p) {
		end := min(sent+c.maxDatagram, len(p))
		_, err := c.Conn.Write(p[sent:end])
		if err != nil && !(c.connected && errors.Is(err, syscall.ECONNREFUSED)) {
			return sent, err
		}
		sent = end
	}
	return sent, nil
}
