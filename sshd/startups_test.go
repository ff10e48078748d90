package sshd

import (
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/access"
)

// slowConn is a connection that never sends a byte and whose goroutine
// is slow to notice it was closed: a Read returns only once the conn is
// closed and the test opens teardown, as a loaded machine's scheduler
// might leave dropped connections' goroutines waiting to run.
type slowConn struct {
	net.Conn // nil: only what the handshake uses is implemented
	l        *slowListener
	once     sync.Once
	closed   chan struct{}
}

func (c *slowConn) Read([]byte) (int, error) {
	n := c.l.reading.Add(1)
	for {
		m := c.l.maxReading.Load()
		if n <= m || c.l.maxReading.CompareAndSwap(m, n) {
			break
		}
	}
	defer c.l.reading.Add(-1)
	<-c.closed
	<-c.l.teardown
	return 0, io.EOF
}

func (c *slowConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *slowConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *slowConn) SetDeadline(time.Time) error      { return nil }
func (c *slowConn) SetReadDeadline(time.Time) error  { return nil }
func (c *slowConn) SetWriteDeadline(time.Time) error { return nil }
func (c *slowConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *slowConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22} }

// slowListener hands out the slowConns queued on it.
type slowListener struct {
	conns      chan *slowConn
	accepted   atomic.Int64
	reading    atomic.Int64 // handshake goroutines in a Read now
	maxReading atomic.Int64
	teardown   chan struct{}
	openOnce   sync.Once
	once       sync.Once
	done       chan struct{}
}

func (l *slowListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		l.accepted.Add(1)
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// openTeardown lets closed connections' Reads return.
func (l *slowListener) openTeardown() { l.openOnce.Do(func() { close(l.teardown) }) }

func (l *slowListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *slowListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22} }

// TestBurstWaitsForDroppedConnections: a burst of connections arriving
// faster than dropped ones' goroutines end must wait in the backlog, not
// start a goroutine each. Before, the accept loop started one per
// connection at once (a flood of 1,000 half-open connections could hold
// nearly 1,000 goroutines on a loaded machine), while the startup queue
// itself stayed at MaxStartups.
func TestBurstWaitsForDroppedConnections(t *testing.T) {
	const limit, burst = 4, 20
	l := &slowListener{conns: make(chan *slowConn, burst), teardown: make(chan struct{}), done: make(chan struct{})}
	for range burst {
		l.conns <- &slowConn{l: l, closed: make(chan struct{})}
	}
	pol, err := access.NewPolicy(access.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Listen: "127.0.0.1:0", HostKey: filepath.Join(t.TempDir(), "hk"), MaxStartups: limit},
		Options{Gate: access.NewGate(pol, access.Limits{}), Consoles: consoles{}, Listener: l})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer l.openTeardown() // before Close (deferred calls run last first): its goroutines end

	// limit handshakes read; the next connection is accepted and drops
	// the oldest, whose goroutine cannot end yet: the accept loop waits.
	eventually(t, "limit handshakes and one more accepted", func() bool {
		return l.reading.Load() >= limit && l.accepted.Load() >= limit+1
	})
	// A window for a regression to show (never a synchronisation: the
	// fixed loop cannot go on, however long this takes).
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if a, r := l.accepted.Load(), l.reading.Load(); a > limit+1 || r > limit {
			t.Fatalf("accepted %d connections, %d handshake goroutines reading, while the dropped one's goroutine had not ended (limit %d)", a, r, limit)
		}
	}
	// Teardown goes ahead: the burst is worked through, never more
	// than limit handshake goroutines at a time, the newest pending.
	l.openTeardown()
	eventually(t, "the whole burst accepted", func() bool {
		return l.accepted.Load() == burst && srv.startups.pending() == limit
	})
	if m := l.maxReading.Load(); m > limit {
		t.Fatalf("%d handshake goroutines at once, limit %d", m, limit)
	}
}
