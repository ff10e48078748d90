package backends

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"chartee/backends/escape"
	"chartee/backends/internal/rawio"
	"chartee/chardev"
)

func init() {
	chardev.Register("tcp-listen", chardev.Factory{
		NewSpec:       func() chardev.Spec { return NewTCPListenSpec() },
		Listen:        tcpListen,
		InheritSource: tcpInheritListen,
		Input:         true,
	})
}

// Interface guards.
var (
	_ chardev.Spec         = (*TCPListenSpec)(nil)
	_ chardev.Claimer      = (*TCPListenSpec)(nil)
	_ chardev.Source       = (*NetSource)(nil)
	_ chardev.Chardev      = (*NetClient)(nil)
	_ chardev.Peer         = (*NetClient)(nil)
	_ chardev.Describer    = (*NetClient)(nil)
	_ chardev.ControlAware = (*NetClient)(nil)
	_ chardev.LineObserver = (*NetClient)(nil)
	_ chardev.ReadWaiter   = (*NetClient)(nil)
)

// TCPListenSpec configures tcp-listen: a TCP port where every client that
// connects becomes a leg. Unlike a QEMU socket chardev, which serves one
// client at a time, it serves many, up to MaxClients.
type TCPListenSpec struct {
	// Listen is host:port. The host is required: listening on every
	// address is written 0.0.0.0 or [::], never implied.
	Listen string `yaml:"listen" json:"listen"`
	// Allow lists the client networks (CIDRs or single addresses) that may
	// connect; others are closed at once and counted. Empty allows all.
	Allow []string `yaml:"allow" json:"allow"`

	NetServeOptions `yaml:",inline"`
}

// NewTCPListenSpec returns a spec with the defaults: raw protocol, reject
// when full.
func NewTCPListenSpec() *TCPListenSpec {
	return &TCPListenSpec{NetServeOptions: NetServeOptions{Protocol: ProtocolRaw, OnFull: OnFullReject}}
}

// Validate checks the spec; errors name the key.
func (s *TCPListenSpec) Validate() error {
	if err := netCheckListenAddr("listen", s.Listen); err != nil {
		return err
	}
	if _, err := netParseAllow(s.Allow); err != nil {
		return err
	}
	return s.NetServeOptions.Validate()
}

// Claims is the address the listener binds, encrypted when tls is set.
func (s *TCPListenSpec) Claims() []chardev.Claim {
	c := chardev.Bind("tcp", "listen", s.Listen)
	c.CanEncrypt, c.Encrypted = true, s.TLS != nil
	return []chardev.Claim{c}
}

func tcpListen(ctx context.Context, spec chardev.Spec) (chardev.Source, error) {
	s, ok := spec.(*TCPListenSpec)
	if !ok {
		return nil, fmt.Errorf("tcp-listen: spec is %T, want *TCPListenSpec", spec)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("tcp-listen: %w", err)
	}
	allow, _ := netParseAllow(s.Allow)
	cfg, err := newNetSourceConfig("tcp-listen", &s.NetServeOptions)
	if err != nil {
		return nil, err
	}
	cfg.allow = allow
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Listen)
	if err != nil {
		return nil, fmt.Errorf("tcp-listen: %w", err)
	}
	return newNetSource(ln, cfg), nil
}

// tcpInheritListen rebuilds a listener carried by a chartee upgrade.
func tcpInheritListen(spec chardev.Spec, c chardev.Carried) (chardev.Source, error) {
	s, ok := spec.(*TCPListenSpec)
	if !ok {
		return nil, fmt.Errorf("tcp-listen: spec is %T, want *TCPListenSpec", spec)
	}
	allow, _ := netParseAllow(s.Allow)
	cfg, err := newNetSourceConfig("tcp-listen", &s.NetServeOptions)
	if err != nil {
		return nil, err
	}
	cfg.allow = allow
	return netInheritSource(c, cfg)
}

// netSourceConfig is how a NetSource treats its clients, resolved from a
// spec.
type netSourceConfig struct {
	typ        string // backend type name, the prefix of every error
	serve      netServeConfig
	tls        *tls.Config
	idle       time.Duration
	maxClients int
	kickOldest bool
	allow      netAllowList
	// quietReject closes refused clients without the notice line (TLS,
	// where plain text is noise, and UDP, where a reply to a forged
	// source address is an amplifier).
	quietReject bool
	// wrapConn, when set, is applied to each accepted connection (udp's
	// datagram framing).
	wrapConn func(net.Conn) net.Conn
	// peerName names a client; nil uses the remote address.
	peerName func(conn net.Conn, id uint64) string
}

func newNetSourceConfig(typ string, o *NetServeOptions) (netSourceConfig, error) {
	key, err := netEscapeKey(o.Escape, o.Protocol)
	if err != nil {
		return netSourceConfig{}, fmt.Errorf("%s: %w", typ, err)
	}
	cfg := netSourceConfig{
		typ: typ,
		serve: netServeConfig{
			protocol: o.Protocol,
			control:  o.Control,
			banner:   o.Banner,
			escape:   key,
			notices:  netNotices(o),
		},
		idle:       o.IdleTimeout.D(),
		maxClients: o.MaxClients,
		kickOldest: o.OnFull == OnFullKickOldest,
	}
	if o.TLS != nil {
		conf, err := o.TLS.config()
		if err != nil {
			return netSourceConfig{}, fmt.Errorf("%s: %w", typ, err)
		}
		cfg.tls = conf
		cfg.quietReject = true
	}
	return cfg, nil
}

// NetSource is a listening socket whose every accepted client is a device,
// and so a leg of the tee. tcp-listen, unix-listen and the listening form
// of udp are NetSources: they differ only in the listener and in how a
// client is named. The socket is bound when the source is made; the engine
// runs the accept loop by calling Accept.
type NetSource struct {
	cfg  netSourceConfig
	ln   net.Listener
	addr string
	done chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	clients []*NetClient // oldest first
	nextID  uint64

	accepted, refusedFull, refusedAllow, kicked, idleClosed atomic.Uint64
}

// NetSourceStats counts what a NetSource did with its clients.
type NetSourceStats struct {
	Clients      int    `json:"clients"`       // connected now
	Accepted     uint64 `json:"accepted"`      // became legs
	RefusedFull  uint64 `json:"refused_full"`  // turned away by max_clients
	RefusedAllow uint64 `json:"refused_allow"` // outside the allow list
	Kicked       uint64 `json:"kicked"`        // closed to make room (kick-oldest)
	IdleClosed   uint64 `json:"idle_closed"`   // closed by idle_timeout
}

func newNetSource(ln net.Listener, cfg netSourceConfig) *NetSource {
	return &NetSource{cfg: cfg, ln: ln, addr: ln.Addr().String(), done: make(chan struct{})}
}

// Addr is the address the source listens on, with the real port when the
// config asked for port 0.
func (s *NetSource) Addr() string { return s.addr }

// Describe names the source for status and logs.
func (s *NetSource) Describe() string { return s.cfg.typ + " " + s.addr }

// Stats returns the source's counters.
func (s *NetSource) Stats() NetSourceStats {
	s.mu.Lock()
	n := len(s.clients)
	s.mu.Unlock()
	return NetSourceStats{
		Clients:      n,
		Accepted:     s.accepted.Load(),
		RefusedFull:  s.refusedFull.Load(),
		RefusedAllow: s.refusedAllow.Load(),
		Kicked:       s.kicked.Load(),
		IdleClosed:   s.idleClosed.Load(),
	}
}

// Accept waits for the next admitted client. Clients outside the allow
// list, and clients beyond max_clients under the reject policy, are closed
// here and never returned. After Close it returns an error wrapping
// net.ErrClosed.
func (s *NetSource) Accept() (chardev.Chardev, error) {
	bo := chardev.AcceptBackoff()
	for {
		conn, err := s.ln.Accept()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, chardev.ErrFrozen // see Freeze
		}
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil, fmt.Errorf("%s %s: %w", s.cfg.typ, s.addr, net.ErrClosed)
			}
			if !netTemporaryAcceptError(err) {
				return nil, fmt.Errorf("%s %s: accept: %w", s.cfg.typ, s.addr, err)
			}
			// Out of file descriptors or a client that gave up: wait a
			// little instead of spinning.
			bo.Wait(s.done)
			continue
		}
		bo.Reset()
		if !s.cfg.allow.allows(conn.RemoteAddr()) {
			s.refusedAllow.Add(1)
			_ = conn.Close()
			continue
		}
		if c := s.admit(conn); c != nil {
			if s.cfg.serve.notices {
				return netNoticeClient{c}, nil
			}
			return c, nil
		}
		s.refuse(conn)
	}
}

// netTemporaryAcceptError reports accept errors that say nothing about the
// listener itself.
func netTemporaryAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM)
}

// admit makes conn a client if there is room, making room under
// kick-oldest. It returns nil when the client must be refused.
func (s *NetSource) admit(conn net.Conn) *NetClient {
	var victim *NetClient
	why := "on_full: kick-oldest"
	s.mu.Lock()
	if s.cfg.maxClients > 0 && len(s.clients) >= s.cfg.maxClients {
		// A TLS client that has not finished its handshake has not yet
		// shown it can talk: it gives up its slot first, whatever the
		// policy, so that silent connections cannot keep every slot for
		// the whole handshake timeout.
		i := -1
		if s.cfg.tls != nil {
			i = slices.IndexFunc(s.clients, func(c *NetClient) bool { return !c.ready.Load() })
			why = "its TLS handshake was still pending when the listener was full"
		}
		if i < 0 {
			if !s.cfg.kickOldest {
				s.mu.Unlock()
				return nil
			}
			i, why = 0, "on_full: kick-oldest"
		}
		victim = s.clients[i]
		s.clients = slices.Delete(s.clients, i, i+1)
	}
	s.nextID++
	c := s.newClient(conn, s.nextID)
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	s.accepted.Add(1)
	if victim != nil {
		s.kicked.Add(1)
		victim.kill(fmt.Errorf("closed to make room for %s (%s)", c.peer, why))
	}
	return c
}

func (s *NetSource) newClient(conn net.Conn, id uint64) *NetClient {
	if s.cfg.wrapConn != nil {
		conn = s.cfg.wrapConn(conn)
	}
	peer := conn.RemoteAddr().String()
	if s.cfg.peerName != nil {
		peer = s.cfg.peerName(conn, id)
	}
	if s.cfg.tls != nil {
		conn = tls.Server(conn, s.cfg.tls)
	}
	return newNetClient(s, conn, peer)
}

// refuse turns away a client for lack of room, telling it why where that
// is safe to do.
func (s *NetSource) refuse(conn net.Conn) {
	s.refusedFull.Add(1)
	if !s.cfg.quietReject {
		// A fresh socket's send buffer is empty, so this does not block;
		// the deadline is there in case it ever would.
		_ = conn.SetWriteDeadline(time.Now().Add(netRejectWriteTimeout))
		_, _ = io.WriteString(conn, netRejectLine)
	}
	_ = conn.Close()
}

// remove forgets a closed client.
func (s *NetSource) remove(c *NetClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.clients, c); i >= 0 {
		s.clients = slices.Delete(s.clients, i, i+1)
	}
}

func (s *NetSource) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Close stops listening. Clients already accepted stay connected and keep
// working; each goes away when its device is closed.
func (s *NetSource) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("%s %s: %w", s.cfg.typ, s.addr, err)
		}
	})
	return s.closeErr
}

// netEpoch is the origin of the monotonic activity clock of clients.
var netEpoch = time.Now()

func netNow() int64 { return int64(time.Since(netEpoch)) }

// NetClient is one accepted client of a NetSource: a leg's device. The TLS
// handshake, the protocol negotiation and the banner happen on its first
// Read or Write, not in Accept, so a slow client never holds up the accept
// loop.
//
// When the source closes a client itself (kick-oldest, idle timeout), Read
// and Write return an error that says why, so the engine drops the leg.
type NetClient struct {
	// wfrozen: a process upgrade cut writes short (carry.go).
	wfrozen atomic.Bool
	src     *NetSource
	conn    net.Conn // the accepted connection, TLS-wrapped when configured
	peer    string

	startOnce sync.Once
	startErr  error
	// ready is set once the client's start (TLS handshake, protocol
	// layer) has succeeded.
	ready atomic.Bool

	idle       time.Duration
	lastActive atomic.Int64 // netNow at the last byte either way

	// raw is the socket itself when the protocol layer is nothing (raw,
	// no TLS, no escape): TryWrite writes to it without waiting. Set
	// before ready.
	// It is read with raw system calls too (package rawio).
	raw *rawio.FD

	mu     sync.Mutex
	stream chardev.Chardev // protocol layer over conn; nil until started
	timer  *time.Timer     // idle check; nil without idle_timeout
	ctl    chardev.Control
	line   *chardev.LineSettings
	closed bool
	// rfrozen: Freeze stopped reads, so the reader must read (and
	// park) instead of waiting (WaitReadable).
	rfrozen bool
	killed  error // why the source closed the client
	// rwait is the token of the reader's pending WaitReadable (stale
	// once it fired; cancelling a stale token does nothing).
	rwait uint64

	closeOnce sync.Once
	closeErr  error
}

func newNetClient(src *NetSource, conn net.Conn, peer string) *NetClient {
	c := &NetClient{src: src, conn: conn, peer: peer, idle: src.cfg.idle}
	if c.idle > 0 {
		c.touch()
		c.timer = time.AfterFunc(math.MaxInt64, c.checkIdle)
		c.timer.Reset(c.idle)
	}
	return c
}

// netNoticeClient is a client whose protocol shows notices to a person
// (telnet): only those are chardev.Noticers, so the engine never sends a
// notice into a raw stream.
type netNoticeClient struct{ *NetClient }

var _ chardev.Noticer = netNoticeClient{}

// Notice shows text to the client once its protocol layer is up.
func (c netNoticeClient) Notice(text string) {
	stream, err := c.started()
	if err != nil {
		return
	}
	if n, ok := stream.(chardev.Noticer); ok {
		n.Notice(text)
	}
}

// EscapeKey is the client's escape key as typed, or "" (chardev.Escaper).
func (c *NetClient) EscapeKey() string {
	if k := c.src.cfg.serve.escape; k != 0 {
		return escape.KeyName(k)
	}
	return ""
}

// Peer names the client: its remote address, or for a unix socket its
// process.
func (c *NetClient) Peer() string { return c.peer }

// Describe names the client for status and logs.
func (c *NetClient) Describe() string {
	return fmt.Sprintf("%s %s client %s", c.src.cfg.typ, c.src.addr, c.peer)
}

// Read reads what the client typed, after the protocol layer.
func (c *NetClient) Read(p []byte) (int, error) {
	stream, err := c.started()
	if err != nil {
		return 0, err
	}
	var n int
	if c.raw != nil {
		n, err = c.raw.Read(p)
	} else {
		n, err = stream.Read(p)
	}
	if n > 0 {
		c.touch()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, chardev.ErrFrozen // see Freeze
	}
	if err != nil {
		err = c.streamError(err)
	}
	return n, err
}

// Write sends p to the client through the protocol layer.
func (c *NetClient) Write(p []byte) (int, error) {
	stream, err := c.started()
	if err != nil {
		return 0, err
	}
	n, err := stream.Write(p)
	return n, c.wrote(int64(n), err)
}

var _ chardev.BuffersWriter = (*NetClient)(nil)

// WriteBuffers sends a batch of output to the client
// (chardev.BuffersWriter): a raw client's socket takes it in one writev(2);
// through a protocol layer it is a Write per buffer.
func (c *NetClient) WriteBuffers(bufs [][]byte) (int64, error) {
	stream, err := c.started()
	if err != nil {
		return 0, err
	}
	nb := net.Buffers(bufs)
	n, err := nb.WriteTo(stream)
	return n, c.wrote(n, err)
}

// wrote is the bookkeeping after a write of n bytes that ended with err:
// the client was active, and the error says which client failed, or that
// a process upgrade cut the write short (chardev.ErrFrozen).
func (c *NetClient) wrote(n int64, err error) error {
	if n > 0 {
		c.touch()
	}
	if err != nil && c.wfrozen.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s: client %s: write: %w", c.src.cfg.typ, c.peer, chardev.ErrFrozen)
	}
	if err != nil {
		err = c.streamError(err)
	}
	return err
}

var _ chardev.NonBlockingWriter = (*NetClient)(nil)

// errNoTryWrite: this client's stream has a protocol layer (TLS, telnet,
// escape) between the engine and the socket.
var errNoTryWrite = fmt.Errorf("tcp-listen: non-blocking write: %w", chardev.ErrUnsupported)

// TryWrite writes what the client's socket takes at once, without waiting
// (chardev.NonBlockingWriter), for a raw client whose stream is the socket
// itself; with a protocol layer it reports ErrUnsupported. Before the
// client has started it writes nothing.
func (c *NetClient) TryWrite(p []byte) (int, error) {
	if !c.ready.Load() {
		return 0, nil
	}
	if c.raw == nil {
		return 0, errNoTryWrite
	}
	n, err := c.raw.TryWrite(p)
	if n > 0 {
		c.touch()
	}
	if err != nil {
		return n, c.streamError(err)
	}
	return n, nil
}

// WaitReadable calls ready, from the read poller's goroutine, once the
// client has typed, hung up or failed, or when it is closed or frozen
// (chardev.ReadWaiter): the leg keeps no goroutine waiting in Read while
// the client is idle. Only a raw client (no TLS, telnet or escape layer,
// which buffer what they read) can wait this way.
func (c *NetClient) WaitReadable(ready func()) bool {
	if _, err := c.started(); err != nil || c.raw == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.rfrozen {
		return false
	}
	tok, ok := readPoll.add(c.raw.RawConn(), ready)
	if ok {
		c.rwait = tok
	}
	return ok
}

// wakeReader ends a pending WaitReadable at once: the reader reads, and
// finds the client closed or frozen.
func (c *NetClient) wakeReader() {
	c.mu.Lock()
	tok := c.rwait
	c.rwait = 0
	c.mu.Unlock()
	if ready := readPoll.cancel(tok); ready != nil {
		ready()
	}
}

// started runs the client's start once and returns its protocol stream.
func (c *NetClient) started() (chardev.Chardev, error) {
	c.startOnce.Do(c.start)
	return c.stream, c.startErr
}

// start completes the TLS handshake, puts the protocol layer on and sends
// the banner.
func (c *NetClient) start() {
	if tc, ok := c.conn.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(netTLSHandshakeTimeout))
		err := tc.Handshake()
		_ = tc.SetDeadline(time.Time{})
		if err != nil {
			c.startErr = c.streamError(fmt.Errorf("tls handshake: %w", err))
			_ = c.Close()
			return
		}
	}
	stream, err := netWrapServer(c.conn, c.src.cfg.serve)
	if err != nil {
		c.startErr = c.streamError(err)
		_ = c.Close()
		return
	}
	c.install(stream)
}

// install makes stream, the protocol layer, the client's: start's last
// step, and all of an adopted client's start.
func (c *NetClient) install(stream chardev.Chardev) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = stream.Close()
		c.startErr = c.streamError(net.ErrClosed)
		return
	}
	c.stream = stream
	if sc, ok := stream.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.raw = rawio.New(rc)
		}
	}
	c.ready.Store(true)
	ctl, line := c.ctl, c.line
	c.mu.Unlock()
	if ca, ok := stream.(chardev.ControlAware); ok && ctl != nil {
		ca.SetControl(ctl)
	}
	if lo, ok := stream.(chardev.LineObserver); ok && line != nil {
		lo.LineChanged(*line)
	}
}

// SetControl hands the engine's control handle to the protocol layer
// (telnet commands, RFC 2217, escape commands act through it).
func (c *NetClient) SetControl(ctl chardev.Control) {
	c.mu.Lock()
	c.ctl = ctl
	stream := c.stream
	c.mu.Unlock()
	if ca, ok := stream.(chardev.ControlAware); ok {
		ca.SetControl(ctl)
	}
}

// LineChanged passes a line state change to the protocol layer (RFC 2217
// notifications). It does not block.
func (c *NetClient) LineChanged(l chardev.LineSettings) {
	c.mu.Lock()
	c.line = &l
	stream := c.stream
	c.mu.Unlock()
	if lo, ok := stream.(chardev.LineObserver); ok {
		lo.LineChanged(l)
	}
}

// streamError prefixes err with the backend type and client, and says why
// when the source closed the client itself. io.EOF, a client that left, is
// returned as it is.
func (c *NetClient) streamError(err error) error {
	c.mu.Lock()
	killed := c.killed
	c.mu.Unlock()
	if killed != nil {
		return fmt.Errorf("%s: client %s: %w", c.src.cfg.typ, c.peer, killed)
	}
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return fmt.Errorf("%s: client %s: %w", c.src.cfg.typ, c.peer, err)
}

func (c *NetClient) touch() {
	if c.idle > 0 {
		c.lastActive.Store(netNow())
	}
}

// checkIdle runs from the idle timer: it closes a client quiet for the
// whole timeout and otherwise re-arms for the rest of it.
func (c *NetClient) checkIdle() {
	quiet := time.Duration(netNow() - c.lastActive.Load())
	if quiet < c.idle {
		c.mu.Lock()
		if !c.closed {
			c.timer.Reset(c.idle - quiet)
		}
		c.mu.Unlock()
		return
	}
	c.src.idleClosed.Add(1)
	c.kill(fmt.Errorf("closed after %s idle (idle_timeout)", c.idle))
}

// kill closes the client on the source's behalf; reason is what its Read
// and Write report from then on.
func (c *NetClient) kill(reason error) {
	c.mu.Lock()
	if c.killed == nil && !c.closed {
		c.killed = reason
	}
	c.mu.Unlock()
	_ = c.Close()
}

// Close disconnects the client. It is safe to call more than once and
// from any goroutine; a blocked Read or Write returns.
func (c *NetClient) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		stream := c.stream
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		c.wakeReader() // before the socket closes: the wait is deregistered through it
		var err error
		if stream != nil {
			err = stream.Close()
		}
		if cerr := c.conn.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if err != nil {
			c.closeErr = fmt.Errorf("%s: client %s: close: %w", c.src.cfg.typ, c.peer, err)
		}
		c.src.remove(c)
	})
	return c.closeErr
}
