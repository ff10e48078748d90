// Package sshd is chartee's SSH service: one port for every console.
//
// The SSH user name selects the console ("alice:console0"; plain "alice"
// gets a menu of the consoles alice may see). People authenticate with the
// keys (or password hash) of the access configuration (package access);
// each session is admitted by the access.Gate, which enforces roles and
// session limits, and joins its tee as a leg of the service backend "ssh"
// (tee.Join), named like "ssh:alice#3": replay on attach, its own queue and
// overflow policy, and its input attributed to alice in captures and the
// audit log. Escape commands (^E by default, then ? for help) send a
// break, take, release or (admins) steal the write lock, show status and
// who is attached, and detach.
//
// Pre-authentication work is bounded: at most MaxStartups connections may
// be handshaking at once (past that the oldest is dropped, so a flood of
// half-open connections cannot lock a real user out for long), each has a
// handshake deadline, and password hashing runs one at a time.
//
// In goroutines: a connection in the handshake costs at most three (its
// own, and, once it has sent its version, the SSH transport's reader and
// key-exchange loops), and a dropped or failed connection keeps its place
// in the MaxStartups count until its goroutine has returned and its
// transport's reader has stopped (the key-exchange loop stops with the
// reader), so a burst of connections waits in the listen backlog instead
// of piling up goroutines faster than dropped ones end. Pre-authentication
// goroutines are thus at most 3×MaxStartups, plus the lanes of the one
// password hash running (argon2id's p, 1 by default), plus, for a moment,
// goroutines of ended connections between giving their place back and
// returning (none waits on the network any more).
package sshd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"chartee/access"
	"chartee/audit"
	"chartee/chardev"
	"chartee/tee"
)

// Backend is the name of the service backend SSH sessions join.
const Backend = "ssh"

// Config is the SSH service's settings.
type Config struct {
	Listen           string
	HostKey          string // path; generated on first start
	Escape           byte
	Leg              tee.LegOptions
	MaxAuthTries     int
	MaxStartups      int
	HandshakeTimeout time.Duration
	Keepalive        time.Duration // 0: none
	KeepaliveCount   int
	Password         bool
}

func (c Config) withDefaults() Config {
	if c.Escape == 0 {
		c.Escape = 0x05
	}
	if c.MaxAuthTries <= 0 {
		c.MaxAuthTries = 3
	}
	if c.MaxStartups <= 0 {
		c.MaxStartups = 32
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.KeepaliveCount <= 0 {
		c.KeepaliveCount = 3
	}
	return c
}

// Consoles is what the service needs from the daemon: the running tees.
type Consoles interface {
	Tees() []*tee.Tee
	Tee(name string) (*tee.Tee, bool)
}

// Options are the service's collaborators. Gate and Consoles are required.
type Options struct {
	Gate     *access.Gate
	Consoles Consoles
	Logger   *slog.Logger
	// Audit receives what happens before a session is on a tee (refused
	// logins, refused sessions); may be nil.
	Audit func(audit.Record)
	// Listener, when not nil, is the socket to serve, already bound on
	// cfg.Listen (handed over by the process a chartee upgrade took
	// over from); otherwise New binds one.
	Listener net.Listener
}

// Server is a running SSH service.
type Server struct {
	cfg      atomic.Pointer[Config]
	opts     Options
	log      *slog.Logger
	signer   ssh.Signer
	ln       net.Listener
	pwSem    chan struct{}
	startups startupQueue

	mu     sync.Mutex
	conns  map[*ssh.ServerConn]struct{}
	closed bool
	wg     sync.WaitGroup

	sessions atomic.Int64
}

// New loads (or creates) the host key, binds the listener and starts
// serving.
func New(cfg Config, opts Options) (*Server, error) {
	if opts.Gate == nil || opts.Consoles == nil {
		return nil, errors.New("sshd: a gate and consoles are required")
	}
	cfg = cfg.withDefaults()
	signer, created, err := LoadOrCreateHostKey(cfg.HostKey)
	if err != nil {
		return nil, err
	}
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("sshd: %w", err)
		}
	}
	s := &Server{opts: opts, log: opts.Logger, signer: signer, ln: ln,
		pwSem: make(chan struct{}, 1), conns: map[*ssh.ServerConn]struct{}{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.cfg.Store(&cfg)
	s.startups.limit = cfg.MaxStartups
	if created {
		s.log.Warn("ssh host key generated", "file", cfg.HostKey, "fingerprint", s.Fingerprint())
	}
	s.log.Info("ssh listening", "addr", ln.Addr().String(), "fingerprint", s.Fingerprint())
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// File returns a duplicate of the listening socket, to hand to the
// process a chartee upgrade starts. Sessions are not carried: their keys
// live in this process (they are closed with a notice after the handover
// and reconnect to the new process, on the same socket).
func (s *Server) File() (*os.File, error) {
	tl, ok := s.ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("sshd: listener %T has no file", s.ln)
	}
	return tl.File()
}

// Fingerprint is the host key's SHA256 fingerprint, as ssh shows it.
func (s *Server) Fingerprint() string { return ssh.FingerprintSHA256(s.signer.PublicKey()) }

// HostKey is the host's public key (for a known_hosts line).
func (s *Server) HostKey() ssh.PublicKey { return s.signer.PublicKey() }

// KnownHostsLine is a known_hosts line for this host key on Addr.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.signer.PublicKey())
}

// Addr is where the service listens.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Config is the configuration in force.
func (s *Server) Config() Config { return *s.cfg.Load() }

// Reconfigure applies settings that need no new listener or host key:
// escape key and leg options for new sessions, limits, timeouts.
func (s *Server) Reconfigure(cfg Config) {
	cfg = cfg.withDefaults()
	s.cfg.Store(&cfg)
	s.startups.setLimit(cfg.MaxStartups)
}

// Sessions is how many sessions are attached now.
func (s *Server) Sessions() int { return int(s.sessions.Load()) }

// Close stops listening, closes every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*ssh.ServerConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.startups.closeAll()
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	bo := chardev.AcceptBackoff()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("ssh accept", "err", err)
			time.Sleep(bo.Next())
			continue
		}
		bo.Reset()
		// add before admit: at the limit, add drops the oldest
		// connection, whose goroutine then gives admit its place.
		pc := s.startups.add(&handshakeConn{Conn: conn})
		s.startups.admit()
		s.wg.Add(1)
		go s.handle(pc)
	}
}

// handle runs one connection: the handshake under its deadline and
// startup slot, then its channels.
func (s *Server) handle(pc *preConn) {
	defer s.wg.Done()
	conn := pc.conn
	cfg := s.cfg.Load()
	conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.serverConfig(cfg, pc))
	s.startups.done(pc)
	if err != nil {
		conn.Close()
		conn.readerGone()
		s.startups.release()
		return
	}
	s.startups.release()
	conn.SetDeadline(time.Time{})
	if !s.track(sc) {
		sc.Close()
		return
	}
	defer s.untrack(sc)
	go ssh.DiscardRequests(reqs)
	stop := make(chan struct{})
	defer close(stop)
	if cfg.Keepalive > 0 {
		s.wg.Add(1)
		go s.keepalive(sc, cfg, stop)
	}
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.Prohibited, "chartee serves consoles only (no forwarding)")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.session(sc, ch, creqs)
		}()
	}
	sc.Close()
	wg.Wait()
}

func (s *Server) track(sc *ssh.ServerConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[sc] = struct{}{}
	return true
}

func (s *Server) untrack(sc *ssh.ServerConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// keepalive asks the client for a reply every interval and closes the
// connection after count unanswered ones: a client whose host vanished
// (no RST) would otherwise hold its session, and maybe the write lock,
// until TCP gives up hours later.
func (s *Server) keepalive(sc *ssh.ServerConn, cfg *Config, stop <-chan struct{}) {
	defer s.wg.Done()
	t := time.NewTicker(cfg.Keepalive)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := sc.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				return // connection gone
			}
			missed = 0
			continue
		case <-stop:
			return
		case <-time.After(cfg.Keepalive):
		}
		if missed++; missed >= cfg.KeepaliveCount {
			s.log.Info("ssh client unresponsive, closing", "user", sc.User(), "remote", sc.RemoteAddr().String())
			sc.Close()
			return
		}
	}
}
