package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// TestConfigDeployment is issue 5's fifth scenario: start from a config,
// connect clients, edit the file (add a backend, change a capture path,
// change the clients' listen address), SIGHUP. The connected clients see
// neither a gap nor a disconnect, and the capture's old and new files
// together hold the stream whole. A broken file sent with SIGHUP changes
// nothing and is reported with its file:line:col.
func TestConfigDeployment(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	pair := harness.StartPtyPair(t, "socat", filepath.Join(dir, "console"), filepath.Join(dir, "console-far"))
	c := harness.NewChartee(t, dir)
	cap1, cap2 := filepath.Join(dir, "capture-1.log"), filepath.Join(dir, "capture-2.log")
	config := func(listen, capture, extra string) string {
		return fmt.Sprintf(`
control:
  socket: %q
tees:
  - name: app
    frontend:
      type: serial
      path: %q
      exclusive: false
    backends:
      - name: ops
        type: tcp-listen
        listen: %s
        input: false
      - name: capture
        type: file
        path: %q
        append: false
%s`, c.Socket, pair.A, listen, capture, extra)
	}
	c.WriteConfig(t, config("127.0.0.1:0", cap1, ""))
	c.Start(t)
	waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "app").Frontend.Up })
	oldAddr := c.Addr(t, "app", "ops")

	// The console prints numbered ticks all along.
	far := harness.OpenTTY(t, pair.B)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var ticks sync.Map // highest tick written, under key 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if _, err := fmt.Fprintf(far, "tick %d\n", i); err != nil {
				t.Errorf("writing tick %d: %v", i, err)
				return
			}
			ticks.Store(0, i)
		}
	}()
	defer func() { close(stop); wg.Wait(); far.Close() }()

	var clients []*harness.Recorder
	for i := 0; i < 2; i++ {
		conn, err := net.Dial("tcp", oldAddr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, harness.Record(t, fmt.Sprintf("client-%d", i), conn))
	}
	for _, cl := range clients {
		cl.WaitFor(t, "\ntick ", 0, timeoutLong)
	}

	// A new port for ops, known free a moment ago.
	newAddr := harness.FreeAddr(t)

	c.WriteConfig(t, config(newAddr, cap2, `      - name: recent
        type: ringbuf
        size: 1MiB
`))
	mark := clients[0].Len()
	if err := c.Proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForState(t, "the reload to apply", func() (bool, string) {
		st := c.Tee(t, "app")
		var names []string
		for _, b := range st.Backends {
			names = append(names, b.Name+"="+b.Source)
		}
		ops := st.Backend(t, "ops")
		return ops.Source == newAddr && len(st.Backends) == 3 && fileSize(cap2) > 0,
			fmt.Sprintf("backends %v, %s holds %d bytes", names, cap2, fileSize(cap2))
	})
	// The log line follows the reload's last change: wait for it too.
	waitForState(t, "the daemon to log the reload", func() (bool, string) {
		return strings.Contains(c.Proc.Output(), "config reloaded"), "no \"config reloaded\" in its log"
	})
	// The new address serves; the clients of the old one stayed.
	conn, err := net.Dial("tcp", newAddr)
	if err != nil {
		t.Fatalf("the new listen address %s does not answer: %v", newAddr, err)
	}
	late := harness.Record(t, "late-client", conn)
	late.WaitFor(t, "\ntick ", 0, timeoutLong)
	for _, cl := range clients {
		cl.WaitUntil(t, "more ticks after the reload", timeoutLong, func(b []byte) bool { return len(b) > mark+4096 })
	}

	// A broken file: nothing changes, and the problem is reported.
	brokenAt := len(strings.Split(config(newAddr, cap2, ""), "\n")) // the line of the bad key
	c.WriteConfig(t, config(newAddr, cap2, "        bogus_key: 1\n"))
	logMark := len(c.Proc.Output())
	if err := c.Proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the daemon to report the broken config", func() bool {
		return strings.Contains(c.Proc.Output()[logMark:], "reload failed")
	})
	report := c.Proc.Output()[logMark:]
	where := fmt.Sprintf("%s:%d:9:", c.Config, brokenAt)
	if !strings.Contains(report, where) || !strings.Contains(report, "bogus_key") {
		t.Errorf("the reload failure does not name %s and the key:\n%s", where, report)
	}
	// The API's reload says the same, with every problem in details.
	var apiErr *harness.APIError
	if err := c.Request("POST", "/v1/reload", nil, nil); err == nil || !errors.As(err, &apiErr) ||
		apiErr.Status/100 != 4 || !strings.Contains(apiErr.Body, where) {
		t.Errorf("POST /v1/reload of a broken file: %v, want a 4xx naming %s", err, where)
	}
	// `chartee check` finds the same problem without a daemon.
	check := exec.Command(harness.Binary(t), "check", "-c", c.Config)
	if out, err := check.CombinedOutput(); err == nil || !strings.Contains(string(out), where) {
		t.Errorf("chartee check -c of the broken file: %v, want a failure naming %s:\n%s", err, where, out)
	}
	// Both refusals are reported (the SIGHUP's in the log, the API's in
	// its synchronous answer): nothing of them is still pending, so the
	// tee's state now is final.
	st := c.Tee(t, "app")
	if len(st.Backends) != 3 || st.Backend(t, "ops").Source != newAddr || st.Backend(t, "ops").Legs != 3 {
		t.Errorf("the broken config changed the tee: %+v", st.Backends)
	}

	// Stop the ticks, let everything drain, then check every stream.
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	last, _ := ticks.Load(0)
	lastLine := fmt.Sprintf("tick %d\n", last.(int))
	for _, cl := range append(clients, late) {
		cl.WaitFor(t, lastLine, 0, timeoutLong)
		if err := cl.Err(); err != nil {
			t.Errorf("%s was disconnected: %v", cl.Name, err)
		}
		checkTicks(t, cl.Name, cl.Bytes(), false)
	}
	waitFor(t, "the capture to hold the last tick", func() bool {
		b, _ := os.ReadFile(cap2)
		return bytes.HasSuffix(b, []byte(lastLine))
	})
	old, _ := os.ReadFile(cap1)
	cur, _ := os.ReadFile(cap2)
	checkTicks(t, "capture-1 + capture-2", append(old, cur...), true)
}

// checkTicks checks that b is consecutive "tick N\n" lines; a client may
// start in the middle of a line (it connected mid-stream), the capture
// must start at tick 0.
func checkTicks(t *testing.T, name string, b []byte, fromZero bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if !fromZero && len(lines) > 0 {
		lines = lines[1:] // possibly partial
	}
	var prev int
	for i, l := range lines {
		var n int
		if _, err := fmt.Sscanf(l, "tick %d", &n); err != nil || l != fmt.Sprintf("tick %d", n) {
			t.Errorf("%s: line %d is %q, not a tick", name, i, l)
			return
		}
		if (i == 0 && fromZero && n != 0) || (i > 0 && n != prev+1) {
			t.Errorf("%s: line %d is tick %d after tick %d: a gap or a duplicate", name, i, n, prev)
			return
		}
		prev = n
	}
	if len(lines) < 100 {
		t.Errorf("%s: only %d ticks", name, len(lines))
	}
}
