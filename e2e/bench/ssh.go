package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// startChartee over SSH: the same tee as startChartee, and the clients
// are SSH sessions (user bench, key auth, role operate) instead of TCP
// connections, so "chartee over SSH ÷ chartee" in one run is the cost of
// the SSH layer (encryption, MAC, channel windows).
func startCharteeSSH(ctx context.Context, e *env, o runOpts) (*target, error) {
	t, err := startChartee(ctx, e, o, false, withSSH(e))
	if err != nil {
		return nil, err
	}
	return t, nil
}

// sshBench carries what startChartee needs to add the SSH service.
type sshBench struct {
	signer ssh.Signer
	port   int
}

var benchSSH struct {
	mu sync.Mutex
	s  *sshBench
}

// withSSH prepares a client key and a port; startChartee sees the marker
// environment entry and writes the access and ssh sections.
func withSSH(e *env) string {
	benchSSH.mu.Lock()
	defer benchSSH.mu.Unlock()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	port, _ := freePort()
	benchSSH.s = &sshBench{signer: signer, port: port}
	return sshMarker
}

const sshMarker = "CHARTEE_BENCH_SSH=1"

// sshConfigFor is the YAML added to the bench config when SSH is wanted.
func sshConfigFor(e *env) (string, *sshBench) {
	benchSSH.mu.Lock()
	defer benchSSH.mu.Unlock()
	s := benchSSH.s
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.signer.PublicKey())))
	return fmt.Sprintf(`access:
  default: operate
  users:
    - {name: bench, authorized_keys: [%q]}
ssh:
  listen: "127.0.0.1:%d"
  host_key: %q
  max_sessions: 1024
  max_sessions_per_user: 1024
  replay: 0
  queue: 1MiB
  on_overflow: block
`, key, s.port, e.scratch("hostkey")), s
}

// sshDialer opens SSH sessions on tee bench.
func sshDialer(s *sshBench) func(ctx context.Context) (conn, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	return func(ctx context.Context) (conn, error) {
		cfg := &ssh.ClientConfig{User: "bench:bench", Auth: []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
		cl, err := ssh.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, fmt.Errorf("bench: ssh %s: %w", addr, err)
		}
		ch, reqs, err := cl.OpenChannel("session", nil)
		if err != nil {
			cl.Close()
			return nil, err
		}
		go ssh.DiscardRequests(reqs)
		if ok, err := ch.SendRequest("shell", true, nil); !ok || err != nil {
			cl.Close()
			return nil, fmt.Errorf("bench: ssh shell refused: %v", err)
		}
		c := newSSHConn(cl, ch)
		// The banner line ("[chartee] bench on bench as operate; ...")
		// comes first: read past it so the client sees the stream only.
		if err := c.skipBanner(10 * time.Second); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// sshConn is an SSH session channel with deadlines, which a channel lacks:
// a pump goroutine reads it, and Read waits for the pump or the deadline.
type sshConn struct {
	cl *ssh.Client
	ch ssh.Channel

	data chan []byte
	err  error // set before data is closed
	rest []byte

	mu     sync.Mutex
	rdl    time.Time
	wdl    time.Time
	closed chan struct{}
	once   sync.Once
}

func newSSHConn(cl *ssh.Client, ch ssh.Channel) *sshConn {
	c := &sshConn{cl: cl, ch: ch, data: make(chan []byte, 16), closed: make(chan struct{})}
	go c.pump()
	return c
}

func (c *sshConn) pump() {
	defer close(c.data)
	for {
		buf := make([]byte, 32<<10)
		n, err := c.ch.Read(buf)
		if n > 0 {
			select {
			case c.data <- buf[:n]:
			case <-c.closed:
				return
			}
		}
		if err != nil {
			c.err = err
			return
		}
	}
}

var errTimeout = &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}

func (c *sshConn) Read(p []byte) (int, error) {
	if len(c.rest) == 0 {
		c.mu.Lock()
		dl := c.rdl
		c.mu.Unlock()
		var timer <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, errTimeout
			}
			tm := time.NewTimer(d)
			defer tm.Stop()
			timer = tm.C
		}
		select {
		case b, ok := <-c.data:
			if !ok {
				return 0, c.err
			}
			c.rest = b
		case <-timer:
			return 0, errTimeout
		}
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// skipBanner reads up to and including the first "\r\n".
func (c *sshConn) skipBanner(timeout time.Duration) error {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	var line []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(line), "\r\n") {
		if _, err := c.Read(b); err != nil {
			return fmt.Errorf("bench: ssh banner: %w (got %q)", err, line)
		}
		line = append(line, b[0])
		if len(line) > 4096 {
			return errors.New("bench: ssh banner too long")
		}
	}
	return nil
}

func (c *sshConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	dl := c.wdl
	c.mu.Unlock()
	if dl.IsZero() {
		return c.ch.Write(p)
	}
	type res struct {
		n   int
		err error
	}
	done := make(chan res, 1)
	go func() {
		n, err := c.ch.Write(p)
		done <- res{n, err}
	}()
	tm := time.NewTimer(time.Until(dl))
	defer tm.Stop()
	select {
	case r := <-done:
		return r.n, r.err
	case <-tm.C:
		return 0, &net.OpError{Op: "write", Err: os.ErrDeadlineExceeded}
	}
}

func (c *sshConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.mu.Unlock()
	return nil
}

func (c *sshConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return nil
}

func (c *sshConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	c.ch.Close()
	return c.cl.Close()
}
