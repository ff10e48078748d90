package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// The helpers of the fault and security tests (issue 6). Their names start
// with "fault" so they cannot collide with other tests' helpers.

// faultPeer is the far side of a tcp-connect or unix-connect frontend: a
// real listener the test owns, so it can write the frontend's output at
// any rate, read what chartee types into it, and vanish and come back.
type faultPeer struct {
	network, addr string
	ln            net.Listener
	conns         chan net.Conn
	done          chan struct{}
}

// newFaultPeer listens on addr ("127.0.0.1:0" or a unix socket path).
func newFaultPeer(t testing.TB, network, addr string) *faultPeer {
	t.Helper()
	p := &faultPeer{network: network}
	p.listen(t, addr)
	return p
}

func (p *faultPeer) listen(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen(p.network, addr)
	if err != nil {
		t.Fatal(err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	p.conns, p.done = make(chan net.Conn, 16), make(chan struct{})
	conns, done := p.conns, p.done
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(p.close)
}

// close stops listening (a unix socket file goes with it) and closes any
// connection not taken yet.
func (p *faultPeer) close() {
	p.ln.Close()
	<-p.done
	for {
		select {
		case c := <-p.conns:
			c.Close()
		default:
			return
		}
	}
}

// accept waits for chartee to connect; the connection is closed at cleanup.
func (p *faultPeer) accept(t testing.TB) net.Conn {
	t.Helper()
	select {
	case c := <-p.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(timeoutLong):
		t.Fatalf("chartee did not connect to %s within %v", p.addr, timeoutLong)
		return nil
	}
}

// faultPattern is the stream's bytes [off, off+n): 64-byte records that
// name their own offset, so a diff shows where a stream went wrong.
func faultPattern(off, n int) []byte {
	start := off / 64 * 64
	b := make([]byte, 0, n+128)
	for rec := start; rec < off+n; rec += 64 {
		line := []byte(fmt.Sprintf("@%016x ", rec))
		for i := len(line); i < 63; i++ {
			line = append(line, byte('a'+(rec/64+i)%26))
		}
		b = append(b, append(line, '\n')...)
	}
	return b[off-start : off-start+n]
}

// faultWriteAll writes b to w, failing the test on an error.
func faultWriteAll(t testing.TB, w io.Writer, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatalf("writing into the frontend: %v", err)
	}
}

// faultConfig is a config with the control socket, one tee "t" with the
// given frontend and backends (YAML already indented for their places),
// and extra top-level YAML.
func faultConfig(c *harness.Chartee, frontend, backends, extra string) string {
	return fmt.Sprintf(`control:
  socket: %q
%s
tees:
  - name: t
    drain_timeout: 2s
    frontend:
%s
    backends:
%s`, c.Socket, extra, frontend, backends)
}

// faultDialSmall dials addr with a 4 KiB receive buffer, so a client that
// does not read closes its window quickly.
func faultDialSmall(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*net.TCPConn)
}

// faultDial connects a client that records what it reads.
func faultDial(t testing.TB, name, addr string) *harness.Recorder {
	t.Helper()
	_, rec := faultDialConn(t, name, addr)
	return rec
}

// faultDialConn is faultDial keeping the connection, to type into.
func faultDialConn(t testing.TB, name, addr string) (net.Conn, *harness.Recorder) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return conn, harness.Record(t, name, conn)
}

// faultWaitLegs waits until backend has n legs.
func faultWaitLegs(t testing.TB, c *harness.Chartee, backend string, n int) {
	t.Helper()
	waitForState(t, fmt.Sprintf("%d legs on %s", n, backend), func() (bool, string) {
		b := c.Tee(t, "t").Backend(t, backend)
		return b.Legs == n, fmt.Sprintf("%d legs", b.Legs)
	})
}

// faultWaitBytes waits until rec holds want and compares.
func faultWaitBytes(t testing.TB, rec *harness.Recorder, want []byte) {
	t.Helper()
	if err := rec.Until(timeoutLong, func(b []byte) bool { return len(b) >= len(want) }); err != nil {
		t.Fatalf("%s: %v (has %d of %d bytes)", rec.Name, err, rec.Len(), len(want))
	}
	if got := rec.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("%s did not receive the stream exactly: %s", rec.Name, firstDiff(got, want))
	}
}

// faultWaitFile waits until the file holds len(want) bytes and compares.
func faultWaitFile(t testing.TB, path string, want []byte) {
	t.Helper()
	waitForState(t, path+" to hold the stream", func() (bool, string) {
		n := fileSize(path)
		return n >= int64(len(want)), fmt.Sprintf("%d of %d bytes", n, len(want))
	})
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s does not hold the stream exactly: %s", path, firstDiff(got, want))
	}
}

// faultProcFDs counts a process's open fds.
func faultProcFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// faultFDsOf returns, sorted, the fds of process pid that are open on the
// file path names (a symlink such as socat's pty link is followed).
func faultFDsOf(t testing.TB, pid int, path string) []int {
	t.Helper()
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && link == target {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	return fds
}

// faultFreeFDsBelow counts the fds below limit that process pid does not
// have open: where the next files it opens will go.
func faultFreeFDsBelow(t testing.TB, pid, limit int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd < limit {
			used++
		}
	}
	return limit - used
}

// faultGoroutines scrapes go_goroutines from chartee's /metrics (a fresh
// connection each time, so no idle scrape connection is counted).
func faultGoroutines(t testing.TB, metricsAddr string) int {
	t.Helper()
	n, err := harness.Goroutines(metricsAddr, timeoutLong)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// faultLogged waits until chartee's output (from byte from on) holds
// every one of words on one line, and returns that line.
func faultLogged(t testing.TB, c *harness.Chartee, from int, words ...string) string {
	t.Helper()
	var found string
	waitForState(t, fmt.Sprintf("chartee to log %q", words), func() (bool, string) {
		out := c.Proc.Output()
		for _, l := range strings.Split(out[min(from, len(out)):], "\n") {
			all := true
			for _, w := range words {
				all = all && strings.Contains(l, w)
			}
			if all {
				found = l
				return true, ""
			}
		}
		return false, "log so far:\n" + out[min(from, len(out)):]
	})
	return found
}

// faultAlive fails the test when chartee has exited or logged a panic.
func faultAlive(t testing.TB, c *harness.Chartee) {
	t.Helper()
	if c.Proc.Exited() {
		t.Fatalf("chartee exited: %v\n%s", c.Proc.Wait(0), c.Proc.Output())
	}
	if out := c.Proc.Output(); strings.Contains(out, "panic:") || strings.Contains(out, "[running]:") {
		t.Fatalf("chartee panicked:\n%s", out)
	}
	if err := c.Health(); err != nil {
		t.Fatalf("chartee's control API does not answer: %v", err)
	}
}
