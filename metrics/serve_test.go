package metrics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// promtool is Debian's, from the prometheus package.
const promtool = "/usr/bin/promtool"

// needPromtool fails the test when promtool is missing (CI must have it),
// unless CHARTEE_E2E=skip says this machine cannot run real programs.
func needPromtool(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(promtool); err == nil {
		return
	}
	const msg = promtool + " is missing: install the Debian package prometheus (apt-get install prometheus), which provides promtool"
	if os.Getenv("CHARTEE_E2E") == "skip" {
		t.Skip("SKIPPED BY CHARTEE_E2E=skip, NOT VERIFIED: " + msg)
	}
	t.Fatal(msg)
}

// serve starts Serve on a loopback port and stops it when the test ends.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	addr, stop, err := Serve(context.Background(), "127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return addr
}

// client makes requests without keeping connections, so no transport
// goroutine outlives a test.
func client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

func scrape(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := client(wait).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// quietLogger collects what the handler logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLiveScrapePassesPromtool(t *testing.T) {
	needPromtool(t)
	a, b := busyRig(t, "a"), busyRig(t, "b")
	set := &teeSet{}
	set.set(a.tee, b.tee)
	c := NewCollector(set, "test")
	c.SetReload(ReloadState{Success: true, Time: time.Now()})
	reg := NewRegistry(c)
	addr := serve(t, Handler(reg, slog.New(slog.NewTextHandler(io.Discard, nil))))

	// Twice: the second scrape also carries the handler's own counters.
	scrape(t, "http://"+addr+Path)
	resp, body := scrape(t, "http://"+addr+Path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q, want the text exposition format", ct)
	}
	for _, want := range []string{
		`chartee_backend_bytes_total{backend="cap",direction="out",tee="a"} 500`,
		`chartee_backend_legs{backend="ops",tee="b"} 1`,
		`chartee_swaps_total{kind="leg",result="ok",tee="a"} 1`,
		`chartee_swap_duration_seconds_bucket{kind="leg",tee="a",le="+Inf"} 1`,
		`chartee_input_discarded_bytes_total{backend="ro",tee="b"} 1`,
		"chartee_config_last_reload_success 1",
		"\ngo_goroutines ",
		"\nprocess_cpu_seconds_total ",
		`promhttp_metric_handler_requests_total{code="200"} 1`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape has no %q", want)
		}
	}

	out, err := checkMetrics(t, body)
	if err != nil {
		t.Fatalf("promtool check metrics on a live scrape: %v\n%s", err, out)
	}
}

// TestPromtoolCatchesABadExposition proves the promtool check above can
// fail: the same pipe rejects a counter without _total.
func TestPromtoolCatchesABadExposition(t *testing.T) {
	needPromtool(t)
	bad := "# HELP chartee_bytes A counter named like a gauge.\n# TYPE chartee_bytes counter\nchartee_bytes 1\n"
	out, err := checkMetrics(t, []byte(bad))
	if err == nil {
		t.Fatalf("promtool accepted a lint error:\n%s", out)
	}
	if !strings.Contains(string(out), "_total") {
		t.Fatalf("promtool failed for another reason: %v\n%s", err, out)
	}
}

// checkMetrics pipes an exposition to promtool check metrics.
func checkMetrics(t *testing.T, body []byte) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	return cmd.CombinedOutput()
}

func TestServeAnswersOnlyThePath(t *testing.T) {
	reg := NewRegistry(NewCollector(&teeSet{}, "test"))
	addr := serve(t, Handler(reg, nil))
	// "/" is a page linking /metrics, as node_exporter's.
	resp, body := scrape(t, "http://"+addr+"/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<a href="/metrics">`) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	for _, p := range []string{"/index.html", "/metric", "/metrics/extra", "/debug/pprof/"} {
		resp, _ := scrape(t, "http://"+addr+p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
	if resp, _ := scrape(t, "http://"+addr+Path); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", Path, resp.Status)
	}
}

// TestServeCutsASlowClient: a client that never finishes its request
// headers is disconnected after the header timeout instead of holding a
// connection forever.
func TestServeCutsASlowClient(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(NewCollector(&teeSet{}, "test"))
	addr := serve(t, Handler(reg, nil))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// Our own deadline is well past the server's, so what ends the read
	// is the server closing the connection.
	conn.SetReadDeadline(time.Now().Add(readHeaderTimeout + wait))
	start := time.Now()
	n, err := conn.Read(make([]byte, 4096))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server still held a half-sent request after %v", time.Since(start))
	}
	if n > 0 || err == nil {
		t.Fatalf("server answered a request whose headers never ended (%d bytes, %v)", n, err)
	}
}

// TestServeBoundsConnections: idle connections take at most maxConns
// slots; beyond that new clients wait instead of costing a goroutine
// each, and are served as soon as a slot frees.
func TestServeBoundsConnections(t *testing.T) {
	reg := NewRegistry(NewCollector(&teeSet{}, "test"))
	addr := serve(t, Handler(reg, nil))
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// The kernel queues connections in order, so the idle ones hold
	// every slot and this scrape is not accepted.
	if resp, err := client(time.Second).Get("http://" + addr + Path); err == nil {
		resp.Body.Close()
		t.Fatalf("scrape served with %d idle connections open: %s", maxConns, resp.Status)
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	if resp, _ := scrape(t, "http://"+addr+Path); resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape after the idle clients left: %s", resp.Status)
	}
}

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		listen, err string
	}{
		{"127.0.0.1:9100", ""},
		{"[::1]:9100", ""},
		{"localhost:9100", ""},
		{"0.0.0.0:9100", ""}, // every interface, said on purpose
		{"[::]:9100", ""},
		{":9100", "the host is empty, which would bind every interface"},
		{"", "an address is required"},
		{"127.0.0.1", "missing port"},
		{"127.0.0.1:", "a port is required"},
	} {
		err := CheckListen(c.listen)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("CheckListen(%q): %v", c.listen, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("CheckListen(%q) = %v, want an error containing %q", c.listen, err, c.err)
		case err != nil && !strings.HasPrefix(err.Error(), "metrics: "):
			t.Errorf("CheckListen(%q) error %q lacks the component prefix", c.listen, err)
		}
	}
	if err := CheckListen(":9100"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:9100") {
		t.Errorf("the error for :9100 should suggest 127.0.0.1:9100: %v", err)
	}
}

func TestServeRefusesBadAddresses(t *testing.T) {
	h := http.NotFoundHandler()
	if _, stop, err := Serve(context.Background(), ":0", h); err == nil {
		stop(context.Background())
		t.Fatal("Serve bound every interface for \":0\"")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stop, err := Serve(context.Background(), ln.Addr().String(), h)
	if err == nil {
		stop(context.Background())
		t.Fatalf("Serve bound %s, which is taken", ln.Addr())
	}
	if !strings.HasPrefix(err.Error(), "metrics: ") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("bind error %q: want the component prefix and the cause", err)
	}
}

func TestServeStopClosesAndMayBeRepeated(t *testing.T) {
	addr, stop, err := Serve(context.Background(), "127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	// An idle keep-alive connection does not hold up a graceful stop.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after stop", addr)
	}
}

// TestHandlerServesTheRestOnCollectionError: two tees with one name are a
// collection error, logged and counted, and the scrape still carries
// every other series.
func TestHandlerServesTheRestOnCollectionError(t *testing.T) {
	a1, a2, b := newRig(t, "a"), newRig(t, "a"), newRig(t, "b")
	set := &teeSet{}
	set.set(a1.tee, a2.tee, b.tee)
	logs := &logBuffer{}
	reg := NewRegistry(NewCollector(set, "test"))
	addr := serve(t, Handler(reg, slog.New(slog.NewTextHandler(logs, nil))))

	resp, body := scrape(t, "http://"+addr+Path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	for _, want := range []string{`chartee_frontend_up{tee="a"} 1`, `chartee_frontend_up{tee="b"} 1`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape has no %q", want)
		}
	}
	if !strings.Contains(logs.String(), `two tees are named \"a\"`) {
		t.Errorf("collection error not logged; log: %q", logs.String())
	}
	_, body = scrape(t, "http://"+addr+Path)
	if !bytes.Contains(body, []byte(`promhttp_metric_handler_errors_total{cause="gathering"} 1`)) {
		t.Errorf("collection error not counted")
	}
}

// TestAbandonedScrapeIsNotAnError: a scraper that hangs up mid-scrape
// makes every remaining family fail to send; that is the client's doing,
// so it must not flood the log with one error per family.
func TestAbandonedScrapeIsNotAnError(t *testing.T) {
	logs := &logBuffer{}
	reg := NewRegistry(NewCollector(&teeSet{}, "test"))
	h := Handler(reg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.ServeHTTP(httptest.NewRecorder(), req)
	// The timeout handler returns at once; its inner handler finishes
	// sending (and failing) on its own: wait for its error count.
	eventually(t, "encoding errors counted", func() bool {
		s, ok := find(gatherSeries(t, reg), "promhttp_metric_handler_errors_total", "cause", "encoding")
		return ok && s.value() > 0
	})
	eventually(t, "debug log", func() bool { return strings.Contains(logs.String(), "scrape abandoned by the client") })
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("an abandoned scrape was logged as an error:\n%s", logs.String())
	}
}
