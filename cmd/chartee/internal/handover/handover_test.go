package handover

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the new process: with envMode set, TestMain
// runs child() instead of the tests.
const envMode = "HANDOVER_TEST_MODE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envMode); mode != "" {
		os.Exit(child(mode))
	}
	goleak.VerifyTestMain(m)
}

// child acts as a new process. It echoes the state into the first carried
// file (a pipe the test reads), then behaves as mode says.
func child(mode string) int {
	in, err := Inherit()
	if err != nil || in == nil {
		fmt.Fprintln(os.Stderr, "inherit:", err)
		return 2
	}
	out := in.Files[0]
	fmt.Fprintf(out, "state=%s files=%d\n", in.State, len(in.Files))
	switch mode {
	case "exit1":
		return 1
	case "fail":
		in.Fail(errors.New("config.yaml:3:5: unknown key \"tess\""))
		return 1
	case "hang":
		time.Sleep(time.Hour)
		return 0
	case "ready":
		if err := in.Ready("v9.9.9"); err != nil {
			fmt.Fprintln(out, "withdrawn")
			return 3
		}
		fmt.Fprintln(out, "committed")
		out.Close()
		return 0
	}
	return 2
}

func startTest(t *testing.T, mode string, timeout time.Duration) (*Child, *os.File, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c, err := Start(Request{
		Binary:  os.Args[0],
		Args:    []string{"-test.run=^$"},
		Env:     append(os.Environ(), envMode+"="+mode),
		Files:   []*os.File{w},
		State:   []byte(`{"tees":1}`),
		Timeout: timeout,
	})
	w.Close()
	return c, r, err
}

func TestCommit(t *testing.T) {
	c, r, err := startTest(t, "ready", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Info != "v9.9.9" {
		t.Errorf("Info %q, want the version the child sent", c.Info)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	got, _ := io.ReadAll(r)
	if want := "state={\"tees\":1} files=1\ncommitted\n"; string(got) != want {
		t.Fatalf("child wrote %q, want %q", got, want)
	}
}

func TestAbortAfterReady(t *testing.T) {
	c, r, err := startTest(t, "ready", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.conn.Close() // the old process gives up without a commit
	<-c.exited
	if code := c.cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit code %d, want 3 (withdrawn)", code)
	}
	got, _ := io.ReadAll(r)
	if !strings.HasSuffix(string(got), "withdrawn\n") {
		t.Fatalf("child wrote %q; want it to see the withdrawal", got)
	}
}

func TestRollbackReasons(t *testing.T) {
	for _, tc := range []struct {
		mode, want string
		timeout    time.Duration
	}{
		{"exit1", "exited before it was ready: exit status 1", 20 * time.Second},
		{"fail", `the new process failed: config.yaml:3:5: unknown key "tess"`, 20 * time.Second},
		{"hang", "was not ready within 500ms; killed it", 500 * time.Millisecond},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			start := time.Now()
			c, _, err := startTest(t, tc.mode, tc.timeout)
			if err == nil {
				c.Abort()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if d := time.Since(start); d > tc.timeout+5*time.Second {
				t.Errorf("rollback took %s", d)
			}
		})
	}
}

func TestStartMissingBinary(t *testing.T) {
	_, err := Start(Request{Binary: "/nonexistent/chartee"})
	if err == nil || !strings.Contains(err.Error(), "starting /nonexistent/chartee") {
		t.Fatalf("error %v", err)
	}
}

func TestInheritWithoutHandover(t *testing.T) {
	t.Setenv(EnvFD, "")
	in, err := Inherit()
	if in != nil || err != nil {
		t.Fatalf("Inherit() = %v, %v; want nil, nil", in, err)
	}
}

func TestInheritBadEnv(t *testing.T) {
	t.Setenv(EnvFD, "x")
	t.Setenv(EnvFiles, "0")
	if _, err := Inherit(); err == nil || !strings.Contains(err.Error(), "not a file descriptor") {
		t.Fatalf("error %v", err)
	}
}

// TestRollbackKeepsSocketsNonBlocking: handing a socket to a process that
// fails leaves ours in non-blocking mode, so deadlines still work on it
// (exec puts ExtraFiles into blocking mode, and the mode is shared with
// the duplicate).
func TestRollbackKeepsSocketsNonBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, _ := os.Pipe()
	defer r.Close()
	_, err = Start(Request{Binary: os.Args[0], Args: []string{"-test.run=^$"},
		Env: append(os.Environ(), envMode+"=exit1"), Files: []*os.File{w, f}, Timeout: 5 * time.Second})
	w.Close()
	if err == nil {
		t.Fatal("Start succeeded")
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Accept: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		ln.Close()
		<-done
		t.Fatal("the deadline did not stop Accept: the listener was left blocking")
	}
}
