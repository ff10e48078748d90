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

// child acts as a new process, in the phases mode names: what it does
// before it is prepared, then after it got the state.
func child(mode string) int {
	in, err := Inherit()
	if err != nil || in == nil {
		fmt.Fprintln(os.Stderr, "inherit:", err)
		return 2
	}
	switch mode {
	case "exit1":
		return 1
	case "fail":
		in.Fail(errors.New("config.yaml:3:5: unknown key \"tess\""))
		return 1
	case "hang":
		time.Sleep(time.Hour)
		return 0
	case "garbage":
		io.WriteString(in.conn, "hello there\n")
		time.Sleep(time.Hour)
		return 0
	}
	if err := in.Prepared("v9.9.9"); err != nil {
		fmt.Fprintln(os.Stderr, "prepared:", err)
		return 3
	}
	// Every file gets its index, so the test can check the order.
	for i, f := range in.Files {
		fmt.Fprintf(f, "%d state=%s files=%d\n", i, in.State, len(in.Files))
	}
	switch mode {
	case "prepared-exit1":
		return 1
	case "prepared-fail":
		in.Fail(errors.New("listener raw: address mismatch"))
		return 1
	case "prepared-hang":
		time.Sleep(time.Hour)
		return 0
	case "ready":
		out := in.Files[0]
		if err := in.Ready("v9.9.9 ready"); err != nil {
			fmt.Fprintln(out, "withdrawn")
			return 3
		}
		fmt.Fprintln(out, "committed")
		in.Running("steps")
		for _, f := range in.Files {
			f.Close()
		}
		return 0
	}
	return 2
}

// startChild starts the test binary as a new process; timeout bounds
// the phase a test is about (the prepare phase, too, for modes that fail
// before it; otherwise the start of a race-detector build under load has
// its own generous bound).
func startChild(t *testing.T, mode string, timeout time.Duration) (*Child, error) {
	t.Helper()
	prepare := time.Minute
	switch mode {
	case "exit1", "fail", "hang", "garbage":
		prepare = timeout
	}
	return Start(Request{
		Binary:         os.Args[0],
		Args:           []string{"-test.run=^$"},
		Env:            append(os.Environ(), envMode+"="+mode),
		Timeout:        timeout,
		PrepareTimeout: prepare,
	})
}

// pipes makes n pipes; the write ends go to the child.
func pipes(t *testing.T, n int) (r, w []*os.File) {
	t.Helper()
	for range n {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r, w = append(r, pr), append(w, pw)
	}
	t.Cleanup(func() {
		for _, f := range append(r, w...) {
			f.Close()
		}
	})
	return r, w
}

func TestCommit(t *testing.T) {
	c, err := startChild(t, "ready", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Info != "v9.9.9" {
		t.Errorf("prepared info %q, want the version the child sent", c.Info)
	}
	r, w := pipes(t, 1)
	if err := c.Hand([]byte(`{"tees":1}`), w); err != nil {
		t.Fatal(err)
	}
	w[0].Close()
	if c.Info != "v9.9.9 ready" {
		t.Errorf("ready info %q", c.Info)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := c.Running(); err != nil {
		t.Fatal(err)
	}
	if c.Info != "steps" {
		t.Errorf("running info %q", c.Info)
	}
	<-c.exited
	got, _ := io.ReadAll(r[0])
	if want := "0 state={\"tees\":1} files=1\ncommitted\n"; string(got) != want {
		t.Fatalf("child wrote %q, want %q", got, want)
	}
}

// TestManyFiles: more files than ride on one byte arrive, in order.
func TestManyFiles(t *testing.T) {
	const n = 3*fdBatch + 17
	c, err := startChild(t, "ready", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r, w := pipes(t, n)
	if err := c.Hand([]byte("{}"), w); err != nil {
		t.Fatal(err)
	}
	for _, f := range w {
		f.Close()
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	c.Running()
	<-c.exited
	for i, f := range r {
		got, _ := io.ReadAll(f)
		want := fmt.Sprintf("%d state={} files=%d\n", i, n)
		if i == 0 {
			want += "committed\n"
		}
		if string(got) != want {
			t.Fatalf("file %d: child wrote %q, want %q", i, got, want)
		}
	}
}

func TestAbortAfterReady(t *testing.T) {
	c, err := startChild(t, "ready", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r, w := pipes(t, 1)
	if err := c.Hand(nil, w); err != nil {
		t.Fatal(err)
	}
	w[0].Close()
	c.close() // the old process gives up without a commit
	<-c.exited
	if code := c.cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit code %d, want 3 (withdrawn)", code)
	}
	got, _ := io.ReadAll(r[0])
	if !strings.HasSuffix(string(got), "withdrawn\n") {
		t.Fatalf("child wrote %q; want it to see the withdrawal", got)
	}
}

// TestPrepareFailures: a new process that fails before it is prepared
// is reaped with the reason, and no file was ever handed to it.
func TestPrepareFailures(t *testing.T) {
	for _, tc := range []struct {
		mode, want string
		timeout    time.Duration
	}{
		{"exit1", "exited before it was prepared: exit status 1", 20 * time.Second},
		{"fail", `the new process failed: config.yaml:3:5: unknown key "tess"`, 20 * time.Second},
		{"hang", "was not prepared within 500ms; killed it", 500 * time.Millisecond},
		{"garbage", `broke the protocol before it was prepared: handover: bad message: "hello there"`, 20 * time.Second},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			start := time.Now()
			c, err := startChild(t, tc.mode, tc.timeout)
			if err == nil {
				c.Abort()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if d := time.Since(start); d > tc.timeout+10*time.Second {
				t.Errorf("rollback took %s", d)
			}
		})
	}
}

// TestHandFailures: a new process that fails after it was prepared (it
// got the state and files) is reaped with the reason.
func TestHandFailures(t *testing.T) {
	for _, tc := range []struct {
		mode, want string
		timeout    time.Duration
	}{
		{"prepared-exit1", "exited before it was ready: exit status 1", 20 * time.Second},
		{"prepared-fail", "the new process failed: listener raw: address mismatch", 20 * time.Second},
		{"prepared-hang", "was not ready within", 2 * time.Second},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c, err := startChild(t, tc.mode, tc.timeout)
			if err != nil {
				t.Fatal(err)
			}
			r, w := pipes(t, 1)
			start := time.Now()
			err = c.Hand([]byte("{}"), w)
			w[0].Close()
			if err == nil {
				c.Abort()
				t.Fatal("Hand succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if d := time.Since(start); d > tc.timeout+10*time.Second {
				t.Errorf("rollback took %s", d)
			}
			// The child had the files: it wrote to ours.
			got, _ := io.ReadAll(r[0])
			if !strings.HasPrefix(string(got), "0 state={} files=1\n") {
				t.Errorf("child wrote %q", got)
			}
		})
	}
}

// TestHandStuckState: a state larger than the socket buffers, to a new
// process that never reads it, ends with the timeout, not a hung send.
func TestHandStuckState(t *testing.T) {
	c, err := startRaw(t, "prepared\n", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Hand(make([]byte, 8<<20), nil)
	if err == nil || !strings.Contains(err.Error(), "was not ready within") {
		t.Fatalf("error %v, want the ready timeout", err)
	}
	if d := time.Since(start); d > 11*time.Second {
		t.Errorf("took %s", d)
	}
}

// startRaw starts a shell that writes say on the handover socket and then
// sleeps without reading.
func startRaw(t *testing.T, say string, timeout time.Duration) (*Child, error) {
	t.Helper()
	return Start(Request{Binary: "/bin/sh", Args: []string{"-c", "printf '" + say + "' >&3; exec sleep 60"},
		Timeout: timeout, PrepareTimeout: time.Minute})
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
	t.Setenv(EnvProtocol, protocol)
	if _, err := Inherit(); err == nil || !strings.Contains(err.Error(), "not a file descriptor") {
		t.Fatalf("error %v", err)
	}
	t.Setenv(EnvFD, "3")
	t.Setenv(EnvProtocol, "1")
	if _, err := Inherit(); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("error %v", err)
	}
}

// TestRollbackKeepsSocketsNonBlocking: handing a socket to a process that
// fails leaves ours in non-blocking mode, so deadlines still work on it.
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
	c, err := startChild(t, "prepared-exit1", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, w := pipes(t, 1)
	if err := c.Hand(nil, []*os.File{w[0], f}); err == nil {
		t.Fatal("Hand succeeded")
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Accept: %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		ln.Close()
		<-done
		t.Fatal("the deadline did not stop Accept: the listener was left blocking")
	}
}
