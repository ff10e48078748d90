package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDemo runs the built-in demo in process (`chartee run --port 0`),
// stopped with SIGTERM when the test ends.
func startDemo(t *testing.T) (*syncBuffer, readyInfo) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr, sigs, done, info := startInProcess(t, ctx, "run", "--port", "0")
	t.Cleanup(func() {
		sigs.send(syscall.SIGTERM)
		<-done
		cancel()
	})
	return stderr, info
}

// TestDemoServesBrowserConsole: the built-in demo serves the browser
// console on loopback, prints its URL and a demo login, and that login
// works: the console is listed with the demo user's role.
func TestDemoServesBrowserConsole(t *testing.T) {
	stderr, info := startDemo(t)
	if !strings.HasPrefix(info.WebURL, "http://127.0.0.1:") {
		t.Fatalf("web URL %q: want loopback", info.WebURL)
	}
	m := regexp.MustCompile(`open (\S+) in a browser and log in as (\S+), password (\S+)`).FindStringSubmatch(stderr.String())
	if m == nil || m[1] != info.WebURL || m[2] != "demo" {
		t.Fatalf("no demo login printed:\n%s", stderr.String())
	}
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(info.WebURL + "login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if tok == nil {
		t.Fatalf("login page: %s", page)
	}
	req, _ := http.NewRequest("POST", info.WebURL+"login",
		strings.NewReader(url.Values{"user": {m[2]}, "password": {m[3]}, "csrf": {string(tok[1])}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", strings.TrimSuffix(info.WebURL, "/"))
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = c.Get(info.WebURL + "api/consoles"); err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(list), `"name":"console"`) || !strings.Contains(string(list), `"role":"admin"`) {
		t.Fatalf("console list after the demo login: %d %s", resp.StatusCode, list)
	}
}

// TestCheckWarnsWebWithoutTLS: check warns about a browser console open
// to the network without TLS, pointing at web.listen, and passes.
func TestCheckWarnsWebWithoutTLS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.yaml")
	writeFile(t, path, `access:
  users:
    - {name: alice, password: "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$2QkZOTRIxTc6GsTtwq0AbTgF3lrWhq1E7EaJtDhMBXI"}
web:
  listen: 0.0.0.0:8080
tees:
  - name: t1
    frontend: {type: demo}
    access: {operate: [alice]}
`)
	r := runCmd(context.Background(), nil, "check", "-c", path)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^warning: ` + regexp.QuoteMeta(path) + `:5:\d+: web\.listen: 0\.0\.0\.0:8080 is reachable from the network without TLS`).MatchString(r.stderr) {
		t.Errorf("no web.listen warning: %q", r.stderr)
	}
	writeFile(t, path, strings.Replace(readFileString(t, path), "0.0.0.0:8080", "127.0.0.1:8080", 1))
	if r := runCmd(context.Background(), nil, "check", "-c", path); strings.Contains(r.stderr, "warning") {
		t.Errorf("loopback web.listen warned: %q", r.stderr)
	}
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDemoPortTakenAfterItsCheck: a fixed demo port another program binds
// between the demo's check and its own bind (two demos started at once)
// does not fail the demo: it starts again on free ports.
func TestDemoPortTakenAfterItsCheck(t *testing.T) {
	// The browser console's port is taken, by this test or by someone
	// else; the check is made to see every port free.
	if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(demoWebPort))); err == nil {
		defer ln.Close()
	}
	seen := tcpPortFree
	tcpPortFree = func(int) bool { return true }
	defer func() { tcpPortFree = seen }()

	stderr, info := startDemo(t)
	if !strings.Contains(stderr.String(), "the demo starts again on free ports") {
		t.Errorf("the demo did not say it starts again:\n%s", stderr.String())
	}
	if info.WebURL == "" || strings.Contains(info.WebURL, ":"+strconv.Itoa(demoWebPort)+"/") {
		t.Fatalf("web URL %q: want a free port, not %d", info.WebURL, demoWebPort)
	}
	resp, err := http.Get(info.WebURL + "login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET login: %s", resp.Status)
	}
}
