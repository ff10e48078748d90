package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"chartee/chardev"
	"chartee/tee"
)

// fakeConsole records what a watcher does to its tee.
type fakeConsole struct {
	mu      sync.Mutex
	events  []tee.Event
	sent    []string
	sendErr error
}

func (c *fakeConsole) Name() string { return "vm" }
func (c *fakeConsole) Emit(e tee.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}
func (c *fakeConsole) Send(ctx context.Context, who string, p []byte, force bool) (tee.SendResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sendErr != nil {
		return tee.SendResult{}, c.sendErr
	}
	c.sent = append(c.sent, who+":"+string(p))
	return tee.SendResult{Written: len(p)}, nil
}
func (c *fakeConsole) reasons() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.events {
		out = append(out, e.Reason)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func spec(t *testing.T, name, expr string, cooldown time.Duration, acts ...Action) Spec {
	re, err := CompilePattern(expr)
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Name: name, Pattern: expr, Re: re, Cooldown: cooldown, Actions: acts}
}

func write(t *testing.T, d chardev.Chardev, s string) {
	t.Helper()
	if n, err := d.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("write: %d, %v", n, err)
	}
}

// writeReturns writes s and fails if the write does not return while an
// action is stuck (the bound is generous: only a write waiting for the
// stuck action exceeds it).
func writeReturns(t *testing.T, d chardev.Chardev, s, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		n, err := d.Write([]byte(s))
		if err == nil && n != len(s) {
			err = fmt.Errorf("short write %d of %d", n, len(s))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the write waited for the actions (they must not run on the leg)", what)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestWatcherExecAndWebhook(t *testing.T) {
	var posts atomic.Int32
	var got WebhookPayload
	var gotMu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The first attempt fails: the action retries.
		if posts.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		gotMu.Lock()
		defer gotMu.Unlock()
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "exec.out")
	con := &fakeConsole{}
	m := NewMetrics()
	w := New(con, []Spec{spec(t, "panic", `Kernel panic - not syncing`, 0,
		Action{Kind: ActEvent},
		Action{Kind: ActExec, Argv: []string{"/bin/sh", "-c", `printf '%s|%s|%s|%s|%s' "$CHARTEE_TEE" "$CHARTEE_WATCH" "$CHARTEE_MATCH" "$CHARTEE_OFFSET" "$1" > ` + out, "sh", "{watch}@{offset}"}},
		Action{Kind: ActWebhook, URL: srv.URL + "/hook", Retries: 2},
	)}, Options{Logger: quietLog(), Metrics: m, RetryDelay: 10 * time.Millisecond})
	defer w.Close()
	d := w.Device()
	defer d.Close()
	d.(chardev.OffsetTracker).StreamAt(100)
	write(t, d, "line one\r\nKernel pa")
	write(t, d, "nic - not syncing: Fatal exception\r\n")
	eventually(t, "exec output", func() bool { b, _ := os.ReadFile(out); return len(b) > 0 })
	b, _ := os.ReadFile(out)
	if string(b) != "vm|panic|Kernel panic - not syncing|110|panic@110" {
		t.Fatalf("exec saw %q", b)
	}
	eventually(t, "the webhook's second attempt", func() bool { gotMu.Lock(); defer gotMu.Unlock(); return got.Watch != "" })
	gotMu.Lock()
	if got.Tee != "vm" || got.Match != "Kernel panic - not syncing" || got.Offset != 110 ||
		len(got.Context) != 1 || got.Context[0] != "line one" || !strings.HasPrefix(got.Line, "Kernel panic") {
		t.Errorf("webhook payload %+v", got)
	}
	gotMu.Unlock()
	eventually(t, "the event", func() bool { return len(con.reasons()) == 1 })
	if r := con.reasons()[0]; !strings.Contains(r, `watch panic matched "Kernel panic - not syncing"`) {
		t.Errorf("event %q", r)
	}
	if v := testutil.ToFloat64(m.matches.WithLabelValues("vm", "panic")); v != 1 {
		t.Errorf("matches metric %v", v)
	}
	if n := testutil.CollectAndCount(m.failures); n != 0 {
		t.Errorf("%d failure series after a retried success", n)
	}
}

func TestWatcherFailuresAreEventsAndMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusInternalServerError)
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := strings.Replace(gone.URL, "http://", "http://user:pw@", 1) + "/hook?token=s3cret"
	gone.Close() // connection refused
	// An action that hangs until the test lets it go: the write must
	// return meanwhile (actions never run on the leg).
	stuck := make(chan struct{})
	hold := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stuck }))
	defer hold.Close()
	con := &fakeConsole{sendErr: errors.New("write lock held by alice")}
	m := NewMetrics()
	w := New(con, []Spec{spec(t, "oops", `Oops`, 0,
		Action{Kind: ActExec, Argv: []string{"/bin/false"}},
		Action{Kind: ActExec, Argv: []string{"/bin/sleep", "10"}, Timeout: 50 * time.Millisecond},
		Action{Kind: ActExec, Argv: []string{"/nonexistent/program"}},
		Action{Kind: ActWebhook, URL: srv.URL, Retries: 1},
		Action{Kind: ActSend, Text: []byte("x")},
		Action{Kind: ActWebhook, URL: goneURL, Retries: 0},
		Action{Kind: ActWebhook, URL: hold.URL, Retries: 0, Timeout: time.Minute},
	)}, Options{Logger: quietLog(), Metrics: m, RetryDelay: time.Millisecond})
	defer w.Close()
	d := w.Device()
	defer d.Close()
	writeReturns(t, d, "Oops\n", "a write while an action hangs")
	close(stuck)
	eventually(t, "six failure events", func() bool { return len(con.reasons()) == 6 })
	all := strings.Join(con.reasons(), "\n")
	for _, want := range []string{"exit status 1", "timed out after 50ms", "/nonexistent/program", "HTTP 500", "after 2 attempts", "write lock held by alice", "connection refused"} {
		if !strings.Contains(all, want) {
			t.Errorf("failure events do not mention %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "s3cret") || strings.Contains(all, "pw@") {
		t.Errorf("a failure event shows the hook's secrets:\n%s", all)
	}
	if v := testutil.ToFloat64(m.failures.WithLabelValues("vm", "oops", "exec")); v != 3 {
		t.Errorf("exec failures metric %v, want 3", v)
	}
	if v := testutil.ToFloat64(m.failures.WithLabelValues("vm", "oops", "webhook")); v != 2 {
		t.Errorf("webhook failures metric %v, want 2", v)
	}
}

func TestWatcherCooldownSendAndReload(t *testing.T) {
	con := &fakeConsole{}
	m := NewMetrics()
	login := spec(t, "login", `login: $`, time.Hour, Action{Kind: ActSend, Text: []byte("root\n")})
	w := New(con, []Spec{login}, Options{Logger: quietLog(), Metrics: m})
	defer w.Close()
	d := w.Device()
	defer d.Close()
	write(t, d, "vm login: ")
	eventually(t, "the send", func() bool { con.mu.Lock(); defer con.mu.Unlock(); return len(con.sent) == 1 })
	write(t, d, "\r\nLogin incorrect\r\nvm login: ")
	// Reload with the same login watch and a new one: cooldown kept.
	w.SetSpecs([]Spec{login, spec(t, "incorrect", `incorrect`, 0, Action{Kind: ActEvent})})
	write(t, d, "\r\nLogin incorrect\r\nvm login: ")
	eventually(t, "the new watch's event", func() bool { return len(con.reasons()) == 1 })
	con.mu.Lock()
	sent := con.sent
	con.mu.Unlock()
	if len(sent) != 1 || sent[0] != "watch login:root\n" {
		t.Errorf("sent %q; cooldown should allow one", sent)
	}
	if v := testutil.ToFloat64(m.matches.WithLabelValues("vm", "login")); v != 3 {
		t.Errorf("login matches %v, want 3 (cooldown hides actions, not matches)", v)
	}
}

func TestWatcherQueueFullDropsNotBlocks(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	con := &fakeConsole{}
	w := New(con, []Spec{spec(t, "x", `x`, 0, Action{Kind: ActWebhook, URL: srv.URL, Retries: 0, Timeout: 5 * time.Second})},
		Options{Logger: quietLog(), Workers: 1, Queue: 2})
	defer w.Close()
	d := w.Device()
	defer d.Close()
	writeReturns(t, d, strings.Repeat("x\n", 10), "ten matches with a stuck webhook")
	eventually(t, "queue-full failures", func() bool { return len(con.reasons()) >= 7 })
	if r := con.reasons()[0]; !strings.Contains(r, "action queue full") {
		t.Errorf("failure %q", r)
	}
}

// A hook that redirects is not followed: the console's output goes to
// the configured URL only, and the redirect is a failure.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	con := &fakeConsole{}
	w := New(con, []Spec{spec(t, "x", `x`, 0, Action{Kind: ActWebhook, URL: srv.URL, Retries: 0})}, Options{Logger: quietLog()})
	defer w.Close()
	d := w.Device()
	defer d.Close()
	write(t, d, "x\n")
	eventually(t, "the failure", func() bool { return len(con.reasons()) == 1 })
	if r := con.reasons()[0]; !strings.Contains(r, "HTTP 307") || elsewhere.Load() != 0 {
		t.Fatalf("redirect: %q, posts elsewhere %d", r, elsewhere.Load())
	}
}

func TestArgSafe(t *testing.T) {
	if got := argSafe([]byte("a\x00b")); got != "ab" {
		t.Fatalf("argSafe: %q", got)
	}
}
