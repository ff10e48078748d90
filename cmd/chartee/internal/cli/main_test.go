package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binDir holds the chartee binary built once for the process-level tests.
var binDir string

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
		os.Exit(code)
	}))
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// chartee builds ./cmd/chartee once per test run and returns the binary.
func chartee(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "chartee-cli-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "chartee")
		cmd := exec.Command("go", "build", "-o", binPath, "chartee/cmd/chartee")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine (a
// command's output) while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mapEnv is a getenv over a fixed map: tests never read the real
// environment (a developer's $CHARTEE_SOCKET must not steer them).
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// ctlResult is the outcome of one in-process command.
type ctlResult struct {
	code           int
	stdout, stderr string
}

// runCmd runs the command line in-process with env as the environment.
func runCmd(ctx context.Context, env map[string]string, args ...string) ctlResult {
	var out, errb syncBuffer
	a := &app{stdout: &out, stderr: &errb, ctx: ctx, getenv: mapEnv(env),
		notify: func(chan<- os.Signal, ...os.Signal) {}, stopNotify: func(chan<- os.Signal) {}}
	code := a.main(args)
	return ctlResult{code, out.String(), errb.String()}
}

// shortTempDir is a temporary directory with a short path: unix socket
// paths are limited to 108 bytes and t.TempDir() embeds the test name.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ct")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, got)
		}
	}
}
