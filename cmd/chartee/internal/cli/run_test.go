package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"chartee/cmd/chartee/internal/api"
	"chartee/tee"
)

// daemonUnderTest is a running `chartee run`, in-process or as a process,
// and how to talk to it: the scenario below runs against both.
type daemonUnderTest struct {
	dir, config, socket, capture string
	// ctl runs `chartee ctl --socket SOCKET args...`.
	ctl func(args ...string) ctlResult
	// stream starts a `chartee ctl args...` that keeps running (events,
	// tail -f); stop ends it and returns its exit code.
	stream func(args ...string) (out func() string, stop func() int)
	signal func(os.Signal)
	logs   func() string
	// wait waits for the daemon to exit and returns its exit code.
	wait func(time.Duration) (int, error)
	// telnet is the bound address of backend "tel".
	telnet string
}

// scenarioConfig is a demo frontend fanned out to a raw TCP listener, a
// ring buffer and a capture file.
func scenarioConfig(dir, socket, capture, extra string) string {
	return fmt.Sprintf(`control:
  socket: %s
log:
  level: debug
tees:
  - name: t1
    frontend:
      type: demo
      hostname: scenario
      heartbeat: 0s
    backends:
      - name: tel
        type: tcp-listen
        listen: 127.0.0.1:0
        input: true
        replay: 4KiB
      - name: ring
        type: ringbuf
        size: 64KiB
      - name: cap
        type: file
        path: %s
%s`, socket, capture, extra)
}

// runScenario drives a running daemon through every ctl command, reloads
// good and bad, a reopen, and a clean shutdown.
func runScenario(t *testing.T, d *daemonUnderTest) {
	// The frontend's boot log reaches a TCP client, replayed or live.
	conn, err := net.DialTimeout("tcp", d.telnet, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readUntil(t, conn, "scenario login: ")

	r := d.ctl("list")
	if r.code != exitOK {
		t.Fatalf("ctl list: %d %s", r.code, r.stderr)
	}
	mustContain(t, "ctl list", r.stdout, "TEE", "t1", "demo", "yes")

	r = d.ctl("show", "t1")
	if r.code != exitOK {
		t.Fatalf("ctl show: %d %s", r.code, r.stderr)
	}
	mustContain(t, "ctl show", r.stdout, "tee:", "t1", "frontend:", "(up, primary)",
		"115200 baud", "tel", "ring", "cap", "tel#1", conn.LocalAddr().String())

	// The events stream is live once it reports a probe backend coming
	// and going; only then is anything it must see done.
	eventsOut, stopEvents := d.stream("events")
	waitFor(t, 10*time.Second, "the events stream", func() bool {
		d.ctl("attach", "t1", "null,name=probe")
		d.ctl("detach", "t1", "probe")
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(eventsOut(), "t1 detach backend=probe")
	})

	cap2 := filepath.Join(d.dir, "cap2.log")
	cap3 := filepath.Join(d.dir, "cap3.log")
	// The demo console is quiet until typed at (no heartbeat): what the
	// ring holds now is the stream up to cap2's attach.
	before := d.ctl("tail", "t1", "ring")
	if before.code != exitOK {
		t.Fatalf("ctl tail: %d %s", before.code, before.stderr)
	}
	if r = d.ctl("attach", "t1", "file,name=cap2,path="+cap2); r.code != exitOK {
		t.Fatalf("ctl attach: %d %s", r.code, r.stderr)
	}
	mustContain(t, "attach", r.stdout, "attached backend cap2 to tee t1")
	if r = d.ctl("attach", "t1", "file,name=cap2,path="+cap2); r.code != exitError {
		t.Fatalf("second attach: %d %s", r.code, r.stderr)
	}
	mustContain(t, "attach twice", r.stderr, "cap2", "(exists)")

	// Typing reaches the frontend, which echoes to every leg, and a
	// follower of the ring sees it live.
	followOut, stopFollow := d.stream("tail", "-f", "t1", "ring")
	waitFor(t, 5*time.Second, "tail -f to catch up", func() bool { return strings.Contains(followOut(), "scenario login: ") })
	if _, err := conn.Write([]byte("root\r")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, conn, "root@scenario:~# ")
	waitFor(t, 5*time.Second, "tail -f to follow", func() bool { return strings.Contains(followOut(), "root@scenario:~# ") })
	if code := stopFollow(); code != exitOK {
		t.Errorf("tail -f exit %d", code)
	}

	r = d.ctl("--json", "swap", "t1", "cap2", "file,path="+cap3, "--mode", "overlap", "--drain-timeout", "1s")
	if r.code != exitOK {
		t.Fatalf("ctl swap: %d %s", r.code, r.stderr)
	}
	var rep tee.SwapReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Backend != "cap2" || rep.Mode != "overlap" {
		t.Fatalf("swap report %q: %+v %v", r.stdout, rep, err)
	}
	if r = d.ctl("swap", "t1", "cap2", "file,path="+cap2); r.code != exitOK {
		t.Fatalf("ctl swap back: %d %s", r.code, r.stderr)
	}
	mustContain(t, "swap", r.stdout, "swapped t1/cap2 (handover)", "cut at offset:")
	if r = d.ctl("detach", "t1", "cap2"); r.code != exitOK {
		t.Fatalf("ctl detach: %d %s", r.code, r.stderr)
	}
	if r = d.ctl("detach", "t1", "cap2"); r.code != exitError {
		t.Fatalf("second detach: %d", r.code)
	}
	mustContain(t, "detach twice", r.stderr, "(not_found)")
	if r = d.ctl("show", "nosuchtee"); r.code != exitError || !strings.Contains(r.stderr, "not_found") {
		t.Fatalf("show of a missing tee: %d %s", r.code, r.stderr)
	}

	tail := d.ctl("tail", "t1", "ring")
	if tail.code != exitOK {
		t.Fatalf("ctl tail: %d %s", tail.code, tail.stderr)
	}
	// What cap2 and cap3 captured, across the swap to cap3 and back, is
	// exactly the stream from cap2's attach on, byte for byte: the echo
	// of "root" and the prompt. The console was quiet during both swaps,
	// so cap3 (a file from the cut on) got nothing, and cap2, opened
	// again by the handover back, kept what it had (it appends).
	if !strings.HasPrefix(tail.stdout, before.stdout) {
		t.Fatalf("the ring %q does not continue what it held at cap2's attach %q", tail.stdout, before.stdout)
	}
	want := tail.stdout[len(before.stdout):]
	c2, err := os.ReadFile(cap2)
	if err != nil {
		t.Fatal(err)
	}
	c3, err := os.ReadFile(cap3)
	if err != nil {
		t.Fatal(err)
	}
	if string(c2) != want || len(c3) != 0 {
		t.Errorf("cap2 %q and cap3 %q; want cap2 %q and cap3 empty", c2, c3, want)
	}
	// (Whether the boot log's first line is in depends on whether the
	// ring was attached before the frontend's first read.)
	mustContain(t, "tail", tail.stdout, "crng init done", "scenario login: root", "root@scenario:~# ")
	if r = d.ctl("tail", "t1", "ring", "--offset", "10"); r.code != exitOK || r.stdout != tail.stdout[10:] {
		t.Errorf("tail --offset 10: %d %q, want %q", r.code, r.stdout, tail.stdout[10:])
	}
	if r = d.ctl("tail", "t1", "cap"); r.code != exitError || !strings.Contains(r.stderr, "not_a_ringbuf") {
		t.Errorf("tail of a file backend: %d %s", r.code, r.stderr)
	}

	waitFor(t, 5*time.Second, "attach, swap and detach events", func() bool {
		out := eventsOut()
		return strings.Contains(out, "t1 attach backend=cap2") && strings.Contains(out, "t1 swap backend=cap2") &&
			strings.Contains(out, `t1 detach backend=cap2 leg=cap2 offset=`)
	})
	if code := stopEvents(); code != exitOK {
		t.Errorf("ctl events exit %d", code)
	}

	// SIGHUP with a backend added: it appears.
	writeFile(t, d.config, scenarioConfig(d.dir, d.socket, d.capture, `      - name: extra
        type: ringbuf
`))
	d.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the reloaded backend", func() bool {
		return strings.Contains(d.ctl("show", "t1").stdout, "extra")
	})
	waitFor(t, 5*time.Second, "the reload logged", func() bool { return strings.Contains(d.logs(), "config reloaded") })
	mustContain(t, "reload log", d.logs(), "attached=[t1/extra]")

	// SIGHUP with a broken file: logged with its position, and the
	// running config stays.
	writeFile(t, d.config, scenarioConfig(d.dir, d.socket, d.capture, `      - name: extra
        type: ringbuf
        sise: 1MiB
`))
	d.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the failed reload logged", func() bool {
		return strings.Contains(d.logs(), "the running config stays") && strings.Contains(d.logs(), "problem=")
	})
	mustContain(t, "failed reload log", d.logs(), d.config+":25:9", "sise")
	r = d.ctl("show", "t1")
	if r.code != exitOK || !strings.Contains(r.stdout, "extra") {
		t.Fatalf("after a failed reload: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// ctl reload says the same, with every problem.
	r = d.ctl("reload")
	if r.code != exitError {
		t.Fatalf("ctl reload of a broken file: %d %s", r.code, r.stdout)
	}
	mustContain(t, "ctl reload", r.stderr, "(invalid_config)", "sise")

	d.signal(syscall.SIGUSR1)
	waitFor(t, 5*time.Second, "the reopen logged", func() bool { return strings.Contains(d.logs(), "capture files reopened") })

	// The ring holds the whole stream so far; the capture must hold the
	// same bytes, from where its leg started, once chartee has stopped.
	r = d.ctl("--json", "show", "t1")
	var st api.TeeStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("show --json: %v: %q", err, r.stdout)
	}
	// A ring counts the bytes it received, from its own attach on: the
	// two legs' first stream offsets line the two up.
	first := map[string]uint64{}
	for _, l := range st.Legs {
		first[l.Name] = l.FirstOffset
	}
	skipRing, skipCap := uint64(0), uint64(0)
	if first["cap"] >= first["ring"] {
		skipRing = first["cap"] - first["ring"]
	} else {
		skipCap = first["ring"] - first["cap"]
	}
	tail = d.ctl("tail", "t1", "ring", "--offset", strconv.FormatUint(skipRing, 10))
	conn.Close()
	d.signal(syscall.SIGTERM)
	code, err := d.wait(15 * time.Second)
	if err != nil || code != exitOK {
		t.Fatalf("after SIGTERM: exit %d, %v\n%s", code, err, d.logs())
	}
	got, err := os.ReadFile(d.capture)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(got)) < skipCap {
		t.Fatalf("capture too short: %q", got)
	}
	got = got[skipCap:]
	if len(tail.stdout) == 0 || !strings.HasPrefix(string(got), tail.stdout) {
		t.Errorf("capture (%d bytes) does not start with the stream (%d bytes):\n%q\n%q", len(got), len(tail.stdout), got, tail.stdout)
	}
	if _, err := os.Stat(d.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
	mustContain(t, "shutdown log", d.logs(), "shutting down", "stopped")
}

// readUntil reads conn until want shows up.
func readUntil(t *testing.T, conn net.Conn, want string) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), want) {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading for %q: %v; got %q", want, err, got)
		}
	}
	return string(got)
}

// fakeSignals stands in for signal.Notify: the test delivers signals.
type fakeSignals struct {
	mu sync.Mutex
	c  chan<- os.Signal
}

func (f *fakeSignals) notify(c chan<- os.Signal, _ ...os.Signal) {
	f.mu.Lock()
	f.c = c
	f.mu.Unlock()
}

func (f *fakeSignals) stop(chan<- os.Signal) {}

func (f *fakeSignals) send(s os.Signal) {
	f.mu.Lock()
	c := f.c
	f.mu.Unlock()
	c <- s
}

// startInProcess runs app.main(args) in this process with ctx, signals
// from sigs and stderr in a buffer, and waits until it is ready. main's
// exit code arrives on done.
func startInProcess(t *testing.T, ctx context.Context, args ...string) (stderr *syncBuffer, sigs *fakeSignals, done <-chan int, info readyInfo) {
	t.Helper()
	stderr, sigs = &syncBuffer{}, &fakeSignals{}
	exit := make(chan int, 1)
	ready := make(chan readyInfo, 1)
	a := &app{stdout: io.Discard, stderr: stderr, ctx: ctx, getenv: mapEnv(nil),
		notify: sigs.notify, stopNotify: sigs.stop, ready: func(i readyInfo) { ready <- i }}
	go func() { exit <- a.main(args) }()
	select {
	case info = <-ready:
	case code := <-exit:
		t.Fatalf("run exited %d:\n%s", code, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("not ready:\n%s", stderr.String())
	}
	return stderr, sigs, exit, info
}

// TestRunInProcess runs the scenario against Main's run in this process,
// under the race detector, with the control API over TCP and metrics on.
func TestRunInProcess(t *testing.T) {
	dir := shortTempDir(t)
	d := &daemonUnderTest{dir: dir, config: filepath.Join(dir, "c.yaml"),
		socket: filepath.Join(dir, "run", "ctl.sock"), capture: filepath.Join(dir, "cap.log")}
	writeFile(t, d.config, scenarioConfig(dir, d.socket, d.capture, ""))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr, sigs, done, info := startInProcess(t, ctx, "run", "-c", d.config)
	if fi, err := os.Stat(filepath.Dir(d.socket)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory not made private: %v %v", fi, err)
	}
	d.telnet = info.Listeners["t1/tel"]
	mustContain(t, "readiness", stderr.String(), "running "+d.config, "tee t1: frontend demo", "listening on "+d.telnet,
		"control socket: "+d.socket)

	env := map[string]string{"CHARTEE_SOCKET": d.socket}
	d.ctl = func(args ...string) ctlResult { return runCmd(ctx, env, append([]string{"ctl"}, args...)...) }
	d.stream = func(args ...string) (func() string, func() int) {
		var out syncBuffer
		ectx, ecancel := context.WithCancel(ctx)
		code := make(chan int, 1)
		go func() {
			a := &app{stdout: &out, stderr: &out, ctx: ectx, getenv: mapEnv(env)}
			code <- a.main(append([]string{"ctl"}, args...))
		}()
		return out.String, func() int { ecancel(); return <-code }
	}
	d.signal = sigs.send
	d.logs = stderr.String
	d.wait = func(timeout time.Duration) (int, error) {
		select {
		case c := <-done:
			return c, nil
		case <-time.After(timeout):
			return -1, errors.New("run did not return")
		}
	}
	runScenario(t, d)
}

// TestRunControlTCPAndMetrics serves the API on TCP with a token, and
// metrics; a missing token file stops the start.
func TestRunControlTCPAndMetrics(t *testing.T) {
	dir := shortTempDir(t)
	token := filepath.Join(dir, "token")
	cfgPath := filepath.Join(dir, "c.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`control:
  socket: %s
  listen: 127.0.0.1:0
  token_file: %s
metrics:
  listen: 127.0.0.1:0
tees:
  - name: t1
    frontend: {type: demo, heartbeat: 0s}
    backends:
      - {name: ring, type: ringbuf}
`, filepath.Join(dir, "ctl.sock"), token))

	// No token file: an error before anything starts.
	r := runCmd(context.Background(), nil, "run", "-c", cfgPath)
	if r.code != exitError || !strings.Contains(r.stderr, "token_file") {
		t.Fatalf("missing token file: %d %s", r.code, r.stderr)
	}
	writeFile(t, token, "\n")
	r = runCmd(context.Background(), nil, "run", "-c", cfgPath)
	if r.code != exitError || !strings.Contains(r.stderr, "is empty") {
		t.Fatalf("empty token file: %d %s", r.code, r.stderr)
	}
	writeFile(t, token, "  tok-123\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr, _, done, info := startInProcess(t, ctx, "-c", cfgPath)
	if info.ControlTCP == "" || info.MetricsURL == "" {
		t.Fatalf("ready: %+v", info)
	}
	mustContain(t, "readiness", stderr.String(), "control API:    http://"+info.ControlTCP, "metrics:        "+info.MetricsURL)

	url := "http://" + info.ControlTCP
	r = runCmd(ctx, nil, "ctl", "--url", url, "--token-file", token, "list")
	if r.code != exitOK || !strings.Contains(r.stdout, "t1") {
		t.Fatalf("ctl over TCP: %d %s %s", r.code, r.stdout, r.stderr)
	}
	wrong := filepath.Join(dir, "wrong")
	writeFile(t, wrong, "nope")
	r = runCmd(ctx, nil, "ctl", "--url", url, "--token-file", wrong, "list")
	if r.code != exitError || !strings.Contains(r.stderr, "(unauthorized)") {
		t.Fatalf("wrong token: %d %s", r.code, r.stderr)
	}

	var body string
	waitFor(t, 5*time.Second, "frontend up in the metrics", func() bool {
		body = httpGet(t, info.MetricsURL)
		return strings.Contains(body, `chartee_frontend_up{tee="t1"} 1`)
	})
	for _, want := range []string{"chartee_config_last_reload_success 1", "chartee_build_info{version=",
		`chartee_backend_legs{backend="ring",tee="t1"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The daemon ends with a.ctx like with SIGTERM.
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return")
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunBinary runs the scenario against the real binary, with real
// signals.
func TestRunBinary(t *testing.T) {
	bin := chartee(t)
	dir := shortTempDir(t)
	d := &daemonUnderTest{dir: dir, config: filepath.Join(dir, "c.yaml"),
		socket: filepath.Join(dir, "ctl.sock"), capture: filepath.Join(dir, "cap.log")}
	writeFile(t, d.config, scenarioConfig(dir, d.socket, d.capture, ""))
	p := startProcess(t, bin, nil, "run", "-c", d.config)

	re := regexp.MustCompile(`backend tel\s+listening on (\S+)`)
	waitFor(t, 15*time.Second, "readiness", func() bool { return re.MatchString(p.stderr.String()) })
	d.telnet = re.FindStringSubmatch(p.stderr.String())[1]
	d.ctl = func(args ...string) ctlResult {
		return runBinary(t, bin, append([]string{"ctl", "--socket", d.socket}, args...)...)
	}
	d.stream = func(args ...string) (func() string, func() int) {
		ev := startProcess(t, bin, nil, append([]string{"ctl", "--socket", d.socket}, args...)...)
		return ev.stdout.String, func() int {
			ev.cmd.Process.Signal(syscall.SIGTERM)
			code, _ := ev.wait(5 * time.Second)
			// Killed by the signal: ctl has no handler, and that is
			// how a user ends it (Ctrl-C). Count that as 0.
			if code == -1 {
				return exitOK
			}
			return code
		}
	}
	d.signal = func(s os.Signal) { p.cmd.Process.Signal(s) }
	d.logs = p.stderr.String
	d.wait = p.wait
	runScenario(t, d)
}

// process is a chartee process started by a test.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

func startProcess(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.Env = append(cleanEnv(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit code, or -1 for a death by signal.
func (p *process) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, errors.New("process did not exit")
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// runBinary runs bin to completion.
func runBinary(t *testing.T, bin string, args ...string) ctlResult {
	t.Helper()
	var out, errb strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = cleanEnv()
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return ctlResult{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

// cleanEnv is the environment without anything that would steer chartee
// to a real daemon or demo.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "CHARTEE_SOCKET" && k != "XDG_RUNTIME_DIR" && k != "TMPDIR" {
			env = append(env, kv)
		}
	}
	return env
}

// TestDemoBinary runs the built-in demo as `go run ./cmd/chartee` would:
// no arguments (but a free port), a telnet client sees the boot log and
// the login prompt, and `chartee ctl` finds the demo without --socket.
func TestDemoBinary(t *testing.T) {
	bin := chartee(t)
	xdg := shortTempDir(t)
	tmp := shortTempDir(t)
	env := []string{"XDG_RUNTIME_DIR=" + xdg, "TMPDIR=" + tmp}
	p := startProcess(t, bin, env, "--port", "0")

	re := regexp.MustCompile(`(?m)^  telnet (\S+) (\d+) `)
	waitFor(t, 15*time.Second, "the demo's instructions", func() bool { return re.MatchString(p.stderr.String()) })
	m := re.FindStringSubmatch(p.stderr.String())
	mustContain(t, "demo instructions", p.stderr.String(), "built-in demo", "chartee ctl list", "curl http://127.0.0.1:")
	if strings.Contains(p.stderr.String(), "--socket") {
		t.Errorf("the demo's socket is where ctl looks by itself; no --socket needed:\n%s", p.stderr.String())
	}

	conn, err := net.DialTimeout("tcp", net.JoinHostPort(m[1], m[2]), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := readUntil(t, conn, "demo login: ")
	mustContain(t, "telnet", got, "chartee demo: a simulated console", "Linux version")

	cmd := exec.Command(bin, "ctl", "list")
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "console") {
		t.Fatalf("ctl list without --socket: %v\n%s", err, out)
	}

	capture := regexp.MustCompile(`The capture is written to (\S+)\.`).FindStringSubmatch(p.stderr.String())
	if capture == nil || !strings.HasPrefix(capture[1], tmp) {
		t.Fatalf("capture path not in $TMPDIR %s:\n%s", tmp, p.stderr.String())
	}
	conn.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code, err := p.wait(15 * time.Second); err != nil || code != exitOK {
		t.Fatalf("exit %d %v\n%s", code, err, p.stderr.String())
	}
	data, err := os.ReadFile(capture[1])
	if err != nil || !strings.Contains(string(data), "demo login: ") {
		t.Errorf("capture %q: %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(xdg, "chartee-demo.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("demo socket left behind: %v", err)
	}
}

// A listener on a busy address stops the start with the reason and a
// hint, and leaves nothing running.
func TestRunAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := shortTempDir(t)
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control:
  socket: %s
tees:
  - name: t1
    frontend: {type: demo}
    backends:
      - {name: tel, type: tcp-listen, listen: %q}
`, filepath.Join(dir, "ctl.sock"), busy.Addr().String()))
	r := runCmd(context.Background(), nil, "run", "-c", cfg)
	if r.code != exitError {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	mustContain(t, "stderr", r.stderr, "address already in use", "ss -ltnp")
	if _, err := os.Stat(filepath.Join(dir, "ctl.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket made for a daemon that never started: %v", err)
	}
}

// A config that does not load is reported in full, and nothing starts.
func TestRunBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, cfg, "tees:\n  - name: t1\n    frontend: {type: demo, colour: red}\n")
	r := runCmd(context.Background(), nil, "run", "-c", cfg)
	if r.code != exitError {
		t.Fatalf("exit %d", r.code)
	}
	mustContain(t, "stderr", r.stderr, cfg+":3:", "colour", "the config has 1 error")
}

// A second SIGTERM cuts short a shutdown that waits for a leg which cannot
// drain: a lossless (block) capture into a FIFO nobody reads.
func TestRunSecondSignal(t *testing.T) {
	dir := shortTempDir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control:
  socket: %s
tees:
  - name: t1
    frontend:
      type: exec
      command: [sh, -c, "head -c 1000000 /dev/zero; sleep 60"]
      pty: false
    backends:
      - {name: stuck, type: file, path: %q, on_overflow: block}
`, filepath.Join(dir, "ctl.sock"), fifo))
	stderr, sigs, done, _ := startInProcess(t, context.Background(), "run", "-c", cfg)
	// The FIFO holds 64KiB; the rest waits in the leg's queue.
	waitFor(t, 5*time.Second, "the stuck leg's queue to fill", func() bool {
		r := runCmd(context.Background(), nil, "ctl", "--socket", filepath.Join(dir, "ctl.sock"), "--json", "show", "t1")
		var st api.TeeStatus
		return json.Unmarshal([]byte(r.stdout), &st) == nil && len(st.Backends) == 1 && st.Backends[0].QueueBytes > 0
	})
	sigs.send(syscall.SIGTERM)
	select {
	case code := <-done:
		t.Fatalf("shutdown did not wait for the stuck leg (exit %d)", code)
	case <-time.After(300 * time.Millisecond):
	}
	sigs.send(syscall.SIGTERM)
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a second SIGTERM did not end the shutdown:\n%s", stderr.String())
	}
	mustContain(t, "log", stderr.String(), "second signal")
}
