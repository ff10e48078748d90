package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
	"golang.org/x/crypto/argon2"

	"chartee/access"
	"chartee/audit"
	"chartee/chardev"
	"chartee/chardev/memdev"
	"chartee/tee"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// testUsers are the people of the tests: password and role on "t1".
var testUsers = map[string]struct {
	pass string
	role chardev.Role
}{
	"alice": {"alice-pw", chardev.RoleOperate},
	"bob":   {"bob-pw", chardev.RoleView},
	"carol": {"carol-pw", chardev.RoleNone},
	"root":  {"root-pw", chardev.RoleAdmin},
}

// cheapHash is an argon2id hash in the config encoding with tiny costs,
// so tests do not spend 64 MiB per login.
func cheapHash(pw string) string {
	salt := []byte("0123456789abcdef")
	sum := argon2.IDKey([]byte(pw), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s", argon2.Version,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

func testGate(t testing.TB) *access.Gate {
	cfg := access.Config{Grants: map[string]access.Grants{"t1": {Roles: map[string]chardev.Role{}}}}
	for name, u := range testUsers {
		cfg.Users = append(cfg.Users, access.User{Name: name, PasswordHash: cheapHash(u.pass)})
		cfg.Grants["t1"].Roles[name] = u.role
	}
	pol, err := access.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return access.NewGate(pol, access.Limits{})
}

// consoles is a Consoles of fixed tees.
type consoles []*tee.Tee

func (c consoles) Tees() []*tee.Tee { return c }
func (c consoles) Tee(name string) (*tee.Tee, bool) {
	for _, t := range c {
		if t.Name() == name {
			return t, true
		}
	}
	return nil, false
}

// env is a web server over one tee ("t1") on an in-memory frontend.
type env struct {
	t     testing.TB
	front *memdev.Device
	tee   *tee.Tee
	srv   *Server
	http  *httptest.Server
	audit *syncBuffer // the audit trail: logins here, the rest from tee events
	gate  *access.Gate

	transports []*http.Transport
}

func newEnv(t testing.TB, topts tee.Options, wopts Options) *env {
	t.Helper()
	e := &env{t: t, front: memdev.New("front"), gate: testGate(t)}
	e.audit = &syncBuffer{}
	alog := audit.New(e.audit, audit.Options{RecordInput: true})
	topts.Events = alog.Event
	topts.Name = "t1"
	topts.Frontend = memdev.Opener(nil, e.front)
	tt, err := tee.New(topts)
	if err != nil {
		t.Fatal(err)
	}
	e.tee = tt
	tt.SetInputHook(func(who chardev.InputAuthor, p []byte) { alog.Input("t1", who, p) })
	wopts.Consoles = consoles{tt}
	wopts.Gate = e.gate
	wopts.Audit = alog.Write
	wopts.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(wopts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.http = httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		srv.Shutdown(ctx)
		e.http.Close()
		tt.Close()
		for _, tr := range e.transports {
			tr.CloseIdleConnections()
		}
	})
	eventually(t, "frontend up", func() bool { return tt.Stats().Frontend.Up })
	return e
}

// syncBuffer is a bytes.Buffer safe for the audit log and test readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// emit feeds console output and waits until the tee has taken it.
func (e *env) emit(p []byte) {
	e.t.Helper()
	before := e.tee.Offset()
	e.front.Feed(p)
	eventually(e.t, "output taken", func() bool { return e.tee.Offset() >= before+uint64(len(p)) })
}

// client is a browser: a cookie jar and no redirects followed.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	e.transports = append(e.transports, tr)
	return &http.Client{Jar: jar, Timeout: wait, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginForm fetches the login page and returns its CSRF token.
func (e *env) loginForm(c *http.Client) string {
	e.t.Helper()
	resp, err := c.Get(e.http.URL + "/login")
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfInput.FindSubmatch(b)
	if m == nil {
		e.t.Fatalf("no csrf field in login page: %s", b)
	}
	return string(m[1])
}

func (e *env) postLogin(c *http.Client, tok, user, pass string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.http.URL+"/login",
		strings.NewReader(url.Values{"user": {user}, "password": {pass}, "csrf": {tok}, "next": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.http.URL)
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// login returns a client logged in as user.
func (e *env) login(user string) *http.Client {
	e.t.Helper()
	c := e.client()
	resp := e.postLogin(c, e.loginForm(c), user, testUsers[user].pass)
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d", user, resp.StatusCode)
	}
	return c
}

func (e *env) get(c *http.Client, path string) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.Get(e.http.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// wsClient is a console page's WebSocket, speaking the page's protocol.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	pos  streamPos
	data []byte // every byte received, in order
	ctl  chan map[string]any
	done chan struct{}
	err  error
	hi   helloMsg
	mu   sync.Mutex
	segs []seg
}

type seg struct {
	at uint64
	b  []byte
}

func (e *env) dialWS(c *http.Client, path string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	if hdr == nil {
		hdr = http.Header{"Origin": {e.http.URL}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	u := "ws" + strings.TrimPrefix(e.http.URL, "http") + path
	return websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c, HTTPHeader: hdr})
}

// open connects a page to console t1 (resuming from pos when it has one)
// and waits for hello.
func (e *env) open(c *http.Client, pos streamPos) *wsClient {
	e.t.Helper()
	path := "/console/t1/ws"
	if from, ok := pos.from(); ok {
		path += "?from=" + itoa(from)
	}
	conn, _, err := e.dialWS(c, path, nil)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	w := &wsClient{t: e.t, conn: conn, pos: pos, ctl: make(chan map[string]any, 100), done: make(chan struct{})}
	hello := make(chan struct{})
	go w.read(hello)
	select {
	case <-hello:
	case <-w.done:
		e.t.Fatalf("closed before hello: %v", w.err)
	case <-time.After(wait):
		e.t.Fatal("no hello")
	}
	return w
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func (w *wsClient) read(hello chan struct{}) {
	defer close(w.done)
	for {
		typ, b, err := w.conn.Read(context.Background())
		if err != nil {
			w.err = err
			return
		}
		w.mu.Lock()
		if typ == websocket.MessageBinary {
			w.segs = append(w.segs, seg{w.pos.next, b})
			w.data = append(w.data, b...)
			w.pos.data(len(b))
			w.mu.Unlock()
			continue
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		switch m["t"] {
		case "hello":
			var h helloMsg
			json.Unmarshal(b, &h)
			w.hi = h
			w.pos.hello(h)
			w.mu.Unlock()
			close(hello)
			continue
		case "at":
			var a atMsg
			json.Unmarshal(b, &a)
			w.pos.at(a)
		}
		w.mu.Unlock()
		select {
		case w.ctl <- m:
		default:
		}
	}
}

func (w *wsClient) position() streamPos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

func (w *wsClient) received() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.data)
}

func (w *wsClient) waitData(n int) {
	w.t.Helper()
	eventually(w.t, "data on the page", func() bool { return w.received() >= n })
}

// waitOffset waits until the page's stream position reaches end (bytes
// received or told lost). One lock reads the position: computing a byte
// count from position() and received() read apart races with arrivals.
func (w *wsClient) waitOffset(end uint64) {
	w.t.Helper()
	eventually(w.t, "the page at the stream's end", func() bool { return w.position().next >= end })
}

func (w *wsClient) send(m any) {
	b, _ := json.Marshal(m)
	w.conn.Write(context.Background(), websocket.MessageText, b)
}

func (w *wsClient) typeKeys(s string) {
	w.conn.Write(context.Background(), websocket.MessageBinary, []byte(s))
}

// waitCtl waits for a control message of type typ (and op, if given).
func (w *wsClient) waitCtl(typ, op string) map[string]any {
	w.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case m := <-w.ctl:
			if (typ == "" || m["t"] == typ) && (op == "" || m["op"] == op) {
				return m
			}
		case <-timeout:
			w.t.Fatalf("no %s %s message", typ, op)
		}
	}
}

func (w *wsClient) close() {
	w.conn.Close(websocket.StatusNormalClosure, "")
	<-w.done
}

// audited reports whether the audit trail has a record with all of kv
// (JSON fragments such as `"kind":"attach"`).
func (e *env) audited(kv ...string) bool {
	for _, line := range strings.Split(e.audit.String(), "\n") {
		all := line != ""
		for _, f := range kv {
			all = all && strings.Contains(line, f)
		}
		if all {
			return true
		}
	}
	return false
}
