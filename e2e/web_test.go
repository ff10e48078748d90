package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/argon2"

	"chartee/e2e/internal/harness"
)

// rfc2217Device is a serial device behind pyserial's own RFC 2217 server
// (serial.rfc2217.PortManager) on a loop:// port: what is written comes
// back, and a break is reported on stdout as the device sees it.
const rfc2217Device = `
import logging, socket, sys, threading
import serial, serial.rfc2217

class Report(logging.Handler):
    def emit(self, r):
        if 'BREAK' in r.getMessage():
            print('DEVICE ' + r.getMessage(), flush=True)

ser = serial.serial_for_url('loop://', timeout=0.05)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(1)
print('PORT', srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
log = logging.getLogger('device')
log.setLevel(logging.INFO)
log.addHandler(Report())

class Conn:
    def write(self, d):
        conn.sendall(d)

pm = serial.rfc2217.PortManager(ser, Conn(), logger=log)

def to_net():
    while True:
        d = ser.read(4096)
        if d:
            conn.sendall(b''.join(pm.escape(d)))

threading.Thread(target=to_net, daemon=True).start()
while True:
    d = conn.recv(4096)
    if not d:
        break
    ser.write(b''.join(pm.filter(d)))
`

// cheapHash is an argon2id password hash with tiny costs (the daemon
// checks a hash with the costs written in it), so logins are quick.
func cheapHash(pw string) string {
	salt := []byte("e2e-salt-0123456")
	sum := argon2.IDKey([]byte(pw), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s", argon2.Version,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

// webConsole is a daemon serving two consoles in the browser: "console"
// on a pty (the test holds its other end) and "serial", an RFC 2217
// device run by pyserial.
type webConsole struct {
	c      *harness.Chartee
	url    string
	dev    *os.File // the pty's slave: the console's device
	typed  *harness.Recorder
	serial *harness.Proc
}

func startWebConsole(t *testing.T) *webConsole {
	python := harness.RequireProgram(t, "/usr/bin/python3", "python3-serial")
	dir := t.TempDir()
	w := &webConsole{}
	w.serial = harness.Start(t, "rfc2217-device", python, "-c", rfc2217Device)
	var port string
	waitFor(t, "the RFC 2217 device's port", func() bool {
		m := regexp.MustCompile(`PORT (\d+)`).FindStringSubmatch(w.serial.Output())
		if m != nil {
			port = m[1]
		}
		return m != nil
	})
	addr := harness.FreeAddr(t)
	w.url = "http://" + addr
	link := filepath.Join(dir, "console")
	w.c = harness.NewChartee(t, dir)
	w.c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
access:
  users:
    - {name: alice, password: %q}
    - {name: bob, password: %q}
web:
  listen: %s
tees:
  - name: console
    scrollback: 256KiB
    frontend: {type: pty, link: %q}
    access: {operate: [alice], view: [bob]}
  - name: serial
    frontend: {type: tcp-connect, address: "127.0.0.1:%s", protocol: rfc2217}
    access: {operate: [alice], view: [bob]}
`, w.c.Socket, cheapHash("alice-pw"), cheapHash("bob-pw"), addr, link, port))
	w.c.Start(t)
	w.dev = harness.OpenTTY(t, link)
	t.Cleanup(func() { w.dev.Close() })
	w.typed = harness.Record(t, "console device", w.dev)
	return w
}

// login logs in through the form and lands on path.
func (w *webConsole) login(t *testing.T, ctx context.Context, user, pass, path string) {
	harness.DoBrowser(t, ctx, 30*time.Second, "login page for "+user,
		chromedp.Navigate(w.url+path),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
	harness.DoBrowser(t, ctx, 30*time.Second, user+" logged in", chromedp.WaitVisible(chromedp.CSS("#term")))
	// The fragment (#record) does not survive the login's redirects.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.Navigate("about:blank"), chromedp.Navigate(w.url+path), chromedp.WaitVisible(chromedp.CSS("#term .xterm-rows"))); err != nil {
		page := harness.EvalBrowser[string](t, ctx, `location.href + "\n" + document.body.outerHTML`)
		t.Fatalf("login as %s: no terminal (%v); the page:\n%s", user, err, page)
	}
	waitFor(t, user+"'s page connected", func() bool {
		return harness.EvalBrowser[bool](t, ctx, `!!(window.chartee && window.chartee.hello)`)
	})
}

// screen is the terminal's text as the page shows it (xterm.js's rows).
func screen(t *testing.T, ctx context.Context) string {
	return harness.EvalBrowser[string](t, ctx,
		`Array.from(document.querySelectorAll('#term .xterm-rows > div')).map(r => r.textContent.replace(/\u00a0/g, ' ').trimEnd()).join('\n')`)
}

func waitScreen(t *testing.T, ctx context.Context, what, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := screen(t, ctx)
		if strings.Contains(s, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the page never showed %q; it shows:\n%s", what, want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recorded is every byte the page received (the #record hook), in order.
func recorded(t *testing.T, ctx context.Context) []byte {
	b64 := harness.EvalBrowser[string](t, ctx, `(() => {
		let s = ''; for (const c of window.chartee.record) for (const b of c) s += String.fromCharCode(b);
		return btoa(s); })()`)
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBrowserConsole is issue 13's end-to-end test in a real headless
// Chromium: an operator logs in and types to a pty-backed console, a
// viewer in a second browser context sees the same output and cannot
// type, both pages resume exactly after the server cuts their
// WebSockets, and the break button reaches an RFC 2217 device.
func TestBrowserConsole(t *testing.T) {
	harness.Begin(t)
	w := startWebConsole(t)
	browser := harness.Browser(t)

	// Everything before anyone looks: the pages get it replayed.
	var stream bytes.Buffer
	devWrite := func(s string) {
		stream.WriteString(s)
		if _, err := w.dev.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	devWrite("U-Boot 2026.01\r\nboot> ")

	alice := harness.BrowserContext(t, browser)
	w.login(t, alice, "alice", "alice-pw", "/console/console#record")
	waitScreen(t, alice, "alice's replay", "U-Boot 2026.01")
	if got := harness.EvalBrowser[string](t, alice, `document.querySelector('#role').textContent`); got != "operate" {
		t.Fatalf("alice's role badge %q", got)
	}

	// Typing in the page reaches the device.
	harness.DoBrowser(t, alice, 10*time.Second, "type", chromedp.Focus(chromedp.CSS(".xterm-helper-textarea")), harness.TypeKeys("printenv\r"))
	if err := w.typed.Until(10*time.Second, func(b []byte) bool { return bytes.Equal(b, []byte("printenv\r")) }); err != nil {
		t.Fatalf("alice's keys: %v; the page sent %s", err, harness.EvalBrowser[string](t, alice, `JSON.stringify(window.chartee.sent)`))
	}
	devWrite("printenv\r\nbootcmd=run distro_bootcmd\r\nboot> ")
	waitScreen(t, alice, "the device's answer", "bootcmd=run distro_bootcmd")

	// A viewer, in a browser context of its own.
	bob := harness.BrowserContext(t, browser)
	w.login(t, bob, "bob", "bob-pw", "/console/console#record")
	waitScreen(t, bob, "bob sees the same output", "bootcmd=run distro_bootcmd")
	if !harness.EvalBrowser[bool](t, bob, `!!document.querySelector('#readonly') && document.querySelector('#readonly').offsetParent !== null`) {
		t.Fatal("bob's page shows no read-only badge")
	}
	if harness.EvalBrowser[bool](t, bob, `!!document.querySelector('#break')`) {
		t.Fatal("bob's page has a break button")
	}
	before := w.typed.Len()
	harness.DoBrowser(t, bob, 10*time.Second, "bob types", chromedp.Focus(chromedp.CSS(".xterm-helper-textarea")), harness.TypeKeys("reset\r"))
	// The page sends keys only through sendKeys, which records them in
	// window.chartee.sent (#record) before it sends: a viewer's page
	// records none (xterm, its stdin disabled, hands it none). The key
	// events were handled when DoBrowser returned, so nothing of bob's is
	// on its way to the device and what the device got is final.
	if sent := harness.EvalBrowser[string](t, bob, `JSON.stringify(window.chartee.sent)`); sent != "[]" {
		t.Fatalf("the viewer's page passed keys on to send: %s", sent)
	}
	devWrite("\r\nstill here\r\n")
	waitScreen(t, bob, "output after bob typed", "still here")
	if n := w.typed.Len() - before; n != 0 {
		t.Fatalf("%d bytes from the viewer reached the device: %q", n, w.typed.Bytes()[before:])
	}
	st := w.c.Tee(t, "console")
	for _, l := range st.Legs {
		if l.User == "bob" && (l.BytesIn != 0 || l.Role != "view") {
			t.Fatalf("bob's leg: %+v", l)
		}
	}

	// Server-side cut: every browser leg of the console is detached (the
	// WebSockets closed by the daemon); output continues meanwhile; both
	// pages reconnect and resume from their offsets.
	connects := harness.EvalBrowser[int](t, bob, `window.chartee.connects`)
	if err := w.c.Request("DELETE", "/v1/tees/console/backends/web", nil, nil); err != nil {
		t.Fatalf("detach the browser legs: %v", err)
	}
	for i := range 50 {
		devWrite(fmt.Sprintf("line %02d written while the pages reconnect\r\n", i))
	}
	waitFor(t, "bob's page reconnected", func() bool {
		return harness.EvalBrowser[int](t, bob, `window.chartee.connects`) > connects
	})
	devWrite("after the cut\r\n")
	for _, p := range []struct {
		name string
		ctx  context.Context
	}{{"alice", alice}, {"bob", bob}} {
		waitScreen(t, p.ctx, p.name+" after the cut", "after the cut")
		got := recorded(t, p.ctx)
		if !bytes.Equal(got, stream.Bytes()) {
			t.Fatalf("%s's page got %d bytes, the device wrote %d: first difference %s", p.name, len(got), stream.Len(), firstDiff(got, stream.Bytes()))
		}
		if lost := harness.EvalBrowser[int](t, p.ctx, `window.chartee.pos.lost`); lost != 0 {
			t.Fatalf("%s's page reports %d bytes lost", p.name, lost)
		}
	}
	takeScreenshot(t, alice)

	// The break button reaches the RFC 2217 device.
	harness.DoBrowser(t, alice, 30*time.Second, "open the serial console",
		chromedp.Navigate(w.url+"/console/serial"),
		chromedp.WaitVisible(chromedp.CSS("#break")),
	)
	waitFor(t, "serial page connected", func() bool {
		return harness.EvalBrowser[bool](t, alice, `!!(window.chartee && window.chartee.hello)`)
	})
	harness.DoBrowser(t, alice, 10*time.Second, "press break", chromedp.Click(chromedp.CSS("#break")))
	waitFor(t, "the device saw the break", func() bool {
		return strings.Contains(w.serial.Output(), "DEVICE changed BREAK to active") &&
			strings.Contains(w.serial.Output(), "DEVICE changed BREAK to inactive")
	})
	// And the loop device echoes what alice types, through the page.
	harness.DoBrowser(t, alice, 10*time.Second, "type on serial", chromedp.Focus(chromedp.CSS(".xterm-helper-textarea")), harness.TypeKeys("loopback ok"))
	waitScreen(t, alice, "serial echo", "loopback ok")

	// The index lists both consoles with their state, live: bob leaving
	// the console shows without a reload.
	harness.DoBrowser(t, alice, 30*time.Second, "the index", chromedp.Navigate(w.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-console="serial"]`)))
	row := func() string {
		return harness.EvalBrowser[string](t, alice, `(document.querySelector('tr[data-console="console"]') || {}).textContent || ''`)
	}
	waitFor(t, "bob attached, on the index", func() bool { return strings.Contains(row(), "bob") && strings.Contains(row(), "up") })
	harness.DoBrowser(t, bob, 10*time.Second, "bob leaves", chromedp.Navigate("about:blank"))
	waitFor(t, "the index updates live", func() bool { return !strings.Contains(row(), "bob") })
}

// takeScreenshot saves the page as a PNG in the test's directory, and as
// CHARTEE_WEB_SCREENSHOT when that is set (docs/browser-console.png is
// made this way).
func takeScreenshot(t *testing.T, ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(rctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	out := filepath.Join(t.TempDir(), "browser-console.png")
	if p := os.Getenv("CHARTEE_WEB_SCREENSHOT"); p != "" {
		out = p
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
