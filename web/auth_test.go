package web

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"chartee/tee"
)

func TestNothingWithoutLogin(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	c := e.client()
	for _, p := range []string{"/", "/console/t1", "/console/t1/scrollback", "/console/nope"} {
		resp, _ := e.get(c, p)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without login: %d %s, want a redirect to the login page", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/api/consoles", "/api/consoles/watch", "/console/t1/ws"} {
		if resp, _ := e.get(c, p); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without login: %d, want 401", p, resp.StatusCode)
		}
	}
	if _, _, err := e.dialWS(c, "/console/t1/ws", nil); err == nil {
		t.Error("WebSocket without login accepted")
	}
	if resp := postForm(t, c, e.http.URL+"/logout", nil, e.http.URL); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /logout without login: %v", resp.StatusCode)
	}
	// Open: the login page and static assets.
	for _, p := range []string{"/login", "/static/console.js", "/static/vendor/xterm/xterm.js", "/static/vendor/addon-fit/addon-fit.js", "/static/style.css"} {
		if resp, _ := e.get(c, p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", p, resp.StatusCode)
		}
	}
}

func TestLoginLogout(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	c := e.client()
	tok := e.loginForm(c)
	if resp := e.postLogin(c, tok, "alice", "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	if !e.audited(`"kind":"login-failed"`, `"user":"alice"`, `"source":"127.0.0.1"`) {
		t.Error("failed login not audited")
	}
	tok = e.loginForm(c)
	resp := e.postLogin(c, tok, "alice", "alice-pw")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && ck.Value != "" {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure on plain HTTP", sc)
	}
	r, body := e.get(c, "/")
	if r.StatusCode != 200 || !strings.Contains(body, `data-console="t1"`) {
		t.Fatalf("index: %d %s", r.StatusCode, body)
	}
	// Logout needs the CSRF token.
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no logout token on the index")
	}
	if r := postForm(t, c, e.http.URL+"/logout", url.Values{"csrf": {"forged"}}, e.http.URL); r.StatusCode != http.StatusForbidden {
		t.Fatalf("logout with a wrong token: %d", r.StatusCode)
	}
	if r := postForm(t, c, e.http.URL+"/logout", url.Values{"csrf": {m[1]}}, "http://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("logout from another origin: %d", r.StatusCode)
	}
	if r := postForm(t, c, e.http.URL+"/logout", url.Values{"csrf": {m[1]}}, e.http.URL); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if r, _ := e.get(c, "/api/consoles"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", r.StatusCode)
	}
	// The old cookie value is dead server-side too, not just cleared.
	c2 := e.client()
	u, _ := url.Parse(e.http.URL)
	c2.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: sc.Value}})
	if r, _ := e.get(c2, "/api/consoles"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed session cookie after logout: %d", r.StatusCode)
	}
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestLoginCSRF(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	c := e.client()
	// No form token (a cross-site form post has no login cookie to match).
	r := postForm(t, c, e.http.URL+"/login", url.Values{"user": {"alice"}, "password": {"alice-pw"}}, e.http.URL)
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("login without the form token: %d", r.StatusCode)
	}
	tok := e.loginForm(c)
	r = postForm(t, c, e.http.URL+"/login", url.Values{"user": {"alice"}, "password": {"alice-pw"}, "csrf": {tok}}, "http://evil.example")
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("login from another origin: %d", r.StatusCode)
	}
	r = postForm(t, c, e.http.URL+"/login", url.Values{"user": {"alice"}, "password": {"alice-pw"}, "csrf": {tok + "x"}}, e.http.URL)
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("login with a wrong token: %d", r.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{LoginBurst: 3, LoginInterval: time.Hour})
	c := e.client()
	for i := range 3 {
		if r := e.postLogin(c, e.loginForm(c), "alice", "guess"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.StatusCode)
		}
	}
	r := e.postLogin(c, e.loginForm(c), "alice", "alice-pw")
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("4th attempt, right password: %d, Retry-After %q; want 429", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if !e.audited(`"kind":"login-refused"`, `"user":"alice"`) {
		t.Error("refused login not audited")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(2, 10*time.Second)
	l.now = func() time.Time { return now }
	for i := range 2 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("3rd: %v, wait %v; want refused, 10s", ok, wait)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("not refilled after the interval")
	}
	if ok, _ := l.allow("a"); ok {
		t.Fatal("refilled more than one token")
	}
}

func TestSessionExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSessions(time.Hour, 3*time.Hour)
	s.now = func() time.Time { return now }
	se := s.create("alice")
	for range 2 {
		now = now.Add(59 * time.Minute)
		if _, ok := s.get(se.id); !ok {
			t.Fatal("active session expired")
		}
	}
	now = now.Add(61 * time.Minute)
	if _, ok := s.get(se.id); ok {
		t.Fatal("idle session still valid")
	}
	se = s.create("alice")
	for range 4 {
		now = now.Add(50 * time.Minute)
		s.get(se.id)
	}
	if _, ok := s.get(se.id); ok {
		t.Fatal("session outlived its maximum age")
	}
	if s.checkCSRF("session:x", s.csrf("session:y")) || !s.checkCSRF("session:x", s.csrf("session:x")) || s.checkCSRF("session:x", "") {
		t.Fatal("CSRF tokens do not bind to their session")
	}
}

func TestTrustedHeader(t *testing.T) {
	off := newEnv(t, tee.Options{}, Options{})
	req, _ := http.NewRequest("GET", off.http.URL+"/api/consoles", nil)
	req.Header.Set("X-Remote-User", "alice")
	resp, err := off.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("trusted header honoured while off: %d", resp.StatusCode)
	}
	on := newEnv(t, tee.Options{}, Options{TrustedHeader: "X-Remote-User"})
	req, _ = http.NewRequest("GET", on.http.URL+"/api/consoles", nil)
	req.Header.Set("X-Remote-User", "bob")
	resp, err = on.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"role":"view"`) {
		t.Fatalf("trusted header: %d %s", resp.StatusCode, b)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/t1": "/console/t1", "": "/", "//evil.example/": "/", "https://evil.example": "/", "/\\evil": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOriginOK(t *testing.T) {
	cases := []struct {
		origin, host string
		tls, ok      bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", false, true},
		{"http://127.0.0.1:8080", "127.0.0.1:8081", false, false},
		{"https://127.0.0.1:8080", "127.0.0.1:8080", false, false},
		{"https://con.example", "con.example", true, true},
		{"http://con.example", "con.example", true, false},
		{"", "con.example", false, false},
		{"null", "con.example", false, false},
		{"http://con.example.evil.example", "con.example", false, false},
		{"http://CON.example", "con.example", false, true},
	}
	for _, c := range cases {
		r, _ := http.NewRequest("GET", "http://"+c.host+"/", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.tls {
			r.TLS = &tlsState
		}
		if got := originOK(r); got != c.ok {
			t.Errorf("origin %q host %q tls %v: %v, want %v", c.origin, c.host, c.tls, got, c.ok)
		}
	}
}

// TestTLSCookies: with TLS the session cookie is Secure as well, and a
// WebSocket is accepted only from the https origin.
func TestTLSCookies(t *testing.T) {
	e := newEnvTLS(t)
	c := e.client()
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	resp := e.postLogin(c, e.loginForm(c), "alice", "alice-pw")
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			sc = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || sc == nil || !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login over TLS: %d, cookie %+v", resp.StatusCode, sc)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS header over TLS")
	}
}

func newEnvTLS(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, tee.Options{}, Options{TLS: &tls.Config{}})
	e.http.Close()
	e.http = httptest.NewUnstartedServer(e.srv)
	e.http.StartTLS()
	t.Cleanup(e.http.Close)
	return e
}

// TestConsoleWatchLive: the index's event stream sends the console list
// again when someone attaches, naming them.
func TestConsoleWatchLive(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	c := e.login("bob")
	resp, err := c.Get(e.http.URL + "/api/consoles/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- line
			}
		}
		close(events)
	}()
	first := <-events
	if !strings.Contains(first, `"name":"t1"`) || strings.Contains(first, `"user":"alice"`) {
		t.Fatalf("first event %s", first)
	}
	w := e.open(e.login("alice"), streamPos{})
	defer w.close()
	timeout := time.After(wait)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			if strings.Contains(ev, `"user":"alice"`) {
				return
			}
		case <-timeout:
			t.Fatal("the index was not told that alice attached")
		}
	}
}
