package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// wsViewer is a console viewer without a browser: it logs in over HTTP
// and reads the console's WebSocket like the page does (no rendering,
// no flow control), so the daemon's own cost per viewer shows without a
// browser competing for the CPU.
type wsViewer struct {
	conn   *websocket.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// wsLogin logs user in once (logins are rate-limited) for every viewer.
func wsLogin(base, user string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("bench: no login form")
	}
	req, _ := http.NewRequest("POST", base+"/login",
		strings.NewReader(url.Values{"user": {user}, "password": {user + "-pw"}, "csrf": {string(m[1])}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	if resp, err = c.Do(req); err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("bench: login: %s", resp.Status)
	}
	return c, nil
}

func newWSViewer(c *http.Client, base string) (*wsViewer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/console/console/ws",
		&websocket.DialOptions{HTTPClient: c, HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		cancel()
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	v := &wsViewer{conn: conn, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	return v, nil
}

func (v *wsViewer) close() {
	v.conn.Close(websocket.StatusNormalClosure, "")
	v.cancel()
	<-v.done
}
