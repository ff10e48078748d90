package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// ctlLong runs a chartee ctl command that may run long (wait) and returns
// its stdout and exit code.
func ctlLong(t *testing.T, c *harness.Chartee, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), append([]string{"ctl", "--socket", c.Socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("chartee ctl %s: %v", strings.Join(args, " "), err)
	}
	if stderr.Len() > 0 {
		t.Logf("chartee ctl %s: stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), code
}

// webhookSink is a loopback HTTP server recording the JSON posted to it.
type webhookSink struct {
	mu    sync.Mutex
	posts []map[string]any
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var v map[string]any
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.posts = append(s.posts, v)
	s.mu.Unlock()
}

func (s *webhookSink) got() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.posts...)
}

// TestAutomationVM is issue 14's end-to-end scenario on the QEMU VM, its
// console a telnet-mode TCP chardev that chartee reaches with a
// tcp-connect frontend speaking telnet: ctl wait for the ready marker,
// ctl send a command and ctl wait for its answer, magic SysRq through
// chartee (IAC BREAK becomes a serial break in QEMU, then the key), and a
// panic watch whose exec and webhook actions run when the guest panics.
func TestAutomationVM(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	vm := harness.StartVMTelnet(t, dir, true)
	sink := &webhookSink{}
	hook := httptest.NewServer(sink) // 127.0.0.1
	defer hook.Close()
	execOut := filepath.Join(dir, "exec.out")
	metricsAddr := harness.FreeAddr(t)
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
metrics:
  listen: %s
tees:
  - name: vm
    frontend:
      type: tcp-connect
      address: %s
      protocol: telnet
      reconnect: {initial: 100ms, max: 1s}
    scrollback: 1MiB
    watch:
      - name: panic
        pattern: 'Kernel panic - not syncing|BUG: unable to handle'
        actions:
          - event
          - log
          - exec: [/bin/sh, -c, 'printf "%%s|%%s|%%s|%%s" "$CHARTEE_TEE" "$CHARTEE_WATCH" "$CHARTEE_MATCH" "$CHARTEE_OFFSET" > %s']
          - webhook: {url: %q, timeout: 5s, retries: 2}
    backends:
      - name: ring
        type: ringbuf
        size: 4MiB
`, c.Socket, metricsAddr, vm.TCP, execOut, hook.URL+"/panic"))
	c.Start(t)
	waitFor(t, "the frontend to connect to QEMU's telnet console", func() bool {
		return c.Tee(t, "vm").Frontend.Up
	})
	vm.Resume(t)
	defer func() {
		if t.Failed() {
			out, _ := c.Ctl(t, "tail", "vm", "ring")
			t.Logf("console tail:\n%s", out[max(0, len(out)-4000):])
		}
	}()

	// 1. Wait for the ready marker, from the start of the stream.
	out, code := ctlLong(t, c, bootTimeout+30*time.Second, "wait", "vm", "VM-READY", "--from", "start", "--timeout", bootTimeout.String())
	if code != 0 || !strings.Contains(out, "VM-READY") {
		t.Fatalf("wait VM-READY: exit %d, %q", code, out)
	}
	if _, code := ctlLong(t, c, 60*time.Second, "wait", "vm", harness.VMPrompt, "--from", "start", "--timeout", "30s"); code != 0 {
		t.Fatalf("no shell prompt after the ready marker")
	}

	// 2. send, then wait from the offset send answered: a fast answer
	// cannot be missed.
	out, code = ctlLong(t, c, 30*time.Second, "--json", "send", "vm", `echo $((6*7))\n`)
	var sent struct {
		Written int    `json:"written"`
		Offset  uint64 `json:"offset"`
	}
	if err := json.Unmarshal([]byte(out), &sent); code != 0 || err != nil || sent.Written != 14 {
		t.Fatalf("send: exit %d, %q, %v", code, out, err)
	}
	out, code = ctlLong(t, c, 60*time.Second, "wait", "vm", "^42", "--from", fmt.Sprint(sent.Offset), "--timeout", "30s")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), " 42") {
		t.Fatalf("wait ^42: exit %d, %q", code, out)
	}
	// A wait that times out exits 1 and shows the last lines.
	out, code = ctlLong(t, c, 30*time.Second, "wait", "vm", "no-such-text", "--from", fmt.Sprint(sent.Offset), "--timeout", "1s")
	if code != 1 || !strings.Contains(out, "no match") || !strings.Contains(out, "42") {
		t.Fatalf("wait timeout: exit %d, %q", code, out)
	}

	// 3. Magic SysRq through chartee: break (IAC BREAK -> serial break
	// in QEMU), then h: the kernel prints its SysRq help.
	st := c.Tee(t, "vm")
	out, code = ctlLong(t, c, 30*time.Second, "sysrq", "vm", "h")
	if code != 0 {
		t.Fatalf("sysrq: exit %d, %q", code, out)
	}
	out, code = ctlLong(t, c, 60*time.Second, "wait", "vm", `sysrq: HELP|SysRq : HELP`, "--from", fmt.Sprint(st.Offset), "--timeout", "30s")
	if code != 0 {
		t.Fatalf("the guest did not print its SysRq help: exit %d, %q", code, out)
	}
	t.Logf("SysRq help seen: %s", strings.TrimSpace(out))

	// 4. Panic the guest; the watch's exec and webhook actions run.
	if _, code := ctlLong(t, c, 30*time.Second, "send", "vm", `echo c > /proc/sysrq-trigger\n`); code != 0 {
		t.Fatal("send the crash command failed")
	}
	waitFor(t, "the panic watch's exec action", func() bool { b, _ := os.ReadFile(execOut); return len(b) > 0 })
	b, _ := os.ReadFile(execOut)
	parts := strings.Split(string(b), "|")
	if len(parts) != 4 || parts[0] != "vm" || parts[1] != "panic" || parts[2] != "Kernel panic - not syncing" {
		t.Fatalf("exec action's environment: %q", b)
	}
	waitFor(t, "the panic watch's webhook", func() bool { return len(sink.got()) > 0 })
	p := sink.got()[0]
	if p["tee"] != "vm" || p["watch"] != "panic" || p["match"] != "Kernel panic - not syncing" ||
		fmt.Sprint(p["offset"]) != parts[3] || !strings.Contains(fmt.Sprint(p["line"]), "] Kernel panic - not syncing") {
		t.Fatalf("webhook payload: %v (exec offset %s)", p, parts[3])
	}
	if ctx, ok := p["context"].([]any); !ok || len(ctx) == 0 {
		t.Errorf("webhook payload has no context lines: %v", p["context"])
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `chartee_watch_matches_total{tee="vm",watch="panic"} 1`) {
		t.Errorf("metrics do not count the panic match:\n%s", grepLines(string(body), "chartee_watch"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestInputPacingPty measures input pacing on a real pty: with
// char_delay 2ms, 100 characters sent with ctl send take at least 200ms
// to reach the pty and arrive intact.
func TestInputPacingPty(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "console")
	metricsAddr := harness.FreeAddr(t)
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
metrics:
  listen: %s
tees:
  - name: paced
    input_pacing: {char_delay: 2ms}
    frontend: {type: pty, link: %q}
`, c.Socket, metricsAddr, link))
	c.Start(t)
	waitFor(t, "the pty frontend", func() bool { return c.Tee(t, "paced").Frontend.Up })
	tty := harness.OpenTTY(t, link)
	want := strings.Repeat("0123456789", 10)
	rec := harness.Record(t, "pty", tty)
	start := time.Now()
	out, code := ctlLong(t, c, 30*time.Second, "--json", "send", "paced", want)
	sendTook := time.Since(start)
	if code != 0 || !strings.Contains(out, `"written": 100`) {
		t.Fatalf("send: exit %d, %q", code, out)
	}
	rec.WaitUntil(t, "100 characters on the pty", 10*time.Second, func(b []byte) bool { return len(b) >= 100 })
	arrived := time.Since(start)
	if got := string(rec.Bytes()); got != want {
		t.Fatalf("the pty got %q, want %q", got, want)
	}
	if sendTook < 200*time.Millisecond {
		t.Fatalf("100 paced characters were sent in %s, want >= 200ms", sendTook)
	}
	t.Logf("100 characters at 2ms: send returned after %s, all arrived after %s", sendTook.Round(time.Millisecond), arrived.Round(time.Millisecond))
	// The paced tee answers status and scrapes while input is being
	// paced: the answers themselves show input still pending (had they
	// waited for the pacing, nothing would be). 1,000 characters at 2ms
	// keep it pending for 2 s, long enough on a loaded machine.
	long := strings.Repeat(want, 10)
	bg := exec.Command(harness.Binary(t), "ctl", "--socket", c.Socket, "send", "paced", long)
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	defer bg.Wait()
	waitFor(t, "paced input under way", func() bool { return c.Tee(t, "paced").Frontend.InputPending > 0 })
	t0 := time.Now()
	if p := c.Tee(t, "paced").Frontend.InputPending; p == 0 {
		t.Errorf("ctl show answered only once the paced input was written (%s)", time.Since(t0))
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^chartee_frontend_input_pending_bytes\{tee="paced"\} (\d+)`).FindStringSubmatch(string(body))
	if m == nil || m[1] == "0" {
		t.Errorf("a metrics scrape during paced input shows no pending input: %v", m)
	}
	rec.WaitUntil(t, "the long send on the pty", 30*time.Second, func(b []byte) bool { return len(b) >= len(want)+len(long) })
	if got := string(rec.Bytes()); got != want+long {
		t.Fatalf("the pty got %d bytes, not the two sends intact", len(got))
	}
}
