package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	_ "chartee/backends" // the real backend types
	"chartee/cmd/chartee/internal/config"
	"chartee/internal/testaddr"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// lineLen is the length of one generated line: "%08d\n".
const lineLen = 9

// feeder is a real TCP server on loopback that a tcp-connect frontend
// connects to; the test decides what each connection is sent.
type feeder struct {
	ln    net.Listener
	conns chan net.Conn
	wg    sync.WaitGroup
}

func newFeeder(t *testing.T) *feeder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &feeder{ln: ln, conns: make(chan net.Conn, 4)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case f.conns <- c:
			default:
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
		close(f.conns)
		for c := range f.conns {
			c.Close()
		}
	})
	return f
}

func (f *feeder) addr() string { return f.ln.Addr().String() }

// conn waits for the frontend to connect. The test closes it.
func (f *feeder) conn(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the frontend never connected to the feeder")
		return nil
	}
}

// stream writes lines first..first+n-1 as "%08d\n", a few at a time with
// short pauses, so the frontend's output is continuous while the test
// changes things. It returns when done or when stop is closed, with the
// number of lines written.
func stream(c io.Writer, first, n int, stop <-chan struct{}) int {
	var buf []byte
	for i := 0; i < n; {
		buf = buf[:0]
		for k := 0; k < 20 && i < n; k++ {
			buf = fmt.Appendf(buf, "%08d\n", first+i)
			i++
		}
		if _, err := c.Write(buf); err != nil {
			return i
		}
		select {
		case <-stop:
			return i
		case <-time.After(200 * time.Microsecond):
		}
	}
	return n
}

// streamAsync runs stream in a goroutine; wait returns the lines written.
func streamAsync(c io.Writer, first, n int) (stop func(), wait func() int) {
	done := make(chan int, 1)
	quit := make(chan struct{})
	go func() { done <- stream(c, first, n, quit) }()
	var once sync.Once
	return func() { once.Do(func() { close(quit) }) }, func() int { return <-done }
}

// checkLines verifies that data is whole generated lines from first to
// first+n-1, in order: no gap, no duplicate.
func checkLines(t *testing.T, data []byte, first, n int) {
	t.Helper()
	if len(data) != n*lineLen {
		t.Fatalf("got %d bytes, want %d (%d lines)", len(data), n*lineLen, n)
	}
	want := make([]byte, 0, n*lineLen)
	for i := range n {
		want = fmt.Appendf(want, "%08d\n", first+i)
	}
	if !bytes.Equal(data, want) {
		i := 0
		for i < len(data) && data[i] == want[i] {
			i++
		}
		t.Fatalf("stream differs at byte %d: got %q, want %q", i, excerpt(data, i), excerpt(want, i))
	}
}

// checkContiguous verifies that data, after skipping a first partial
// line, is consecutive generated lines; it returns the first and the
// count.
func checkContiguous(t *testing.T, data []byte) (first, n int) {
	t.Helper()
	if i := bytes.IndexByte(data, '\n'); i >= 0 && i != lineLen-1 {
		data = data[i+1:]
	}
	data = data[:len(data)-len(data)%lineLen]
	if len(data) == 0 {
		t.Fatal("no whole line received")
	}
	first, err := strconv.Atoi(string(data[:lineLen-1]))
	if err != nil {
		t.Fatalf("not a generated line: %q", data[:lineLen])
	}
	n = len(data) / lineLen
	checkLines(t, data, first, n)
	return first, n
}

func excerpt(b []byte, i int) []byte {
	return b[max(0, i-20):min(len(b), i+20)]
}

// parse builds a config from YAML text with the real parser.
func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", text, err)
	}
	return cfg
}

// freePort reserves a loopback port (package testaddr says how and why).
func freePort(t *testing.T) string { return testaddr.Reserved(t) }

// reloads records OnReload calls.
type reloads struct {
	mu  sync.Mutex
	oks []bool
	err []error
}

func (r *reloads) record(ok bool, _ time.Time, err error) {
	r.mu.Lock()
	r.oks = append(r.oks, ok)
	r.err = append(r.err, err)
	r.mu.Unlock()
}

func (r *reloads) list() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.oks)
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs a daemon for cfg and shuts it down at the end of the test.
func start(t *testing.T, cfg *config.Config) (*Daemon, *reloads, *logBuf) {
	t.Helper()
	r := &reloads{}
	lb := &logBuf{}
	d, err := New(context.Background(), cfg, Options{
		Logger:   slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnReload: r.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d, r, lb
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second) // generous: a loaded machine
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// backendNames lists a tee's backends as the engine sees them.
func backendNames(t *testing.T, d *Daemon, teeName string) []string {
	t.Helper()
	tt, ok := d.Tee(teeName)
	if !ok {
		t.Fatalf("no tee %q", teeName)
	}
	var names []string
	for _, b := range tt.Stats().Backends {
		names = append(names, b.Name)
	}
	slices.Sort(names)
	return names
}

// configNames lists a tee's backends as the daemon's running config has
// them.
func configNames(d *Daemon, teeName string) []string {
	var names []string
	for _, tc := range d.Config().Tees {
		if tc.Name == teeName {
			for _, b := range tc.Backends {
				names = append(names, b.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// client is a TCP client of a tcp-listen backend that keeps everything it
// reads.
type client struct {
	conn net.Conn
	mu   sync.Mutex
	buf  bytes.Buffer
	err  error
	done chan struct{}
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{conn: c, done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		r := bufio.NewReader(c)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			cl.mu.Lock()
			cl.buf.Write(b[:n])
			if err != nil {
				cl.err = err
			}
			cl.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-cl.done })
	return cl
}

func (c *client) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.buf.Bytes())
}

func (c *client) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// writeConfig writes a config file for Reload.
func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// teeYAML is a one-tee config with a tcp-connect frontend and the given
// backends block (already indented for the backends list).
func teeYAML(name, frontAddr, backends string) string {
	return fmt.Sprintf(`tees:
  - name: %s
    drain_timeout: 2s
    frontend:
      type: tcp-connect
      address: %s
      reconnect: {initial: 10ms, max: 50ms}
    backends:
%s`, name, frontAddr, backends)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "      " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
