package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chartee/cmd/chartee/internal/config"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/tee"
)

// raw sends a request through the env's client transport and returns the
// response with its body read.
func (e *env) raw(method, path, contentType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctxT(e.t), method, "http://chartee"+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.c.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, data
}

func backendJSON(t *testing.T, fields map[string]any) json.RawMessage {
	t.Helper()
	data, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func backendNames(st TeeStatus) []string {
	var names []string
	for _, b := range st.Backends {
		names = append(names, b.Name)
	}
	return names
}

func hasBackend(st TeeStatus, name string) bool {
	for _, b := range st.Backends {
		if b.Name == name {
			return true
		}
	}
	return false
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to hold %q", path, want), func() bool {
		data, _ := os.ReadFile(path)
		return string(data) == want
	})
}

func TestHealth(t *testing.T) {
	e := newEnv(t, Options{})
	if err := e.c.Health(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	resp, body := e.raw("GET", "/healthz", "", nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("body %s", body)
	}
}

func TestTeesAndTee(t *testing.T) {
	e := newEnv(t, Options{})
	e.newTee("aux", newFront())
	ctx := ctxT(t)
	list, err := e.c.Tees(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "aux" || list[1].Name != "console" {
		t.Fatalf("tees: %+v", list)
	}
	e.emit("hello")
	eventually(t, "output fanned out", func() bool { return e.tee.Offset() == 5 })
	st, err := e.c.Tee(ctx, "console")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "console" || !st.Frontend.Up || st.Offset != 5 || st.Frontend.BytesOut != 5 {
		t.Fatalf("status: %+v", st.Stats)
	}
	if st.Line.Parity == "" || st.Line.StopBits == "" || st.Line.Flow == "" {
		t.Fatalf("line status not filled in: %+v", st.Line)
	}
	resp, _ := e.raw("GET", "/v1/tees", "", nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestTeesEmpty(t *testing.T) {
	d := newFakeDaemon()
	srv := NewServer(d, Options{Logger: quietLogger()})
	sock := filepath.Join(t.TempDir(), "s")
	if err := srv.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	c := NewClient(sock)
	defer c.Close()
	defer srv.Shutdown(context.Background())
	list, err := c.Tees(ctxT(t))
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("got %v, %v; want an empty (non-null) list", list, err)
	}
}

func TestAttachDetach(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	path := filepath.Join(t.TempDir(), "cap.log")
	if err := e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "cap", "type": "file", "path": path})); err != nil {
		t.Fatal(err)
	}
	e.emit("hello\n")
	waitFile(t, path, "hello\n")
	st, err := e.c.Tee(ctx, "console")
	if err != nil {
		t.Fatal(err)
	}
	if !hasBackend(st, "cap") {
		t.Fatalf("backends %v, want cap", backendNames(st))
	}
	if err := e.c.Detach(ctx, "console", "cap"); err != nil {
		t.Fatal(err)
	}
	st, _ = e.c.Tee(ctx, "console")
	if hasBackend(st, "cap") {
		t.Fatalf("backends %v after detach", backendNames(st))
	}
	// Attach answers 201 with the tee's status.
	resp, body := e.raw("POST", "/v1/tees/console/backends", "application/json",
		backendJSON(t, map[string]any{"name": "nul", "type": "null"}))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("attach: %s %s", resp.Status, body)
	}
	var ts TeeStatus
	if err := json.Unmarshal(body, &ts); err != nil || !hasBackend(ts, "nul") {
		t.Fatalf("attach body %s (%v)", body, err)
	}
}

func TestSwapBackend(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log"), filepath.Join(dir, "c.log")
	if err := e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "cap", "type": "file", "path": a})); err != nil {
		t.Fatal(err)
	}
	e.emit("one ")
	waitFile(t, a, "one ")
	// Name omitted: it defaults to the backend in the path.
	rep, err := e.c.Swap(ctx, "console", "cap", SwapRequest{Spec: backendJSON(t, map[string]any{"type": "file", "path": b})})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Backend != "cap" || rep.Mode != "handover" || rep.Cut != 4 {
		t.Fatalf("report %+v", rep)
	}
	e.emit("two ")
	waitFile(t, b, "two ")
	waitFile(t, a, "one ")
	// Name given (and equal), overlap mode, a drain timeout.
	rep, err = e.c.Swap(ctx, "console", "cap", SwapRequest{
		Spec: backendJSON(t, map[string]any{"name": "cap", "type": "file", "path": c}),
		Mode: "overlap", DrainTimeout: 2_000_000_000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "overlap" || rep.Cut != 8 {
		t.Fatalf("report %+v", rep)
	}
	e.emit("three")
	waitFile(t, c, "three")
}

func TestSwapFrontend(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	if err := e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "rb", "type": "ringbuf", "size": "4KiB"})); err != nil {
		t.Fatal(err)
	}
	e.emit("old;")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
		close(accepted)
	}()
	rep, err := e.c.SwapFrontend(ctx, "console", backendJSON(t, map[string]any{"type": "tcp-connect", "address": ln.Addr().String()}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.To, ln.Addr().String()) || rep.Offset != 4 {
		t.Fatalf("report %+v", rep)
	}
	conn := <-accepted
	if conn == nil {
		t.Fatal("no connection from the new frontend")
	}
	defer conn.Close()
	if !e.front.WaitClosed(wait) {
		t.Fatal("old frontend not closed")
	}
	if _, err := conn.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "output of the new frontend in the ring", func() bool {
		var buf bytes.Buffer
		return e.c.Data(ctx, "console", "rb", 0, false, &buf) == nil && buf.String() == "old;new"
	})
}

func TestReload(t *testing.T) {
	e := newEnv(t, Options{})
	e.d.reload = func(ctx context.Context) (daemon.ReloadReport, error) {
		if _, ok := ctx.Deadline(); !ok {
			return daemon.ReloadReport{}, errors.New("reload without a deadline")
		}
		return daemon.ReloadReport{File: "/etc/chartee.yaml", Started: []string{"lab"}, Swapped: []string{"console/cap"}}, nil
	}
	rep, err := e.c.Reload(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.File != "/etc/chartee.yaml" || len(rep.Started) != 1 || rep.Swapped[0] != "console/cap" {
		t.Fatalf("report %+v", rep)
	}
}

// TestOperationSurvivesClientLeaving: a client that gives up mid-swap
// does not cancel the operation, which completes.
func TestOperationSurvivesClientLeaving(t *testing.T) {
	e := newEnv(t, Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	finished := make(chan error, 1)
	e.d.beforeOp = func(ctx context.Context, what string) error {
		close(entered)
		<-release
		return ctx.Err()
	}
	e.d.afterOp = func(ctxErr error) { finished <- ctxErr }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "nul", "type": "null"}))
	}()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-finished; err != nil {
		t.Fatalf("operation's context ended with the client: %v", err)
	}
	eventually(t, "backend attached", func() bool {
		st, err := e.c.Tee(ctxT(t), "console")
		return err == nil && hasBackend(st, "nul")
	})
}

// TestErrors drives every error code through the client.
func TestErrors(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	dir := t.TempDir()
	capPath := filepath.Join(dir, "cap.log")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "cap", "type": "file", "path": capPath})))
	must(e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "lis", "type": "tcp-listen", "listen": "127.0.0.1:0"})))
	spec := func(fields map[string]any) json.RawMessage { return backendJSON(t, fields) }

	cases := []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"unknown tee", func() error { _, err := e.c.Tee(ctx, "nope"); return err }, 404, CodeNotFound},
		{"attach to unknown tee", func() error { return e.c.Attach(ctx, "nope", spec(map[string]any{"name": "x", "type": "null"})) }, 404, CodeNotFound},
		{"detach unknown backend", func() error { return e.c.Detach(ctx, "console", "nope") }, 404, CodeNotFound},
		{"swap unknown backend", func() error {
			_, err := e.c.Swap(ctx, "console", "nope", SwapRequest{Spec: spec(map[string]any{"type": "null"})})
			return err
		}, 404, CodeNotFound},
		{"attach existing name", func() error { return e.c.Attach(ctx, "console", spec(map[string]any{"name": "cap", "type": "null"})) }, 409, CodeExists},
		{"attach bad JSON", func() error { return e.c.Attach(ctx, "console", json.RawMessage(`{"name": "x",`)) }, 400, CodeBadRequest},
		{"attach not an object", func() error { return e.c.Attach(ctx, "console", json.RawMessage(`[1]`)) }, 400, CodeBadRequest},
		{"attach empty body", func() error { return e.c.Attach(ctx, "console", nil) }, 400, CodeBadRequest},
		{"attach unknown type", func() error {
			return e.c.Attach(ctx, "console", spec(map[string]any{"name": "x", "type": "warp-drive"}))
		}, 400, CodeInvalidConfig},
		{"attach open fails", func() error {
			return e.c.Attach(ctx, "console", spec(map[string]any{"name": "x", "type": "file", "path": filepath.Join(dir, "no", "such", "dir", "f.log")}))
		}, 422, CodeOpenFailed},
		{"swap renames", func() error {
			_, err := e.c.Swap(ctx, "console", "cap", SwapRequest{Spec: spec(map[string]any{"name": "other", "type": "null"})})
			return err
		}, 400, CodeBadRequest},
		{"swap bad mode", func() error {
			_, err := e.c.Swap(ctx, "console", "cap", SwapRequest{Spec: spec(map[string]any{"type": "null"}), Mode: "sideways"})
			return err
		}, 400, CodeBadRequest},
		{"swap without spec", func() error { _, err := e.c.Swap(ctx, "console", "cap", SwapRequest{}); return err }, 400, CodeBadRequest},
		{"swap to a listener", func() error {
			_, err := e.c.Swap(ctx, "console", "cap", SwapRequest{Spec: spec(map[string]any{"type": "tcp-listen", "listen": "127.0.0.1:0"})})
			return err
		}, 400, CodeBadRequest},
		{"swap open fails", func() error {
			_, err := e.c.Swap(ctx, "console", "cap", SwapRequest{Spec: spec(map[string]any{"type": "file", "path": filepath.Join(dir, "no", "f.log")})})
			return err
		}, 422, CodeOpenFailed},
		{"frontend swap without spec", func() error { _, err := e.c.SwapFrontend(ctx, "console", nil); return err }, 400, CodeBadRequest},
		{"frontend swap invalid device", func() error {
			_, err := e.c.SwapFrontend(ctx, "console", spec(map[string]any{"type": "tcp-connect"}))
			return err
		}, 400, CodeInvalidConfig},
		{"data of a file backend", func() error { return e.c.Data(ctx, "console", "cap", 0, false, io.Discard) }, 400, CodeNotRingbuf},
		{"data of a listener", func() error { return e.c.Data(ctx, "console", "lis", 0, false, io.Discard) }, 400, CodeNotRingbuf},
		{"data of unknown backend", func() error { return e.c.Data(ctx, "console", "nope", 0, false, io.Discard) }, 404, CodeNotFound},
		{"data of unknown tee", func() error { return e.c.Data(ctx, "nope", "rb", 0, false, io.Discard) }, 404, CodeNotFound},
		{"reload fails", func() error { _, err := e.c.Reload(ctx); return err }, 422, CodeOpenFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := e.c.Tee(ctx, "console")
			wantAPIError(t, tc.call(), tc.status, tc.code)
			// A failed operation changes nothing.
			after, _ := e.c.Tee(ctx, "console")
			if fmt.Sprint(backendNames(before)) != fmt.Sprint(backendNames(after)) {
				t.Fatalf("backends changed from %v to %v", backendNames(before), backendNames(after))
			}
		})
	}
	// The file backend still gets output after all those failures.
	e.emit("still here")
	waitFile(t, capPath, "still here")
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	e := newEnv(t, Options{})
	err := e.c.Attach(ctxT(t), "console", json.RawMessage(`{"name": "x", "type": "file", "bogus": 1, "queue": "lots"}`))
	ae := wantAPIError(t, err, 400, CodeInvalidConfig)
	if len(ae.Details) < 2 {
		t.Fatalf("details %q: want every problem (path missing, unknown key bogus, bad queue)", ae.Details)
	}
	joined := strings.Join(ae.Details, "\n")
	for _, want := range []string{"bogus", "queue"} {
		if !strings.Contains(joined, want) {
			t.Errorf("details %q do not mention %s", ae.Details, want)
		}
	}
}

func TestDaemonErrorMapping(t *testing.T) {
	e := newEnv(t, Options{OpTimeout: 200 * time.Millisecond})
	ctx := ctxT(t)
	cases := []struct {
		name   string
		err    func(ctx context.Context) error
		status int
		code   string
	}{
		{"deadline", func(ctx context.Context) error { <-ctx.Done(); return fmt.Errorf("daemon: open: %w", ctx.Err()) }, 504, CodeTimeout},
		{"invalid", func(context.Context) error { return fmt.Errorf("daemon: cannot apply: %w", daemon.ErrInvalid) }, 400, CodeBadRequest},
		{"config list", func(context.Context) error {
			return fmt.Errorf("reload: %w", config.ErrorList{{Pos: config.Pos{File: "c.yaml", Line: 3, Col: 5}, Msg: "unknown key"}, {Pos: config.Pos{File: "c.yaml", Line: 9, Col: 1}, Msg: "missing name"}})
		}, 400, CodeInvalidConfig},
		{"closed", func(context.Context) error { return tee.ErrClosed }, 503, CodeClosed},
		{"exists", func(context.Context) error { return fmt.Errorf("x: %w", tee.ErrExists) }, 409, CodeExists},
		{"not found", func(context.Context) error { return fmt.Errorf("x: %w", tee.ErrNotFound) }, 404, CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.d.beforeOp = func(ctx context.Context, _ string) error { return tc.err(ctx) }
			e.d.reload = func(ctx context.Context) (daemon.ReloadReport, error) { return daemon.ReloadReport{}, tc.err(ctx) }
			wantAPIError(t, e.c.Attach(ctx, "console", backendJSON(t, map[string]any{"name": "n", "type": "null"})), tc.status, tc.code)
			_, err := e.c.SwapFrontend(ctx, "console", backendJSON(t, map[string]any{"type": "null"}))
			wantAPIError(t, err, tc.status, tc.code)
			_, err = e.c.Reload(ctx)
			ae := wantAPIError(t, err, tc.status, tc.code)
			if tc.code == CodeInvalidConfig && (len(ae.Details) != 2 || ae.Details[0] != "c.yaml:3:5: unknown key") {
				t.Fatalf("details %q", ae.Details)
			}
		})
	}
}

func TestClosedTee(t *testing.T) {
	e := newEnv(t, Options{})
	e.tee.Close()
	err := e.c.Attach(ctxT(t), "console", backendJSON(t, map[string]any{"name": "n", "type": "null"}))
	wantAPIError(t, err, 503, CodeClosed)
}

func TestPanicIs500AndServerSurvives(t *testing.T) {
	e := newEnv(t, Options{})
	e.d.reload = func(context.Context) (daemon.ReloadReport, error) { panic("bug in reload") }
	_, err := e.c.Reload(ctxT(t))
	wantAPIError(t, err, 500, CodeInternal)
	if err := e.c.Health(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownEndpointAndMethod(t *testing.T) {
	e := newEnv(t, Options{})
	cases := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/v1/nothing", 404, CodeNotFound, ""},
		{"GET", "/", 404, CodeNotFound, ""},
		{"PUT", "/v1/tees", 405, CodeMethod, "GET, HEAD"},
		{"GET", "/v1/reload", 405, CodeMethod, "POST"},
		{"POST", "/v1/tees/console/backends/cap/data", 405, CodeMethod, "GET, HEAD"},
	}
	for _, tc := range cases {
		resp, body := e.raw(tc.method, tc.path, "", nil)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %s %q %s", tc.method, tc.path, resp.Status, resp.Header.Get("Content-Type"), body)
		}
		var ae Error
		if err := json.Unmarshal(body, &ae); err != nil || ae.Code != tc.code || ae.Message == "" {
			t.Fatalf("%s %s: body %s", tc.method, tc.path, body)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

func TestErrorResponseIsJSON(t *testing.T) {
	e := newEnv(t, Options{})
	resp, body := e.raw("POST", "/v1/tees/console/backends", "application/json", []byte(`{"name":"x","type":"nope","zzz":1}`))
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"error", "code", "details"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("error body %s has no %q", body, k)
		}
	}
}

// TestClientNonAPIError: a response that is not an API error (from a
// proxy, say) still decodes to an *Error with its status.
func TestClientNonAPIError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	})}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	c := NewTCPClient("http://"+ln.Addr().String()+"/", "tok")
	defer c.Close()
	_, err = c.Tees(ctxT(t))
	ae := wantAPIError(t, err, http.StatusBadGateway, CodeInternal)
	if !strings.Contains(ae.Message, "bad gateway") {
		t.Errorf("message %q", ae.Message)
	}
}

func TestClientNoDaemon(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "absent.sock"))
	defer c.Close()
	err := c.Health(ctxT(t))
	var ae *Error
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("got %v, want a connection error (not an API error)", err)
	}
	if !strings.Contains(err.Error(), "absent.sock") {
		t.Errorf("error %q does not name the socket", err)
	}
}
