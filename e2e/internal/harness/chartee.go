package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"chartee/tee"
)

// timeoutShort bounds what should take well under a second on an idle
// machine, generously for a loaded one.
const timeoutShort = 30 * time.Second

var build struct {
	sync.Mutex
	dir             string
	path, plainPath string
	err, plainErr   error
	versions        map[string]*built // VersionedBinary's, by version
}

// built is one build's outcome, once done is closed.
type built struct {
	done chan struct{}
	path string
	err  error
}

// SetBuildDir sets where Binary builds chartee; TestMain makes it a temp
// dir and removes it after the run.
func SetBuildDir(dir string) {
	build.Lock()
	defer build.Unlock()
	build.dir = dir
}

// raceWarning starts every report of the race detector.
const raceWarning = "WARNING: DATA RACE"

// RaceReport returns the race detector's reports in a process's output,
// or "" when there is none.
func RaceReport(output string) string {
	i := strings.Index(output, raceWarning)
	if i < 0 {
		return ""
	}
	return output[i:]
}

// Binary builds ./cmd/chartee once per test run and returns its path. A
// build failure fails every test that needs the binary, with the compiler's
// message.
func Binary(t testing.TB) string {
	t.Helper()
	Begin(t)
	build.Lock()
	defer build.Unlock()
	if build.path == "" && build.err == nil {
		build.path, build.err = buildChartee(build.dir, "chartee", true, "")
	}
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// PlainBinary is Binary built without the race detector, for the tests
// that bound the daemon's memory: the detector's shadow memory multiplies
// what every allocation costs, so a bound on a race build says nothing
// about the daemon people run.
func PlainBinary(t testing.TB) string {
	t.Helper()
	Begin(t)
	build.Lock()
	defer build.Unlock()
	if build.plainPath == "" && build.plainErr == nil {
		build.plainPath, build.plainErr = buildChartee(build.dir, "chartee-plain", false, "")
	}
	if build.plainErr != nil {
		t.Fatal(build.plainErr)
	}
	return build.plainPath
}

// VersionedBinary is Binary stamped with version (what chartee_build_info
// and an upgrade report say), built once per run and version: two of them
// are two builds of chartee an upgrade can alternate between.
func VersionedBinary(t testing.TB, version string) string {
	t.Helper()
	Begin(t)
	b := versioned(version)
	<-b.done
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// StartVersionedBinary starts building VersionedBinary(version) in the
// background (a test boots a VM meanwhile) unless it is built or being
// built; VersionedBinary then waits for it.
func StartVersionedBinary(t testing.TB, version string) {
	t.Helper()
	Begin(t)
	versioned(version)
}

func versioned(version string) *built {
	build.Lock()
	defer build.Unlock()
	if build.versions == nil {
		build.versions = map[string]*built{}
	}
	b := build.versions[version]
	if b == nil {
		b = &built{done: make(chan struct{})}
		build.versions[version] = b
		dir := build.dir
		go func() {
			defer close(b.done)
			b.path, b.err = buildChartee(dir, "chartee-"+version, true, version)
		}()
	}
	return b
}

// versionVar is the variable -ldflags -X stamps the version into.
const versionVar = "chartee/cmd/chartee/internal/cli.Version"

func buildChartee(dir, name string, race bool, version string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("e2e: SetBuildDir was not called (TestMain)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	root, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("e2e: go env GOMOD: %v", err)
	}
	modDir := filepath.Dir(strings.TrimSpace(string(root)))
	out := filepath.Join(dir, name)
	// The daemon under test is built with the race detector, so go test
	// -race covers it and not only the test process: a race it hits
	// fails the test (see RaceReport). The bench builds its own, without.
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	if version != "" {
		args = append(args, "-ldflags", "-X "+versionVar+"="+version)
	}
	cmd := exec.Command(goBin, append(args, "./cmd/chartee")...)
	cmd.Dir = modDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("e2e: go build ./cmd/chartee: %v\n%s", err, msg)
	}
	if err := statSources(goBin, modDir); err != nil {
		return "", err
	}
	return out, nil
}

// statSources stats every file of the module's packages chartee is built
// from. The go command caches test results keyed on the files a test
// binary itself opened or stat'ed; the binary is built by a subprocess, so
// without this an edit to cmd/chartee would leave a stale cached PASS.
func statSources(goBin, modDir string) error {
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.Dir}}", "./cmd/chartee")
	cmd.Dir = modDir
	dirs, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("e2e: go list -deps ./cmd/chartee: %v", err)
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		os.Stat(filepath.Join(modDir, f))
	}
	for _, d := range strings.Fields(string(dirs)) {
		if !strings.HasPrefix(d, modDir+string(filepath.Separator)) {
			continue // the standard library and modules are covered by go.sum
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("e2e: %v", err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				os.Stat(filepath.Join(d, e.Name()))
			}
		}
	}
	return nil
}

// Chartee is a running chartee daemon and the ways to reach it from
// outside: its control socket over HTTP, and the CLI.
type Chartee struct {
	Dir    string // the test's directory; the config and socket live here
	Config string // the config file path
	Socket string // the control API's unix socket
	Proc   *Proc
	HTTP   *http.Client
	// Plain runs the daemon built without the race detector
	// (PlainBinary); set it before Start.
	Plain bool
	// Bin is the binary Start runs (a VersionedBinary); empty: Binary
	// (or PlainBinary). Set it before Start.
	Bin string
	// Upgradable prepares the daemon for process upgrades (see
	// Upgrade); set it before Start.
	Upgradable bool

	log string       // the daemon's output file, when Upgradable
	pid atomic.Int64 // the process serving now (it changes on upgrades)
}

// NewChartee prepares paths for a daemon in dir; write a config naming
// c.Socket as control.socket, then Start it.
func NewChartee(t testing.TB, dir string) *Chartee {
	t.Helper()
	Binary(t)
	c := &Chartee{Dir: dir, Config: filepath.Join(dir, "chartee.yaml"), Socket: filepath.Join(dir, "ctl.sock")}
	c.HTTP = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Socket)
		},
	}}
	t.Cleanup(c.HTTP.CloseIdleConnections)
	return c
}

// WriteConfig writes the config file (atomically: a reload never reads a
// half-written file).
func (c *Chartee) WriteConfig(t testing.TB, yaml string) {
	t.Helper()
	tmp := c.Config + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, c.Config); err != nil {
		t.Fatal(err)
	}
}

// Start runs `chartee run -c CONFIG` and waits until its control API
// answers /healthz. At cleanup the daemon gets SIGTERM and must exit
// cleanly within 20s; otherwise its group is killed and the test fails.
// After upgrades, that is the process serving then: every generation is
// in the first one's process group, so the group kill reaches them all.
func (c *Chartee) Start(t testing.TB) {
	t.Helper()
	bin := c.Bin
	if bin == "" && c.Plain {
		bin = PlainBinary(t)
	} else if bin == "" {
		bin = Binary(t)
	}
	cmd := exec.Command(bin, "run", "-c", c.Config)
	cmd.Dir = c.Dir
	if c.Upgradable {
		// A process an upgrade starts inherits the old one's stdout and
		// stderr and outlives it. A pipe read by the old one's exec.Cmd
		// would be closed under it when the old process is reaped (and
		// its next log line would kill it with SIGPIPE): a file is
		// handed down as it is.
		c.log = filepath.Join(c.Dir, "chartee.log")
		f, err := os.OpenFile(c.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	c.Proc = StartCmd(t, "chartee", cmd)
	c.pid.Store(int64(c.Proc.Pid()))
	t.Cleanup(func() {
		// Registered first, so it runs last: after the shutdown below,
		// when a race found at exit has been reported too.
		if r := RaceReport(c.Output()); r != "" {
			t.Errorf("e2e: the race detector found a data race in chartee:\n%s", r)
		}
		if c.log != "" && t.Failed() {
			t.Logf("e2e: output of chartee (every generation):\n%s", c.Output())
		}
	})
	t.Cleanup(func() { c.stop(t) })
	deadline := time.Now().Add(timeoutShort)
	for {
		err := c.Health()
		if err == nil {
			return
		}
		if c.Proc.Exited() {
			t.Fatalf("e2e: chartee exited before serving its control API (%v):\n%s", c.Proc.Wait(0), c.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: chartee's control API did not answer within %v: %v\n%s", timeoutShort, err, c.Output())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends SIGTERM to the process serving now and waits for it to end.
func (c *Chartee) stop(t testing.TB) {
	pid := int(c.pid.Load())
	if pid == c.Proc.Pid() {
		if c.Proc.Exited() {
			return
		}
		start := time.Now()
		c.Proc.Signal(syscall.SIGTERM)
		if err := c.Proc.Wait(20 * time.Second); err != nil {
			// A goroutine dump in the output shows what it waits on.
			c.Proc.Signal(syscall.SIGQUIT)
			c.Proc.Wait(5 * time.Second)
			t.Errorf("e2e: chartee did not shut down cleanly on SIGTERM: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Logf("e2e: chartee took %v to shut down", d.Round(time.Millisecond))
		}
		return
	}
	// A generation an upgrade started is not our child: its end is
	// seen in /proc (gone, or a zombie its new parent has not reaped).
	if !Running(pid) {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if !WaitGone(pid, 20*time.Second) {
		syscall.Kill(pid, syscall.SIGQUIT)
		WaitGone(pid, 5*time.Second)
		t.Errorf("e2e: chartee (pid %d, after an upgrade) did not shut down within 20s of SIGTERM", pid)
	}
}

// Output is what the daemon wrote to stdout and stderr so far: with
// Upgradable, every generation's.
func (c *Chartee) Output() string {
	if c.log == "" {
		return c.Proc.Output()
	}
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// PID is the process serving now (it changes on upgrades).
func (c *Chartee) PID() int { return int(c.pid.Load()) }

// Health asks GET /healthz.
func (c *Chartee) Health() error {
	return c.do("GET", "/healthz", nil, nil)
}

// APIError is a failed control API request: the status and the body.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// do sends a request to the control API and decodes a JSON answer into out.
func (c *Chartee) do(method, path string, body any, out any) error {
	var data []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		data = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeoutShort)
	defer cancel()
	return DoJSON(ctx, c.HTTP, method, path, data, out)
}

// DoJSON sends a control API request over hc (a client that dials the
// control socket) with a JSON body (none when nil) and decodes the JSON
// answer into out (when not nil). An answer other than 2xx is an
// *APIError.
func DoJSON(ctx context.Context, hc *http.Client, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://chartee"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("e2e: %s %s: decoding %q: %w", method, path, data, err)
		}
	}
	return nil
}

// Line is a tee's recorded line state, as the API reports it.
type Line struct {
	Baud     int    `json:"baud"`
	DataBits int    `json:"data_bits"`
	Parity   string `json:"parity"`
	StopBits string `json:"stop_bits"`
	Flow     string `json:"flow"`
}

// TeeStatus is GET /v1/tees/{tee}. (The daemon's Go client lives in an
// internal package the e2e tests cannot import; they speak the documented
// HTTP+JSON API instead, which is the stronger test anyway.)
type TeeStatus struct {
	tee.Stats
	Line Line `json:"line"`
}

// Tee asks GET /v1/tees/{name}.
func (c *Chartee) Tee(t testing.TB, name string) TeeStatus {
	t.Helper()
	var st TeeStatus
	if err := c.do("GET", "/v1/tees/"+name, nil, &st); err != nil {
		t.Fatalf("e2e: GET /v1/tees/%s: %v", name, err)
	}
	return st
}

// Backend returns a backend's stats from the tee's status.
func (st TeeStatus) Backend(t testing.TB, name string) tee.BackendStats {
	t.Helper()
	for _, b := range st.Backends {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("e2e: tee %s has no backend %q (has %+v)", st.Name, name, st.Backends)
	return tee.BackendStats{}
}

// Addr is the address a listening backend is bound to (the real port of a
// "127.0.0.1:0" listen).
func (c *Chartee) Addr(t testing.TB, teeName, backend string) string {
	t.Helper()
	src := c.Tee(t, teeName).Backend(t, backend).Source
	if src == "" {
		t.Fatalf("e2e: backend %s/%s has no listening address", teeName, backend)
	}
	return src
}

// Request sends a control API request and decodes the answer into out
// (when not nil).
func (c *Chartee) Request(method, path string, body, out any) error {
	return c.do(method, path, body, out)
}

// Ctl runs `chartee ctl --socket SOCKET args...` and returns its stdout;
// stderr and the exit status come back in err.
func (c *Chartee) Ctl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return c.CtlWithin(t, timeoutShort, args...)
}

// CtlWithin is Ctl bounded by timeout instead of timeoutShort.
func (c *Chartee) CtlWithin(t testing.TB, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Binary(t), append([]string{"ctl", "--socket", c.Socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), fmt.Errorf("chartee ctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String(), nil
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return stdout.String(), fmt.Errorf("chartee ctl %s: timed out", strings.Join(args, " "))
	}
}

func splitHostPort(addr string) (string, string, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("e2e: address %q: %w", addr, err)
	}
	return h, p, nil
}
