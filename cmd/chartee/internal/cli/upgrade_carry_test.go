package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"chartee/backends/capture"
)

// guest is the test's console: a TCP server chartee's tcp-connect
// frontend dials, printing a numbered line every millisecond and keeping
// what is typed.
type guest struct {
	ln    net.Listener
	mu    sync.Mutex
	typed bytes.Buffer
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newGuest(t *testing.T) *guest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &guest{ln: ln, stop: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				g.mu.Lock()
				g.typed.Write(buf[:n])
				g.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := fmt.Fprintf(c, "%08d\n", i); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(g.stop); ln.Close(); g.wg.Wait() })
	return g
}

func (g *guest) typedText() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.typed.String()
}

// reader is a raw client that records everything it gets.
type reader struct {
	conn net.Conn
	mu   sync.Mutex
	got  bytes.Buffer
	err  error
	done chan struct{}
}

func newReader(t *testing.T, addr string) *reader {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{conn: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			r.mu.Lock()
			r.got.Write(buf[:n])
			if err != nil {
				r.err = err
			}
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

func (r *reader) snapshot() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String(), r.err
}

// checkCounter asserts s is consecutive numbered lines (the first may be
// cut at the front: a client joins mid-line) and returns how many.
func checkCounter(t *testing.T, who, s string) int {
	t.Helper()
	if i := strings.IndexByte(s, '\n'); i >= 0 && i != 8 {
		s = s[i+1:]
	}
	lines := strings.Split(s, "\n")
	lines = lines[:len(lines)-1] // the last one may still be arriving
	prev := -1
	for i, l := range lines {
		n, err := strconv.Atoi(l)
		if err != nil || len(l) != 8 || (prev >= 0 && n != prev+1) {
			t.Fatalf("%s: line %d is %q after %d: the stream is not exact", who, i, l, prev)
		}
		prev = n
	}
	return len(lines)
}

type carryFixture struct {
	bin, sock, raw string
	cfg, metrics   string
	p              *process
	g              *guest
}

func startCarryFixture(t *testing.T) *carryFixture {
	t.Helper()
	bin := chartee(t)
	dir := shortTempDir(t)
	g := newGuest(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
metrics: {listen: "127.0.0.1:0"}
tees:
  - name: console
    frontend: {type: tcp-connect, address: %q}
    backends:
      - {name: raw, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: block}
`, sock, g.ln.Addr().String()))
	p := startProcess(t, bin, nil, "run", "-c", cfg)
	f := &carryFixture{bin: bin, sock: sock, p: p, g: g, cfg: cfg}
	waitFor(t, 15*time.Second, "the listener and metrics", func() bool {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if _, a, ok := strings.Cut(l, "backend raw          listening on "); ok {
				f.raw = a
			}
			if _, a, ok := strings.Cut(l, "  metrics:        "); ok {
				f.metrics = a
			}
		}
		return f.raw != "" && f.metrics != ""
	})
	return f
}

func (f *carryFixture) upgrade(t *testing.T, args ...string) ctlResult {
	t.Helper()
	return runBinary(t, f.bin, append([]string{"ctl", "--socket", f.sock, "--json", "upgrade"}, args...)...)
}

// killByPID ends a daemon an upgrade started (no longer our child).
func killByPID(t *testing.T, pid int) {
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	})
}

func waitGrowth(t *testing.T, r *reader, atLeast int) {
	t.Helper()
	waitFor(t, 10*time.Second, "more output", func() bool {
		s, _ := r.snapshot()
		return len(s) >= atLeast
	})
}

// TestUpgradeCarriesClients: upgrades alternating two builds with
// different versions keep both raw clients attached with byte-exact
// streams, carry the stream offset, and a line typed after the last one
// reaches the console.
func TestUpgradeCarriesClients(t *testing.T) {
	f := startCarryFixture(t)
	other := filepath.Join(filepath.Dir(f.bin), "chartee-v2")
	if out, err := exec.Command("go", "build", "-ldflags", "-X chartee/cmd/chartee/internal/cli.Version=v2-test",
		"-o", other, "chartee/cmd/chartee").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The first build's version: "devel" in a work tree with changes, a
	// pseudo-version stamped from git in a clean checkout (as in CI).
	first := buildInfoVersion(t, httpGet(t, f.metrics))
	a, b := newReader(t, f.raw), newReader(t, f.raw)
	waitGrowth(t, a, 900)
	waitGrowth(t, b, 900)
	lastOffset := uint64(0)
	lastOut, lastBackendOut := 0.0, 0.0
	for i := range 6 {
		bin, want := other, "v2-test"
		if i%2 == 1 {
			bin, want = f.bin, first
		}
		r := f.upgrade(t, "--binary", bin)
		if r.code != exitOK {
			t.Fatalf("upgrade %d: exit %d\n%s%s\ndaemon log:\n%s", i, r.code, r.stdout, r.stderr, f.p.stderr.String())
		}
		var rep struct {
			NewVersion string            `json:"new_version"`
			NewPID     int               `json:"new_pid"`
			Cuts       map[string]uint64 `json:"cuts"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		killByPID(t, rep.NewPID)
		if !strings.HasPrefix(rep.NewVersion, want) {
			t.Errorf("upgrade %d: new version %q, want %s", i, rep.NewVersion, want)
		}
		if rep.Cuts["console"] <= lastOffset {
			t.Errorf("upgrade %d: cut %d not past the last one %d: the stream offset went back", i, rep.Cuts["console"], lastOffset)
		}
		lastOffset = rep.Cuts["console"]
		sa, _ := a.snapshot()
		waitGrowth(t, a, len(sa)+900)
		// The metrics listener came along; chartee_build_info names the
		// new version, and the frontend byte counter did not reset.
		m := httpGet(t, f.metrics)
		mustContain(t, "metrics after upgrade", m, `version="`+want)
		out := metricValue(t, m, `chartee_frontend_bytes_total{direction="out",tee="console"}`)
		if out < float64(rep.Cuts["console"]) || out < lastOut {
			t.Errorf("upgrade %d: frontend bytes out %v after the cut at %d (last %v): the counter reset", i, out, rep.Cuts["console"], lastOut)
		}
		lastOut = out
		// So did the backend's (it counts what its legs were written).
		bout := metricMatching(t, m, "chartee_backend_bytes_total{", `backend="raw"`, `direction="out"`)
		if bout < lastBackendOut {
			t.Errorf("upgrade %d: backend bytes out %v after %v: the counter reset", i, bout, lastBackendOut)
		}
		lastBackendOut = bout
	}
	// Each new process logged the tee's upgrade event (their stderr is
	// the first one's).
	if !waitUntil(5*time.Second, func() bool {
		return strings.Count(f.p.stderr.String(), `reason="from `+first+` (pid`) == 3 &&
			strings.Count(f.p.stderr.String(), `reason="from v2-test (pid`) == 3
	}) {
		t.Fatalf("upgrade events missing:\n%s", f.p.stderr.String())
	}
	list := runBinary(t, f.bin, "ctl", "--socket", f.sock, "--json", "list")
	if list.code != exitOK || !strings.Contains(list.stdout, `"legs":2`) && !strings.Contains(list.stdout, `"legs": 2`) {
		t.Errorf("after the upgrades: %s%s", list.stdout, list.stderr)
	}
	typer, err := net.Dial("tcp", f.raw)
	if err != nil {
		t.Fatal(err)
	}
	defer typer.Close()
	fmt.Fprintf(typer, "typed after the last upgrade\n")
	waitFor(t, 10*time.Second, "the typed line at the console", func() bool {
		return strings.Contains(f.g.typedText(), "typed after the last upgrade\n")
	})
	for name, r := range map[string]*reader{"a": a, "b": b} {
		s, err := r.snapshot()
		if err != nil {
			t.Fatalf("client %s was disconnected: %v", name, err)
		}
		n := checkCounter(t, "client "+name, s)
		t.Logf("client %s: %d exact lines across 6 upgrades", name, n)
	}
}

// TestUpgradeRollsBack: a new binary that fails in either phase is rolled
// back and `ctl upgrade` says why: before the cut (it exits 1, hangs
// before it is prepared, cannot parse the config: nothing was frozen) and
// after it (it exits, fails or hangs once it has the state and files: the
// tees thaw). The clients stay attached with exact streams, the daemon
// unchanged.
func TestUpgradeRollsBack(t *testing.T) {
	f := startCarryFixture(t)
	dir := shortTempDir(t)
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, "#!/bin/sh\n"+body+"\n")
		os.Chmod(p, 0o755)
		return p
	}
	// The scripts speak the handover protocol on fd 3 as far as their
	// phase: "prepared", then the state header arrives.
	const prepared = "printf 'prepared fake\\n' >&3; read -r header <&3"
	a := newReader(t, f.raw)
	waitGrowth(t, a, 900)
	for _, c := range []struct {
		bin, timeout, why string
	}{
		{script("exit1", "echo 'new binary: cannot start' >&2\nexit 1"), "10s",
			"(nothing was frozen): handover: the new process exited before it was prepared: exit status 1"},
		{script("hang", "exec sleep 60"), "500ms",
			"(nothing was frozen): handover: the new process was not prepared within 500ms; killed it"},
		{script("exit-after", prepared+"\nexit 3"), "10s",
			"carries on: handover: the new process exited before it was ready: exit status 3"},
		{script("fail-after", prepared+"\nprintf 'fail cannot adopt the tees\\n' >&3\nexit 1"), "10s",
			"carries on: handover: the new process failed: cannot adopt the tees"},
		// The timeout bounds the prepare phase too: /bin/sh must be
		// prepared within it on a loaded machine.
		{script("hang-after", prepared+"\nexec sleep 60"), "3s",
			"carries on: handover: the new process was not ready within 3s; killed it"},
	} {
		r := f.upgrade(t, "--binary", c.bin, "--timeout", c.timeout)
		if r.code != exitError {
			t.Fatalf("upgrade to %s: exit %d, want %d\n%s%s", c.bin, r.code, exitError, r.stdout, r.stderr)
		}
		mustContain(t, "ctl upgrade "+filepath.Base(c.bin), r.stderr, "rolled back, this daemon carries on", c.why)
		s, _ := a.snapshot()
		waitGrowth(t, a, len(s)+900)
	}
	// The new binary (the same file) cannot parse the config: it says
	// why, and the daemon carries on with the config it runs.
	good, _ := os.ReadFile(f.cfg)
	writeFile(t, f.cfg, string(good)+"bogus_key: 1\n")
	r := f.upgrade(t, "--binary", f.bin)
	if r.code != exitError {
		t.Fatalf("upgrade with a broken config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustContain(t, "ctl upgrade with a broken config", r.stderr, "rolled back, this daemon carries on (nothing was frozen)",
		"the new process failed:", "bogus_key")
	writeFile(t, f.cfg, string(good))
	s, _ := a.snapshot()
	waitGrowth(t, a, len(s)+900)

	typer, err := net.Dial("tcp", f.raw)
	if err != nil {
		t.Fatal(err)
	}
	defer typer.Close()
	fmt.Fprintf(typer, "typed after the rollbacks\n")
	waitFor(t, 10*time.Second, "the typed line at the console", func() bool {
		return strings.Contains(f.g.typedText(), "typed after the rollbacks\n")
	})
	s, err = a.snapshot()
	if err != nil {
		t.Fatalf("the client was disconnected: %v", err)
	}
	checkCounter(t, "client", s)
	if code, _ := f.p.wait(0); code != -1 {
		t.Fatalf("the daemon exited")
	}
}

func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// metricValue finds one sample in a Prometheus exposition.
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in:\n%s", series, exposition)
	return 0
}

// metricMatching finds the one sample of a series whose line has every
// label given.
func metricMatching(t *testing.T, exposition, prefix string, labels ...string) float64 {
	t.Helper()
next:
	for _, l := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		for _, lb := range labels {
			if !strings.Contains(l, lb) {
				continue next
			}
		}
		f, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		return f
	}
	t.Fatalf("no %s%v in:\n%s", prefix, labels, exposition)
	return 0
}

// buildInfoVersion is the version label of chartee_build_info in a scrape.
func buildInfoVersion(t *testing.T, scrape string) string {
	t.Helper()
	_, rest, ok := strings.Cut(scrape, `chartee_build_info{version="`)
	v, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 || v == "" {
		t.Fatalf("no chartee_build_info version in:\n%s", scrape)
	}
	return v
}

// checkFromZero asserts s is the guest's counter from its first line,
// consecutive (the last line may still be arriving), and returns how many
// whole lines it holds.
func checkFromZero(t *testing.T, who, s string) int {
	t.Helper()
	if !strings.HasPrefix(s, "00000000\n") {
		t.Fatalf("%s does not start at the stream's first line: %q", who, s[:min(len(s), 40)])
	}
	return checkCounter(t, who, s)
}

// TestUpgradeCarriesLocalLegs: across upgrades alternating two builds, a
// program reading a pty leg through its link never reads a hangup and
// gets an exact stream; a timestamped and an asciicast capture hold the
// whole stream from its first byte exactly once (one asciicast header);
// a ring buffer serves the whole stream at its offsets, and a download
// begun before the upgrades resumes at its offset after them.
func TestUpgradeCarriesLocalLegs(t *testing.T) {
	bin := chartee(t)
	other := filepath.Join(filepath.Dir(bin), "chartee-v2-local")
	if out, err := exec.Command("go", "build", "-ldflags", "-X chartee/cmd/chartee/internal/cli.Version=v2-test",
		"-o", other, "chartee/cmd/chartee").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := shortTempDir(t)
	g := newGuest(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "c.yaml")
	link, ts, cast := filepath.Join(dir, "console"), filepath.Join(dir, "cap.log"), filepath.Join(dir, "cap.cast")
	writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
tees:
  - name: console
    frontend: {type: tcp-connect, address: %q}
    backends:
      - {name: pty, type: pty, link: %q, on_overflow: block}
      - {name: ts, type: file, path: %q, format: timestamped, on_overflow: block}
      - {name: cast, type: file, path: %q, format: asciicast, on_overflow: block}
      - {name: ring, type: ringbuf, size: 4MiB}
`, sock, g.ln.Addr().String(), link, ts, cast))
	p := startProcess(t, bin, nil, "run", "-c", cfg)
	var slave *os.File
	waitFor(t, 15*time.Second, "the pty's link", func() bool {
		var err error
		slave, err = os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
		return err == nil
	})
	picocom := &reader{done: make(chan struct{})}
	go func() {
		defer close(picocom.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := slave.Read(buf)
			picocom.mu.Lock()
			picocom.got.Write(buf[:n])
			if err != nil {
				picocom.err = err
			}
			picocom.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { slave.Close(); <-picocom.done })
	waitGrowth(t, picocom, 900)
	ctl := func(args ...string) ctlResult {
		return runBinary(t, bin, append([]string{"ctl", "--socket", sock}, args...)...)
	}
	// A download of the ring buffer, begun before the upgrades.
	first := ctl("tail", "console", "ring")
	if first.code != exitOK {
		t.Fatalf("ctl tail: exit %d\n%s", first.code, first.stderr)
	}
	resumeAt := len(first.stdout)
	for i := range 4 {
		to := other
		if i%2 == 1 {
			to = bin
		}
		r := runBinary(t, bin, "ctl", "--socket", sock, "--json", "upgrade", "--binary", to)
		if r.code != exitOK {
			t.Fatalf("upgrade %d: exit %d\n%s%s\ndaemon log:\n%s", i, r.code, r.stdout, r.stderr, p.stderr.String())
		}
		var rep struct {
			NewPID int `json:"new_pid"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		killByPID(t, rep.NewPID)
		s, _ := picocom.snapshot()
		waitGrowth(t, picocom, len(s)+900)
	}
	s, err := picocom.snapshot()
	if err != nil {
		t.Fatalf("the pty's reader read a hangup: %v", err)
	}
	t.Logf("pty reader: %d exact lines across 4 upgrades", checkCounter(t, "pty reader", s))

	rest := ctl("tail", "console", "ring", "--offset", strconv.Itoa(resumeAt))
	if rest.code != exitOK {
		t.Fatalf("ctl tail --offset: exit %d\n%s", rest.code, rest.stderr)
	}
	ring := first.stdout + rest.stdout
	n := checkFromZero(t, "ring buffer (download resumed after the upgrades)", ring)
	if all := ctl("tail", "console", "ring"); !strings.HasPrefix(all.stdout, ring[:n*9]) {
		t.Fatal("the ring buffer read whole differs from the download resumed at its offset")
	}

	// The captures: wait until they hold what the ring buffer had.
	var tsData, castData []byte
	waitFor(t, 10*time.Second, "the captures to reach the ring buffer's lines", func() bool {
		b, err := os.ReadFile(ts)
		if err != nil {
			return false
		}
		lines, err := capture.ParseTimestamped(b, false)
		if err != nil {
			t.Fatalf("timestamped capture: %v", err)
		}
		tsData = tsData[:0]
		for _, l := range lines {
			tsData = append(tsData, l.Data...)
		}
		c, err := os.ReadFile(cast)
		if err != nil {
			return false
		}
		if h := bytes.Count(c, []byte(`"version"`)); h != 1 {
			t.Fatalf("the asciicast capture has %d headers, want 1", h)
		}
		_, events, err := capture.ParseAsciicast(bytes.NewReader(c))
		if err != nil {
			t.Fatalf("asciicast capture: %v", err)
		}
		castData = capture.Stream(events, capture.CodeOutput)
		return len(tsData) >= n*9 && len(castData) >= n*9
	})
	t.Logf("timestamped capture: %d exact lines", checkFromZero(t, "timestamped capture", string(tsData)))
	t.Logf("asciicast capture: %d exact lines", checkFromZero(t, "asciicast capture", string(castData)))
}
