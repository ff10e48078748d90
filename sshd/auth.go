package sshd

import (
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"chartee/access"
	"chartee/audit"
)

// Permission extensions carrying how a connection authenticated.
const (
	extAuth = "chartee-auth"
	extFP   = "chartee-key-fp"
)

var errAuth = errors.New("sshd: not authorized")

// serverConfig is the handshake configuration: the access policy's keys
// and passwords, checked against the user part of the login name.
//
// pc is the connection being configured: a password check queued for the
// hashing slot gives up when pc is dropped or its handshake deadline
// passes, so neither a flood nor Close waits behind a queue of guesses.
func (s *Server) serverConfig(cfg *Config, pc *preConn) *ssh.ServerConfig {
	sc := &ssh.ServerConfig{
		MaxAuthTries:  cfg.MaxAuthTries,
		ServerVersion: "SSH-2.0-chartee",
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			user, _, err := access.ParseTarget(c.User())
			if err != nil {
				return nil, errAuth
			}
			pol := s.opts.Gate.Policy()
			if pol == nil {
				return nil, errAuth
			}
			ok, fp := pol.CheckKey(user, key)
			if !ok {
				return nil, errAuth
			}
			return &ssh.Permissions{Extensions: map[string]string{extAuth: "publickey", extFP: fp}}, nil
		},
		AuthLogCallback: func(c ssh.ConnMetadata, method string, err error) {
			if err == nil || method == "none" {
				return
			}
			s.auditRecord(audit.Record{Kind: "login-failed", User: c.User(), Source: c.RemoteAddr().String(),
				Auth: method, Reason: err.Error()})
		},
	}
	if cfg.Password {
		sc.PasswordCallback = func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			user, _, err := access.ParseTarget(c.User())
			pol := s.opts.Gate.Policy()
			if err != nil || pol == nil {
				return nil, errAuth
			}
			// Hashing is deliberately expensive: one at a time,
			// so a burst of guesses cannot exhaust memory or CPU.
			if !s.acquireHashSlot(pc, cfg.HandshakeTimeout) {
				return nil, errAuth
			}
			ok := pol.CheckPassword(user, string(pw))
			// The hash's 19 MiB go back to the OS at once: a burst
			// of guesses must not leave the daemon holding them.
			debug.FreeOSMemory()
			<-s.pwSem
			if !ok {
				return nil, errAuth
			}
			return &ssh.Permissions{Extensions: map[string]string{extAuth: "password"}}, nil
		}
	}
	sc.AddHostKey(s.signer)
	return sc
}

func (s *Server) auditRecord(r audit.Record) {
	if s.opts.Audit != nil {
		s.opts.Audit(r)
	}
}

// acquireHashSlot waits for the one password-hashing slot until pc is
// dropped (or the server closes) or its handshake deadline passes.
func (s *Server) acquireHashSlot(pc *preConn, timeout time.Duration) bool {
	t := time.NewTimer(time.Until(pc.start.Add(timeout)))
	defer t.Stop()
	select {
	case s.pwSem <- struct{}{}:
		return true
	case <-pc.gone:
		return false
	case <-t.C:
		return false
	}
}

// preConn is a connection that has not finished its handshake.
type preConn struct {
	conn  *handshakeConn
	start time.Time
	done  bool          // under startupQueue.mu
	gone  chan struct{} // closed when done becomes true
}

// finish marks pc done; q.mu is held.
func (pc *preConn) finish() {
	if !pc.done {
		pc.done = true
		close(pc.gone)
	}
}

// handshakeConn is a connection as the SSH library sees it. Its reads
// are counted so that a failed handshake can wait for the transport's
// reader goroutine to stop (the library starts it and does not wait for
// it): until then that goroutine still counts against MaxStartups.
type handshakeConn struct {
	net.Conn
	reads sync.RWMutex // read-locked for each Read in progress
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	c.reads.RLock()
	defer c.reads.RUnlock()
	return c.Conn.Read(p)
}

// readerGone waits for the Read in progress, if any, to return; c is
// closed, so it does at once.
func (c *handshakeConn) readerGone() {
	c.reads.Lock()
	defer c.reads.Unlock()
}

// startupQueue bounds connections in the handshake. When it is full the
// oldest one is dropped for the newcomer: a flood of half-open
// connections then only ever holds limit slots, each for a short time,
// and a real client that completes its handshake promptly gets through.
//
// live counts the handshake goroutines, a dropped connection's until it
// has ended: admit holds the accept loop while limit are live, so a burst
// of connections cannot start goroutines faster than dropped ones end.
type startupQueue struct {
	mu     sync.Mutex
	cond   sync.Cond // signalled when live drops or the queue closes; L is &mu
	limit  int
	q      []*preConn
	live   int
	closed bool
}

// admit waits until fewer than limit handshake goroutines are live (or
// the queue is closed), then counts one more; release uncounts it.
func (q *startupQueue) admit() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cond.L == nil {
		q.cond.L = &q.mu
	}
	for q.live >= q.limit && !q.closed {
		q.cond.Wait()
	}
	q.live++
}

func (q *startupQueue) release() {
	q.mu.Lock()
	q.live--
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *startupQueue) setLimit(n int) {
	q.mu.Lock()
	q.limit = n
	if q.cond.L != nil {
		q.cond.Broadcast() // a raised limit may admit a waiting connection
	}
	q.mu.Unlock()
}

// add registers conn, dropping the oldest pending connections past the
// limit.
func (q *startupQueue) add(conn *handshakeConn) *preConn {
	pc := &preConn{conn: conn, start: time.Now(), gone: make(chan struct{})}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		conn.Close()
		pc.finish()
		return pc
	}
	q.q = append(q.q, pc)
	for len(q.q) > q.limit {
		old := q.q[0]
		q.q = q.q[1:]
		old.finish()
		old.conn.Close()
	}
	return pc
}

// done removes pc once its handshake has ended.
func (q *startupQueue) done(pc *preConn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if pc.done {
		return
	}
	pc.finish()
	for i, x := range q.q {
		if x == pc {
			q.q = append(q.q[:i], q.q[i+1:]...)
			break
		}
	}
}

// pending is how many connections are handshaking.
func (q *startupQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q)
}

func (q *startupQueue) closeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.cond.L != nil {
		q.cond.Broadcast()
	}
	for _, pc := range q.q {
		pc.finish()
		pc.conn.Close()
	}
	q.q = nil
}
