package backends

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	"chartee/chardev/memdev"
	"chartee/tee"
)

// idleRetained is the live heap after two full collections (goroutine
// descriptors included) and the number of goroutines.
func idleRetained() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/sched/goroutines:goroutines"},
	}
	metrics.Read(s)
	return s[0].Value.Uint64(), int(s[1].Value.Uint64())
}

// minStack is the smallest stack a goroutine has (the runtime's
// starting stack): what each goroutine costs at least besides its
// descriptor on the heap. /memory/classes/heap/stacks counts the stack
// spans the runtime keeps cached too, so it moves by more than a client's
// worth from one collection to the next.
const minStack = 2 << 10

// idleDial connects a client to addr with bare system calls, so that
// the client side keeps nothing on this process's Go heap and no
// goroutine: what the measurement sees is the server side only. Reads
// time out after rcTimeout.
func idleDial(t *testing.T, port int) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tv := syscall.NsecToTimeval(int64(rcTimeout))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	return fd
}

// idleLegs is how many legs backend name has.
func idleLegs(tt *tee.Tee, name string) int { return rcLegCount(tt, name) }

// TestIdleClientMemory: an idle raw tcp-listen client — connected, sent
// one byte of output, never typing — keeps no goroutine and costs the
// process under 3 KiB of live heap and goroutine stacks (the bench's RSS
// target is 8 KiB per client, docs/BENCHMARKS.md). Before the reader of a
// client that has not typed waited without a goroutine
// (chardev.ReadWaiter), each one kept a reader goroutine, 2 KiB of stack
// and a 480-byte descriptor: 4.1–4.7 KiB per client here in all, against
// 1.6–1.9 KiB now.
//
// It then checks what the waiting must not break: a client typing after
// a long wait is read, a tee frozen for an upgrade with such clients
// stops and thaws, a client that hangs up while waiting is removed, and
// a detach closes every waiting client.
func TestIdleClientMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap: not with -short")
	}
	const n = 200
	front := memdev.New("front")
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	addr := rcListen(t, tt, "clients", tee.LegOptions{Input: true}, func(s *TCPListenSpec) { s.MaxClients = n + 1 })
	var port int
	if _, err := fmt.Sscanf(addr[len("127.0.0.1:"):], "%d", &port); err != nil {
		t.Fatal(err)
	}
	// A first client and byte so that everything made once per tee or
	// backend (pools, the first queue ring, the poller) is there before
	// the baseline.
	warm := idleDial(t, port)
	defer syscall.Close(warm)
	rcWait(t, "the first client", func() bool { return idleLegs(tt, "clients") == 1 })
	front.Feed([]byte{'w'})
	idleRead(t, warm, 'w')

	before, g0 := idleRetained()
	fds := make([]int, n)
	for i := range fds {
		fds[i] = idleDial(t, port)
	}
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	rcWait(t, "every client attached", func() bool { return idleLegs(tt, "clients") == n+1 })
	front.Feed([]byte{'x'})
	for _, fd := range fds {
		idleRead(t, fd, 'x') // every client attached and written to
	}
	idleRead(t, warm, 'x')
	after, g1 := idleRetained()
	heap := (float64(after) - float64(before)) / n
	per := heap + float64((g1-g0)*minStack)/n
	t.Logf("%d idle clients: %.0f bytes each (%.0f of live heap, goroutines %d -> %d)", n, per, heap, g0, g1)
	if per > 3<<10 {
		t.Errorf("an idle client retains %.0f bytes of live heap and goroutine stacks, want at most 3 KiB", per)
	}
	if g1-g0 > n/10 {
		t.Errorf("goroutines %d -> %d for %d idle clients: an idle client must keep none", g0, g1, n)
	}

	// Typing after the wait is read and reaches the frontend.
	if _, err := syscall.Write(fds[7], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	rcWait(t, "typed input at the frontend", func() bool { return bytes.Contains(front.Written(), []byte("hello")) })

	// Frozen for an upgrade: every waiting reader stops at the cut (the
	// freeze waits for all of them), and after a thaw typing still works.
	ctx, cancel := context.WithTimeout(context.Background(), rcTimeout)
	defer cancel()
	if _, err := tt.Freeze(ctx); err != nil {
		t.Fatalf("freeze with %d waiting readers: %v", n, err)
	}
	tt.Thaw()
	if _, err := syscall.Write(fds[100], []byte("after-thaw")); err != nil {
		t.Fatal(err)
	}
	rcWait(t, "input typed after a thaw", func() bool { return bytes.Contains(front.Written(), []byte("after-thaw")) })

	// A client that hangs up while its reader waits is removed.
	syscall.Close(fds[3])
	fds[3] = -1
	rcWait(t, "the hung-up client removed", func() bool { return idleLegs(tt, "clients") == n })

	// Output still reaches the waiting clients.
	front.Feed([]byte{'y'})
	for i, fd := range fds {
		if i != 3 {
			idleRead(t, fd, 'y')
		}
	}

	// Detach ends every waiting reader (it waits for each leg to be
	// gone) and closes every client.
	if err := tt.Detach("clients"); err != nil {
		t.Fatal(err)
	}
	for i, fd := range fds {
		if i == 3 {
			continue
		}
		var b [1]byte
		if n, err := syscall.Read(fd, b[:]); n != 0 || err != nil {
			t.Fatalf("client %d after detach: read %d bytes, %v; want end of file", i, n, err)
		}
	}
}

// idleRead reads one byte from a client and checks it.
func idleRead(t *testing.T, fd int, want byte) {
	t.Helper()
	var b [1]byte
	for {
		n, err := syscall.Read(fd, b[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n != 1 {
			t.Fatalf("client read: %d bytes, %v (waited up to %v)", n, err, rcTimeout)
		}
		break
	}
	if b[0] != want {
		t.Fatalf("client read %q, want %q", b[0], want)
	}
}

// TestReadPollerCancelAndFire: a wait fires once, when the socket has
// input; a cancelled wait never fires and hands its callback back; a
// token that fired cancels nothing; and the poller's goroutine ends once
// nothing waits (goleak checks that at the end of the package's tests).
func TestReadPollerCancelAndFire(t *testing.T) {
	a, b := tcpTestPair(t)
	rc, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fired := make(chan struct{}, 2)
	tok, ok := readPoll.add(rc, func() { fired <- struct{}{} })
	if !ok {
		t.Fatal("add refused an open socket")
	}
	select {
	case <-fired:
		t.Fatal("fired with nothing to read")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := b.Write([]byte("k")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fired:
	case <-time.After(rcTimeout):
		t.Fatal("never fired after input")
	}
	if readPoll.cancel(tok) != nil {
		t.Fatal("a fired wait was cancelled again")
	}
	// Cancelled before any input: the callback comes back, never fires.
	tok, ok = readPoll.add(rc, func() { fired <- struct{}{} })
	if !ok {
		t.Fatal("add refused a socket with input")
	}
	// The byte is still unread, so this wait fires at once, or is
	// cancelled first: exactly one of the two.
	ready := readPoll.cancel(tok)
	got := 0
	if ready != nil {
		ready()
	}
	select {
	case <-fired:
		got++
	case <-time.After(rcTimeout):
	}
	select {
	case <-fired:
		got++
	case <-time.After(50 * time.Millisecond):
	}
	if got != 1 {
		t.Fatalf("a wait cancelled while readable ran its callback %d times, want 1", got)
	}
	// A closed socket cannot be waited for.
	a.Close()
	if _, ok := readPoll.add(rc, func() { t.Error("fired for a closed socket") }); ok {
		t.Fatal("add accepted a closed socket")
	}
}

// tcpTestPair is two connected loopback TCP sockets, closed at the end.
func tcpTestPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}
