package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"chartee/access"
	"chartee/audit"
	"chartee/chardev"
	"chartee/chardev/memdev"
	"chartee/tee"
)

func TestMain(m *testing.M) {
	access.DefaultArgon2 = access.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}
	goleak.VerifyTestMain(m)
}

const wait = 30 * time.Second // generous: a loaded machine; a correct test never waits this long

type consoles map[string]*tee.Tee

func (c consoles) Tees() []*tee.Tee {
	var out []*tee.Tee
	for _, t := range c {
		out = append(out, t)
	}
	return out
}
func (c consoles) Tee(n string) (*tee.Tee, bool) { t, ok := c[n]; return t, ok }

type user struct {
	name   string
	signer ssh.Signer
	line   string
}

func newUser(t *testing.T, name string) user {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return user{name, s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))}
}

type rig struct {
	t      *testing.T
	srv    *Server
	gate   *access.Gate
	front  *memdev.Device
	tee    *tee.Tee
	users  map[string]user
	mu     sync.Mutex
	audits []audit.Record
}

func newRig(t *testing.T, input tee.InputMode, grants map[string]chardev.Role, pwHash string) *rig {
	t.Helper()
	r := &rig{t: t, users: map[string]user{}, front: memdev.New("front")}
	var cfg access.Config
	for _, n := range []string{"alice", "bob", "root", "mallory"} {
		u := newUser(t, n)
		r.users[n] = u
		if n == "mallory" {
			continue // not configured
		}
		au := access.User{Name: n, AuthorizedKeys: []string{u.line}}
		if n == "bob" {
			au.PasswordHash = pwHash
		}
		cfg.Users = append(cfg.Users, au)
	}
	cfg.Grants = map[string]access.Grants{"c0": {Roles: grants}, "c1": {Roles: map[string]chardev.Role{"root": chardev.RoleView}}}
	pol, err := access.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.gate = access.NewGate(pol, access.Limits{MaxSessions: 10, MaxSessionsPerUser: 3})
	tt, err := tee.New(tee.Options{Name: "c0", Frontend: memdev.Opener(nil, r.front), Input: input})
	if err != nil {
		t.Fatal(err)
	}
	t1, err := tee.New(tee.Options{Name: "c1", Frontend: memdev.Opener(nil, memdev.New("f1"))})
	if err != nil {
		t.Fatal(err)
	}
	tt.Start()
	t1.Start()
	r.tee = tt
	srv, err := New(Config{Listen: "127.0.0.1:0", HostKey: filepath.Join(t.TempDir(), "hk"), Password: true,
		Leg: tee.LegOptions{Input: true, Replay: 4096}, Keepalive: time.Second, MaxStartups: 4, HandshakeTimeout: 2 * time.Second},
		Options{Gate: r.gate, Consoles: consoles{"c0": tt, "c1": t1}, Audit: func(a audit.Record) {
			r.mu.Lock()
			r.audits = append(r.audits, a)
			r.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	t.Cleanup(func() {
		srv.Close()
		tt.Close()
		t1.Close()
	})
	return r
}

func (r *rig) dial(login string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", r.srv.Addr(), &ssh.ClientConfig{User: login, Auth: auth,
		HostKeyCallback: ssh.FixedHostKey(r.srv.HostKey()), Timeout: wait})
}

// term is a client session with a pty and its output collected.
type term struct {
	sess *ssh.Session
	in   io.WriteCloser
	mu   sync.Mutex
	out  bytes.Buffer
	done chan error
}

func (r *rig) open(login string) *term {
	r.t.Helper()
	c, err := r.dial(login, ssh.PublicKeys(r.users[strings.SplitN(login, ":", 2)[0]].signer))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	s, err := c.NewSession()
	if err != nil {
		r.t.Fatal(err)
	}
	tm := &term{sess: s, done: make(chan error, 1)}
	tm.in, _ = s.StdinPipe()
	s.Stdout = tm
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		r.t.Fatal(err)
	}
	if err := s.Shell(); err != nil {
		r.t.Fatal(err)
	}
	go func() { tm.done <- s.Wait() }()
	return tm
}

func (tm *term) Write(p []byte) (int, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.Write(p)
}

func (tm *term) text() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tm *term) waitFor(t *testing.T, s string) {
	t.Helper()
	eventually(t, "output "+s+"; got "+tm.text(), func() bool { return strings.Contains(tm.text(), s) })
}

func legs(tt *tee.Tee) []tee.LegStats { return tt.Stats().Legs }

func TestOperateTypesViewCannot(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleOperate, "bob": chardev.RoleView}, "")
	r.front.Feed([]byte("login: "))
	a := r.open("alice:c0")
	a.waitFor(t, "alice on c0 as operate")
	a.waitFor(t, "login: ") // replay
	b := r.open("bob:c0")
	b.waitFor(t, "bob on c0 as view")
	eventually(t, "two legs", func() bool { return len(legs(r.tee)) == 2 })
	names := []string{legs(r.tee)[0].Name, legs(r.tee)[1].Name}
	if names[0] != "ssh:alice#1" || names[1] != "ssh:bob#2" {
		t.Fatalf("legs %v", names)
	}
	b.in.Write([]byte("reboot\r"))
	b.waitFor(t, "view only")
	a.in.Write([]byte("root\r"))
	if !r.front.WaitWritten(5, wait) {
		t.Fatal("alice's typing did not reach the device")
	}
	r.front.Feed([]byte("Password: "))
	b.waitFor(t, "Password: ")
	a.waitFor(t, "Password: ")
	eventually(t, "bob's bytes counted as discarded", func() bool {
		for _, l := range legs(r.tee) {
			if l.User == "bob" {
				return l.Discarded == 7
			}
		}
		return false
	})
	if got := string(r.front.Written()); got != "root\r" {
		t.Fatalf("device got %q", got)
	}
	// ^E w lists who is attached; ^E . detaches.
	a.in.Write([]byte{0x05, 'w'})
	a.waitFor(t, "bob")
	a.in.Write([]byte{0x05, '.'})
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("detach exit: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("detach did not end the session")
	}
	eventually(t, "alice's leg gone", func() bool { return len(legs(r.tee)) == 1 })
}

func TestExclusiveStealByAdmin(t *testing.T) {
	r := newRig(t, tee.Exclusive, map[string]chardev.Role{"alice": chardev.RoleOperate, "root": chardev.RoleAdmin}, "")
	ev := r.tee.Subscribe(64)
	defer ev.Close()
	a := r.open("alice:c0")
	a.waitFor(t, "as operate")
	a.in.Write([]byte{0x05, 'l'})
	a.waitFor(t, "write lock taken")
	root := r.open("root:c0")
	root.waitFor(t, "as admin")
	a.in.Write([]byte{0x05, '!'})
	a.waitFor(t, "steal: not permitted")
	root.in.Write([]byte{0x05, '!'})
	root.waitFor(t, "write lock taken from alice (ssh:alice#1)")
	if st := r.tee.Stats(); st.WriteLockUser != "root" {
		t.Fatalf("holder %q", st.WriteLockUser)
	}
	// Swapping the frontend is an admin's: refused to alice, done for
	// root (this tee has one device, so the engine says so).
	a.in.Write([]byte{0x05, 'f'})
	a.waitFor(t, "fail over: not permitted")
	root.in.Write([]byte{0x05, 'f'})
	root.waitFor(t, "no failover device configured")
	var steal, admin bool
	timeout := time.After(wait)
	for !steal || !admin {
		select {
		case e := <-ev.C:
			if e.Kind == tee.EventWriteLock && e.FromUser == "alice" && e.User == "root" {
				steal = true
			}
			if e.Kind == tee.EventAdmin && e.User == "root" && strings.Contains(e.Reason, "alice") {
				admin = true
			}
		case <-timeout:
			t.Fatalf("events: steal %v admin %v", steal, admin)
		}
	}
}

func TestMenuListsOnlyPermitted(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"root": chardev.RoleOperate}, "")
	root := r.open("root")
	root.waitFor(t, "consoles for root")
	root.waitFor(t, "choose")
	txt := root.text()
	if !strings.Contains(txt, "c0") || !strings.Contains(txt, "c1") {
		t.Fatalf("menu %q", txt)
	}
	root.in.Write([]byte("1\r"))
	root.waitFor(t, "root on c0 as operate")
	al := r.open("alice")
	al.waitFor(t, "no consoles for alice")
	<-al.done
}

func TestRefusals(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleOperate, "bob": chardev.RoleView}, mustHash(t, "pw"))
	if _, err := r.dial("mallory:c0", ssh.PublicKeys(r.users["mallory"].signer)); err == nil {
		t.Fatal("unknown user let in")
	}
	if _, err := r.dial("alice:c0", ssh.PublicKeys(r.users["bob"].signer)); err == nil {
		t.Fatal("wrong key let in")
	}
	if _, err := r.dial("bob:c0", ssh.Password("nope")); err == nil {
		t.Fatal("wrong password let in")
	}
	c, err := r.dial("bob:c0", ssh.Password("pw"))
	if err != nil {
		t.Fatalf("password login: %v", err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	var stderr bytes.Buffer
	s.Stderr = &stderr
	err = s.Run("reboot")
	if ee, ok := err.(*ssh.ExitError); !ok || ee.ExitStatus() != 1 || !strings.Contains(stderr.String(), "runs no commands") {
		t.Fatalf("exec: %v %q", err, stderr.String())
	}
	// No access to c1 for alice: refused like a console that does not exist.
	a := r.open("alice:c1")
	a.waitFor(t, `no console "c1" for alice`)
	<-a.done
	r.mu.Lock()
	defer r.mu.Unlock()
	var failed, refused int
	for _, a := range r.audits {
		switch a.Kind {
		case "login-failed":
			failed++
		case "session-refused":
			refused++
		}
	}
	if failed < 3 || refused != 1 {
		t.Fatalf("audit: %d failed logins, %d refused sessions: %+v", failed, refused, r.audits)
	}
}

func mustHash(t *testing.T, pw string) string {
	h, err := access.HashPassword(pw, "argon2id")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReloadRevokesAndDowngrades(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleOperate, "bob": chardev.RoleOperate}, "")
	a := r.open("alice:c0")
	b := r.open("bob:c0")
	a.waitFor(t, "as operate")
	b.waitFor(t, "as operate")
	pol, err := access.NewPolicy(access.Config{
		Users:  []access.User{{Name: "alice", AuthorizedKeys: []string{r.users["alice"].line}}, {Name: "bob"}},
		Grants: map[string]access.Grants{"c0": {Roles: map[string]chardev.Role{"alice": chardev.RoleView}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ch, rv := r.gate.SetPolicy(pol); ch != 1 || rv != 1 {
		t.Fatalf("changed %d revoked %d", ch, rv)
	}
	b.waitFor(t, "revoked")
	select {
	case <-b.done:
	case <-time.After(wait):
		t.Fatal("revoked session still open")
	}
	a.waitFor(t, "from operate to view")
	a.in.Write([]byte("x"))
	a.waitFor(t, "view only")
	r.front.Feed([]byte("still here"))
	a.waitFor(t, "still here")
	if n := r.front.WrittenLen(); n != 0 {
		t.Fatalf("downgraded typing reached the device: %q", r.front.Written())
	}
}

func TestHostKeyKeptAndNeverReplaced(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	s1, created, err := LoadOrCreateHostKey(p)
	if err != nil || !created {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	s2, created, err := LoadOrCreateHostKey(p)
	if err != nil || created || !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Fatal("key not reloaded")
	}
	os.WriteFile(p, []byte("garbage"), 0o600)
	if _, _, err := LoadOrCreateHostKey(p); err == nil || !strings.Contains(err.Error(), "never replaces") {
		t.Fatalf("garbage key: %v", err)
	}
}

func TestHalfOpenFloodBounded(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleOperate}, "")
	base := runtime.NumGoroutine()
	var conns []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", r.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	eventually(t, "pre-auth bounded", func() bool { return r.srv.startups.pending() <= 4 })
	// Bound: the startup slots' goroutines (4) plus a few per live
	// connection; the 196 dropped connections hold none.
	eventually(t, "goroutines bounded", func() bool { return runtime.NumGoroutine() <= base+20 })
	a := r.open("alice:c0")
	a.waitFor(t, "as operate")
}

func TestAuthTriesAndHandshakeTimeout(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleOperate}, "")
	// Five wrong keys offered: the server stops after max_auth_tries (3).
	var signers []ssh.Signer
	for i := 0; i < 5; i++ {
		signers = append(signers, newUser(t, fmt.Sprint("k", i)).signer)
	}
	if _, err := r.dial("alice:c0", ssh.PublicKeys(signers...)); err == nil {
		t.Fatal("wrong keys let in")
	}
	r.mu.Lock()
	failed := 0
	for _, a := range r.audits {
		if a.Kind == "login-failed" && a.User == "alice:c0" {
			failed++
		}
	}
	r.mu.Unlock()
	if failed != 3 {
		t.Fatalf("%d failed attempts logged, want max_auth_tries = 3", failed)
	}
	// A connection that never speaks is closed at the handshake timeout.
	c, err := net.Dial("tcp", r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(wait))
	// The server's version line, then EOF: the server closed it (at our
	// read deadline, far past the handshake timeout, io.Copy would fail
	// instead). Not long before the handshake timeout: the server's
	// deadline starts when it accepts, about when our dial returned (a
	// second's margin for when this goroutine got to take the time).
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("silent connection not closed by the server within %v: %v", wait, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("silent connection closed after %v, well before the 2s handshake timeout", d)
	}
}

func TestSessionLimitPerUser(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleOperate}, "")
	for i := 0; i < 3; i++ {
		r.open("alice:c0").waitFor(t, "as operate")
	}
	extra := r.open("alice:c0")
	extra.waitFor(t, "too many sessions for this user (limit 3)")
	<-extra.done
	if n := len(legs(r.tee)); n != 3 {
		t.Fatalf("%d legs, want 3", n)
	}
}

// freezer forwards a TCP connection until frozen; then it holds both ends
// open and forwards nothing, like a client whose host vanished.
type freezer struct {
	ln     net.Listener
	frozen chan struct{}
	once   sync.Once
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, frozen: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, s)
			f.mu.Unlock()
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-f.frozen:
			if err != nil {
				return
			}
			continue // swallow: nothing gets through any more
		default:
		}
		if n > 0 {
			dst.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) freeze() { f.once.Do(func() { close(f.frozen) }) }

func TestKeepaliveClosesADeadClient(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleOperate}, "")
	fz := newFreezer(t, r.srv.Addr())
	c, err := ssh.Dial("tcp", fz.ln.Addr().String(), &ssh.ClientConfig{User: "alice:c0",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(r.users["alice"].signer)}, HostKeyCallback: ssh.FixedHostKey(r.srv.HostKey())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	s.Stdout = io.Discard
	in, _ := s.StdinPipe() // held open: an empty stdin would end the session at once
	defer in.Close()
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the session attached", func() bool { return len(legs(r.tee)) == 1 })
	fz.freeze()
	start := time.Now()
	eventually(t, "the dead client's leg removed by keepalives", func() bool { return len(legs(r.tee)) == 0 })
	// keepalive 1s, 3 unanswered: gone after about 3 to 7 seconds.
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("leg removed after %v: not by keepalives", d)
	}
}

// TestWatcherWithoutInputStays: a client whose stdin ends at once (ssh -T
// bob:c0@host < /dev/null, logging a console) keeps receiving output until
// it closes the channel.
func TestWatcherWithoutInputStays(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"bob": chardev.RoleView}, "")
	c, err := r.dial("bob:c0", ssh.PublicKeys(r.users["bob"].signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	var out term
	s.Stdout = &out
	s.Stdin = strings.NewReader("") // EOF at once
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "attached", func() bool { return len(legs(r.tee)) == 1 })
	time.Sleep(100 * time.Millisecond)
	r.front.Feed([]byte("boot log line"))
	out.waitFor(t, "boot log line")
	if len(legs(r.tee)) != 1 {
		t.Fatal("the watcher's leg went away")
	}
	s.Close()
	eventually(t, "leg gone after the channel closed", func() bool { return len(legs(r.tee)) == 0 })
}

// TestQueuedPasswordCheckLetsCloseGo: a password login queued behind the
// hashing slot (held here, as a burst of guesses would) must not keep
// Close waiting: the queued check gives up when its connection goes.
// Before, Close waited for every queued hash in turn.
func TestQueuedPasswordCheckLetsCloseGo(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"bob": chardev.RoleView}, mustHash(t, "pw"))
	// A handshake deadline far past any wait here: Close must return
	// because the queued check gave up with its connection, not because
	// the deadline passed.
	cfg := r.srv.Config()
	cfg.HandshakeTimeout = time.Hour
	r.srv.Reconfigure(cfg)
	r.srv.pwSem <- struct{}{} // the slot is busy
	dialed := make(chan error, 1)
	go func() {
		c, err := r.dial("bob:c0", ssh.Password("pw"))
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	eventually(t, "a password check queued for the hashing slot", func() bool {
		buf := make([]byte, 1<<20)
		return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("sshd.(*Server).acquireHashSlot"))
	})
	closed := make(chan struct{})
	go func() { r.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close waited behind a queued password check")
	}
	if err := <-dialed; err == nil {
		t.Fatal("login got in while the server closed")
	}
	<-r.srv.pwSem
}

// countWriter counts bytes.
type countWriter struct {
	mu sync.Mutex
	n  int
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += len(p)
	c.mu.Unlock()
	return len(p), nil
}

func (c *countWriter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestSlowSessionIsolated: a session whose client stops reading (its SSH
// window fills, then its leg queue) loses output under on_overflow: drop,
// while another session gets every byte at full speed.
func TestSlowSessionIsolated(t *testing.T) {
	r := newRig(t, tee.Shared, map[string]chardev.Role{"alice": chardev.RoleView, "bob": chardev.RoleView}, "")
	open := func(user string) (*ssh.Session, io.Reader) {
		c, err := r.dial(user+":c0", ssh.PublicKeys(r.users[user].signer))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, _ := c.NewSession()
		in, _ := s.StdinPipe()
		t.Cleanup(func() { in.Close() })
		out, _ := s.StdoutPipe()
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		return s, out
	}
	_, fastOut := open("alice")
	var fast countWriter
	go io.Copy(&fast, fastOut)
	open("bob") // never read
	eventually(t, "two legs", func() bool { return len(legs(r.tee)) == 2 })
	base := fast.count() // the banner
	const total = 16 << 20
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	// Paced by the fast session (a console is slower than any client):
	// the stalled one falls behind regardless.
	for sent := 0; sent < total; {
		r.front.Feed(chunk)
		sent += len(chunk)
		eventually(t, "the fast session keeping up", func() bool { return fast.count()-base >= sent })
	}
	eventually(t, "every byte at the fast session", func() bool { return fast.count()-base >= total })
	var slowDropped uint64
	for _, l := range legs(r.tee) {
		if l.User == "bob" {
			slowDropped = l.Dropped
		}
		if l.User == "alice" && l.Dropped != 0 {
			t.Fatalf("the fast session lost %d bytes", l.Dropped)
		}
	}
	if slowDropped == 0 {
		t.Fatal("the stalled session dropped nothing: it was not stalled, or it held the others back")
	}
}
