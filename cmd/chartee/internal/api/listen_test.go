package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"chartee/tee"
)

func TestUnixSocketMode(t *testing.T) {
	e := newEnv(t, Options{})
	info, err := os.Lstat(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != fs.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", info.Mode())
	}
	// No temporary name is left behind in the directory.
	entries, _ := os.ReadDir(filepath.Dir(e.sock))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the socket", len(entries))
	}
	e.shutdown()
	if _, err := os.Lstat(e.sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file left after Shutdown: %v", err)
	}
	if err := e.srv.ServeUnix(e.sock); err == nil {
		t.Fatal("ServeUnix after Shutdown succeeded")
	}
	if _, err := e.srv.ServeTCP("127.0.0.1:0", "tok"); err == nil {
		t.Fatal("ServeTCP after Shutdown succeeded")
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chartee.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a crashed daemon's socket: the file stays, nobody listens
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(newFakeDaemon(), Options{Logger: quietLogger()})
	defer srv.Shutdown(context.Background())
	if err := srv.ServeUnix(path); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	c := NewClient(path)
	defer c.Close()
	if err := c.Health(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Lstat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode())
	}
}

func TestLiveSocketAndOtherFilesRefused(t *testing.T) {
	e := newEnv(t, Options{})
	other := NewServer(newFakeDaemon(), Options{Logger: quietLogger()})
	defer other.Shutdown(context.Background())
	if err := other.ServeUnix(e.sock); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second server on a live socket: %v", err)
	}
	if err := e.c.Health(ctxT(t)); err != nil {
		t.Fatalf("first server disturbed: %v", err)
	}
	regular := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(regular, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := other.ServeUnix(regular); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	if data, _ := os.ReadFile(regular); string(data) != "keep me" {
		t.Fatal("regular file damaged")
	}
}

func TestTCPToken(t *testing.T) {
	e := newEnv(t, Options{})
	if _, err := e.srv.ServeTCP("127.0.0.1:0", ""); err == nil {
		t.Fatal("TCP listener without a token accepted")
	}
	addr, err := e.srv.ServeTCP("127.0.0.1:0", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	ctx := ctxT(t)

	good := NewTCPClient(base, "s3cret")
	defer good.Close()
	list, err := good.Tees(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("with the token: %v %v", list, err)
	}
	for _, tok := range []string{"", "wrong", "s3cret2", "s3cre"} {
		c := NewTCPClient(base, tok)
		_, err := c.Tees(ctx)
		wantAPIError(t, err, http.StatusUnauthorized, CodeUnauthorized)
		// The open endpoint needs no token.
		if err := c.Health(ctx); err != nil {
			t.Fatalf("healthz with token %q: %v", tok, err)
		}
		c.Close()
	}
	for _, h := range []string{"Basic czNjcmV0", "s3cret", "Bearer", "Bearer  s3cret x"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/tees", nil)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("Authorization %q: %s %v", h, resp.Status, resp.Header)
		}
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, Options{MaxBodyBytes: 1024})
	ctx := ctxT(t)
	big := `{"name":"x","type":"null","pad":"` + strings.Repeat("p", 1<<20) + `"}`
	err := e.c.Attach(ctx, "console", json.RawMessage(big))
	wantAPIError(t, err, http.StatusRequestEntityTooLarge, CodeTooLarge)
	_, err = e.c.Swap(ctx, "console", "x", SwapRequest{Spec: json.RawMessage(big)})
	wantAPIError(t, err, http.StatusRequestEntityTooLarge, CodeTooLarge)
	// The server still serves, and a body within the limit works.
	if err := e.c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "x", "type": "null"})); err != nil {
		t.Fatal(err)
	}
}

// TestSlowloris: a client that trickles its headers in is cut off at
// ReadHeaderTimeout, and the server keeps serving others.
func TestSlowloris(t *testing.T) {
	e := newEnv(t, Options{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: time.Minute, IdleTimeout: time.Minute})
	conn, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	trickleDone := make(chan struct{})
	header := "GET /healthz HTTP/1.1\r\nHost: chartee\r\nX-Slow: " + strings.Repeat("a", 1000) + "\r\n\r\n"
	var sent atomic.Int64
	go func() {
		defer close(trickleDone)
		for i := 0; i < len(header); i++ {
			if _, err := conn.Write([]byte{header[i]}); err != nil {
				return // cut off
			}
			sent.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(wait))
	data, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("slow client was not cut off")
	}
	// Go answers a header timeout with a bare 400 (or nothing) and closes.
	if n := sent.Load(); n >= int64(len(header)) {
		t.Fatalf("the whole header (%d bytes) got through before the cut", n)
	}
	if len(data) != 0 && !strings.HasPrefix(string(data), "HTTP/1.1 400") && !strings.HasPrefix(string(data), "HTTP/1.1 408") {
		t.Fatalf("slow client got %q", data)
	}
	if strings.Contains(string(data), `"status":"ok"`) {
		t.Fatal("slow client was served")
	}
	conn.Close()
	<-trickleDone
	if err := e.c.Health(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownEndsStreams: Shutdown ends followers and event streams and
// returns promptly, with no goroutine left (TestMain checks).
func TestShutdownEndsStreams(t *testing.T) {
	e := newEnv(t, Options{})
	e.attachRing("rb", "1KiB")
	e.emit("x")
	e.waitRing("rb", 1)
	errs := make(chan error, 2)
	var out syncBuffer
	go func() { errs <- e.c.Data(context.Background(), "console", "rb", 0, true, &out) }()
	go func() { errs <- e.c.Events(context.Background(), func(tee.Event) error { return nil }) }()
	eventually(t, "follower", func() bool { return out.String() == "x" })
	eventually(t, "subscription", func() bool { return e.d.subscribers.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("stream ended with %v", err)
		}
	}
}

// TestServeRacesShutdown: a listener started while Shutdown runs is
// either shut down with the rest or refused, never left serving.
func TestServeRacesShutdown(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		srv := NewServer(newFakeDaemon(), Options{Logger: quietLogger()})
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeTCP("127.0.0.1:0", "tok")
			srv.ServeUnix(filepath.Join(dir, strconv.Itoa(i)+".sock"))
		}()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-done
		// A listener left serving would leave its socket file here and its
		// goroutine for TestMain's leak check.
		if _, err := os.Lstat(filepath.Join(dir, strconv.Itoa(i)+".sock")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("socket left behind: %v", err)
		}
	}
}
