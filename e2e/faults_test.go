package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// Issue 6's faults, each against the real chartee binary, each asserting
// that nothing promised is lost: a block leg or capture gets every byte, a
// drop leg counts what it missed, a disconnect leg gets an exact prefix.

// faultTCPFrontend starts chartee with a tcp-connect frontend to a peer the
// test owns, and returns the peer's connection (what the test writes there
// is the frontend's output).
func faultTCPFrontend(t *testing.T, backends, extra string) (*harness.Chartee, net.Conn) {
	t.Helper()
	dir := t.TempDir()
	peer := newFaultPeer(t, "tcp", "127.0.0.1:0")
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, faultConfig(c, fmt.Sprintf("      type: tcp-connect\n      address: %s", peer.addr), backends, extra))
	c.Start(t)
	return c, peer.accept(t)
}

// TestFaultLegPeerReset is fault 1a: a client resets its connection (RST,
// SO_LINGER 0) while chartee is writing to it. That leg alone fails, with
// the reason logged, and what the block victim had received is an exact
// prefix; a block capture and a block client get every byte; the frontend
// never stalls.
func TestFaultLegPeerReset(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	capture := filepath.Join(dir, "capture.raw")
	c, front := faultTCPFrontend(t, fmt.Sprintf(`      - {name: victim-block, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: block, queue: 64KiB}
      - {name: victim-drop, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: drop, queue: 64KiB}
      - {name: ref, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: block}
      - {name: capture, type: file, path: %q, on_overflow: block}
`, capture), "")
	ref := faultDial(t, "ref", c.Addr(t, "t", "ref"))
	victims := map[string]*net.TCPConn{}
	for _, name := range []string{"victim-block", "victim-drop"} {
		victims[name] = faultDialSmall(t, c.Addr(t, "t", name))
	}
	faultWaitLegs(t, c, "ref", 1)
	faultWaitLegs(t, c, "victim-block", 1)
	faultWaitLegs(t, c, "victim-drop", 1)
	logMark := len(c.Proc.Output())

	const total = 8 << 20
	stream := faultPattern(0, total)
	writeDone := make(chan error, 1)
	go func() { _, err := front.Write(stream); writeDone <- err }()
	// Each victim reads a little, then resets mid-stream.
	for name, v := range victims {
		got := make([]byte, 100<<10)
		v.SetReadDeadline(time.Now().Add(timeoutLong))
		n, err := io.ReadFull(v, got)
		if err != nil {
			t.Fatalf("%s: reading before the reset: %v", name, err)
		}
		if name == "victim-block" && !bytes.Equal(got[:n], stream[:n]) {
			t.Errorf("%s: what it read before the reset is not the stream's start: %s", name, firstDiff(got[:n], stream[:n]))
		}
		v.SetLinger(0)
		v.Close()
	}
	if err := faultWaitWrite(t, writeDone); err != nil {
		t.Fatalf("writing the frontend: %v", err)
	}
	faultWaitBytes(t, ref, stream)
	faultWaitFile(t, capture, stream)
	faultWaitLegs(t, c, "victim-block", 0)
	faultWaitLegs(t, c, "victim-drop", 0)
	for _, name := range []string{"victim-block", "victim-drop"} {
		line := faultLogged(t, c, logMark, "msg=detach", "backend="+name, "reason=")
		// Which of the leg's two goroutines notices first decides the
		// reason: the writer (broken pipe, reset) or the reader (reset,
		// or EOF when the RST raced its read).
		if !strings.Contains(line, "reset") && !strings.Contains(line, "broken pipe") && !strings.Contains(line, "EOF") {
			t.Errorf("%s's detach does not give the reset as its reason: %s", name, line)
		}
		t.Logf("%s: %s", name, line[strings.Index(line, "reason="):])
	}
	if err := ref.Err(); err != nil {
		t.Errorf("the reference client was disconnected: %v", err)
	}
	faultAlive(t, c)
}

// TestFaultZeroWindow is fault 1b: a client that never reads (its window
// closes) under each overflow policy, while a block client and a block
// capture must get every byte.
//   - drop: the leg stays, and what it misses is counted: what it received
//     plus what was dropped is the whole stream;
//   - disconnect: the leg fails with "queue overflow", and what it had
//     received is an exact prefix of the stream (maybe empty: the queue
//     can overflow before the leg's first write);
//   - block: the frontend is held back (chartee stops reading it) until
//     the client reads, and then it receives the stream exactly.
func TestFaultZeroWindow(t *testing.T) {
	for _, policy := range []string{"drop", "disconnect", "block"} {
		t.Run(policy, func(t *testing.T) {
			harness.Begin(t)
			dir := t.TempDir()
			capture := filepath.Join(dir, "capture.raw")
			c, front := faultTCPFrontend(t, fmt.Sprintf(`      - {name: stall, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: %s, queue: 64KiB}
      - {name: ref, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: block}
      - {name: capture, type: file, path: %q, on_overflow: block}
`, policy, capture), "")
			ref := faultDial(t, "ref", c.Addr(t, "t", "ref"))
			stall := faultDialSmall(t, c.Addr(t, "t", "stall"))
			faultWaitLegs(t, c, "ref", 1)
			faultWaitLegs(t, c, "stall", 1)
			logMark := len(c.Proc.Output())

			const total = 16 << 20
			stream := faultPattern(0, total)
			writeDone := make(chan error, 1)
			go func() { _, err := front.Write(stream); writeDone <- err }()

			switch policy {
			case "drop", "disconnect":
				if err := faultWaitWrite(t, writeDone); err != nil {
					t.Fatalf("writing the frontend: %v", err)
				}
				faultWaitBytes(t, ref, stream)
				faultWaitFile(t, capture, stream)
			case "block":
				// Chartee stops reading the frontend: the offset stands
				// still short of the stream while the client does not
				// read, the other legs (which read) having everything up
				// to it (and the chunk the stall leg waits for room for)
				// and the stall leg's queue holding the rest, so
				// it is the stall leg that holds the stream, not a slow
				// moment of a loaded machine.
				var last uint64
				waitForState(t, "the frontend to be held back", func() (bool, string) {
					st := c.Tee(t, "t")
					off, ref, capt, stall := st.Offset, st.Backend(t, "ref"), st.Backend(t, "capture"), st.Backend(t, "stall")
					still := off == last && off > 0 && off < total &&
						ref.BytesOut >= off && capt.BytesOut >= off && stall.QueueBytes > 0
					last = off
					if !still {
						time.Sleep(300 * time.Millisecond) // pacing: a standstill is two samples apart
					}
					return still, fmt.Sprintf("offset %d of %d; ref sent %d, capture %d, stall queues %d",
						off, total, ref.BytesOut, capt.BytesOut, stall.QueueBytes)
				})
				select {
				case err := <-writeDone:
					t.Fatalf("the frontend write finished (%v) although a block leg does not read", err)
				default:
				}
			}

			b := c.Tee(t, "t").Backend(t, "stall")
			got := harness.Record(t, "stall", stall) // now it reads
			switch policy {
			case "drop":
				if b.Legs != 1 || b.Dropped == 0 {
					t.Fatalf("drop: %d legs, %d bytes dropped; want the leg kept and drops counted", b.Legs, b.Dropped)
				}
				waitForState(t, "the drop leg to catch up", func() (bool, string) {
					b = c.Tee(t, "t").Backend(t, "stall")
					return b.QueueBytes == 0 && b.BytesOut+b.Dropped == total && uint64(got.Len()) == b.BytesOut,
						fmt.Sprintf("received %d, sent %d, dropped %d, queued %d, of %d", got.Len(), b.BytesOut, b.Dropped, b.QueueBytes, total)
				})
			case "disconnect":
				faultWaitLegs(t, c, "stall", 0)
				faultLogged(t, c, logMark, "backend=stall", "queue overflow")
				<-got.Done()
				if n := got.Len(); n >= total || !bytes.Equal(got.Bytes(), stream[:n]) {
					t.Fatalf("the disconnected client's %d bytes are not a prefix of the stream: %s",
						n, firstDiff(got.Bytes(), stream[:min(n, total)]))
				}
			case "block":
				if err := faultWaitWrite(t, writeDone); err != nil {
					t.Fatalf("writing the frontend: %v", err)
				}
				faultWaitBytes(t, got, stream)
				faultWaitBytes(t, ref, stream)
				faultWaitFile(t, capture, stream)
				if b := c.Tee(t, "t").Backend(t, "stall"); b.Dropped != 0 || b.Legs != 1 {
					t.Fatalf("block leg: %+v", b)
				}
			}
			if err := ref.Err(); err != nil {
				t.Errorf("the reference client was disconnected: %v", err)
			}
			faultAlive(t, c)
		})
	}
}

// TestFaultFrontendVanishes is fault 2: the frontend goes away and comes
// back — a serial port on a socat pty pair that is killed and restarted,
// and QEMU's chardev socket (a unix listener, as QEMU's server=on) that is
// closed and listened on again. The client stays attached as the same
// leg, what it typed while the frontend was gone reaches the new one, and
// the reconnect is counted.
func TestFaultFrontendVanishes(t *testing.T) {
	backends := `      - {name: ops, type: tcp-listen, listen: "127.0.0.1:0", input: true}
`
	// check runs the common part; down makes the frontend vanish, up
	// brings it back and returns its far end's output and input.
	check := func(t *testing.T, c *harness.Chartee, far io.Writer, farRec *harness.Recorder,
		down func(), up func() (io.Writer, *harness.Recorder)) {
		waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "t").Frontend.Up })
		conn, client := faultDialConn(t, "client", c.Addr(t, "t", "ops"))
		faultWaitLegs(t, c, "ops", 1)
		leg := c.Tee(t, "t").Legs[0].Name
		faultWriteAll(t, far, []byte("before the loss\n"))
		client.WaitFor(t, "before the loss\n", 0, timeoutLong)
		reconnects := c.Tee(t, "t").Frontend.Reconnects

		down()
		waitFor(t, "chartee to see the frontend gone", func() bool { return !c.Tee(t, "t").Frontend.Up })
		if err := client.Err(); err != nil {
			t.Fatalf("the client was disconnected with the frontend: %v", err)
		}
		typed := "typed while the frontend was gone\r"
		if _, err := conn.Write([]byte(typed)); err != nil {
			t.Fatal(err)
		}
		waitForState(t, "the typed input to wait for the frontend", func() (bool, string) {
			f := c.Tee(t, "t").Frontend
			return f.InputPending == len(typed), fmt.Sprintf("%d bytes pending", f.InputPending)
		})

		far, farRec = up()
		farRec.WaitFor(t, typed, 0, timeoutLong)
		faultWriteAll(t, far, []byte("after the return\n"))
		client.WaitFor(t, "after the return\n", 0, timeoutLong)
		st := c.Tee(t, "t")
		if !st.Frontend.Up || st.Frontend.Reconnects <= reconnects {
			t.Errorf("frontend %+v: want it up with the reconnect counted (was %d)", st.Frontend, reconnects)
		}
		if len(st.Legs) != 1 || st.Legs[0].Name != leg {
			t.Errorf("legs %+v: want the same leg %s all along", st.Legs, leg)
		}
		if err := client.Err(); err != nil {
			t.Errorf("the client was disconnected: %v", err)
		}
		faultAlive(t, c)
	}

	t.Run("pty-pair-killed", func(t *testing.T) {
		harness.Begin(t)
		dir := t.TempDir()
		a, b := filepath.Join(dir, "console"), filepath.Join(dir, "console-far")
		pair := harness.StartPtyPair(t, "socat", a, b)
		c := harness.NewChartee(t, dir)
		c.WriteConfig(t, faultConfig(c, fmt.Sprintf(`      type: serial
      path: %q
      exclusive: false
      reconnect: {initial: 50ms, max: 200ms}`, a), backends, ""))
		c.Start(t)
		far := harness.OpenTTY(t, b)
		farRec := harness.Record(t, "far", far)
		check(t, c, far, farRec, func() {
			pair.Proc.Kill() // SIGKILL: socat leaves its links dangling
			os.Remove(a)
			os.Remove(b)
		}, func() (io.Writer, *harness.Recorder) {
			harness.StartPtyPair(t, "socat-again", a, b)
			far := harness.OpenTTY(t, b)
			return far, harness.Record(t, "far-again", far)
		})
	})

	t.Run("qemu-socket-closed", func(t *testing.T) {
		harness.Begin(t)
		dir := t.TempDir()
		sock := filepath.Join(dir, "vm-serial.sock")
		peer := newFaultPeer(t, "unix", sock)
		c := harness.NewChartee(t, dir)
		c.WriteConfig(t, faultConfig(c, fmt.Sprintf(`      type: unix-connect
      path: %q
      reconnect: {initial: 50ms, max: 200ms}`, sock), backends, ""))
		c.Start(t)
		conn := peer.accept(t)
		check(t, c, conn, harness.Record(t, "vm", conn), func() {
			peer.close() // QEMU quits: its socket goes
			conn.Close()
		}, func() (io.Writer, *harness.Recorder) {
			peer.listen(t, sock) // and is started again
			conn := peer.accept(t)
			return conn, harness.Record(t, "vm-again", conn)
		})
	})
}

// TestFaultCaptureDiskFull is fault 3: a capture file on a full disk
// (/dev/full: every write fails with ENOSPC). That leg fails with the
// reason logged; a block capture and a block client get every byte; the
// daemon stays up and keeps serving.
func TestFaultCaptureDiskFull(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.raw")
	c, front := faultTCPFrontend(t, fmt.Sprintf(`      - {name: full, type: file, path: /dev/full, on_overflow: block}
      - {name: good, type: file, path: %q, on_overflow: block}
      - {name: ref, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: block}
`, good), "")
	ref := faultDial(t, "ref", c.Addr(t, "t", "ref"))
	faultWaitLegs(t, c, "ref", 1)
	logMark := len(c.Proc.Output())
	stream := faultPattern(0, 4<<20)
	faultWriteAll(t, front, stream)
	faultWaitBytes(t, ref, stream)
	faultWaitFile(t, good, stream)
	faultWaitLegs(t, c, "full", 0)
	faultLogged(t, c, logMark, "backend=full", "no space left on device")
	faultAlive(t, c)
	// The daemon keeps working: more output still flows.
	more := faultPattern(len(stream), 64<<10)
	faultWriteAll(t, front, more)
	faultWaitBytes(t, ref, append(bytes.Clone(stream), more...))
}

// TestFaultConnectionFlood is fault 4: thousands of connection attempts
// beyond max_clients. Every one is refused cleanly (a notice and EOF, never
// a hang), the admitted clients stay and keep receiving, and afterwards
// chartee's fds and goroutines are back where they were.
func TestFaultConnectionFlood(t *testing.T) {
	harness.Begin(t)
	metrics := harness.FreeAddr(t)
	c, front := faultTCPFrontend(t, `      - {name: ops, type: tcp-listen, listen: "127.0.0.1:0", max_clients: 4, on_full: reject}
`, fmt.Sprintf("metrics:\n  listen: %s", metrics))
	addr := c.Addr(t, "t", "ops")
	var clients []*harness.Recorder
	for i := range 4 {
		clients = append(clients, faultDial(t, fmt.Sprintf("client-%d", i), addr))
	}
	faultWaitLegs(t, c, "ops", 4)
	faultWriteAll(t, front, []byte("warm up\n"))
	for _, cl := range clients {
		cl.WaitFor(t, "warm up\n", 0, timeoutLong)
	}
	pid := c.Proc.Pid()
	fds0, gor0 := faultProcFDs(t, pid), faultGoroutines(t, metrics)

	// Each attempt must read the notice, whole, and then the end of the
	// connection: EOF, or a reset once the notice is in. A hang (the
	// deadline passes), a connection refused by the kernel, a bare close
	// or anything but the notice is a failure.
	const notice = "chartee: too many clients\r\n"
	const attempts, workers = 3000, 48
	var refused atomic.Int64
	var failed sync.Map
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					failed.Store(i, err.Error())
					continue
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				got, err := io.ReadAll(conn)
				conn.Close()
				switch {
				case err != nil && !errors.Is(err, syscall.ECONNRESET):
					failed.Store(i, fmt.Sprintf("%v after %q", err, got)) // a hang: the deadline passed
				case string(got) != notice:
					failed.Store(i, fmt.Sprintf("read %q (%v), want the notice %q", got, err, notice))
				default:
					refused.Add(1)
				}
			}
		}()
	}
	for i := range attempts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	nFailed := 0
	failed.Range(func(k, v any) bool {
		if nFailed++; nFailed <= 5 {
			t.Errorf("attempt %v: %v", k, v)
		}
		return true
	})
	if n := refused.Load(); nFailed > 0 || n != attempts {
		t.Fatalf("%d of %d attempts beyond max_clients were refused with the notice; %d were not", n, attempts, nFailed)
	}
	faultAlive(t, c)
	if b := c.Tee(t, "t").Backend(t, "ops"); b.Legs != 4 {
		t.Fatalf("%d legs after the flood, want the 4 admitted clients", b.Legs)
	}
	faultWriteAll(t, front, []byte("after the flood\n"))
	for _, cl := range clients {
		cl.WaitFor(t, "after the flood\n", 0, timeoutLong)
		if err := cl.Err(); err != nil {
			t.Errorf("%s was disconnected: %v", cl.Name, err)
		}
	}
	waitForState(t, "fds and goroutines back to their level before the flood", func() (bool, string) {
		fds, gor := faultProcFDs(t, pid), faultGoroutines(t, metrics)
		return fds <= fds0 && gor <= gor0, fmt.Sprintf("fds %d (before %d), goroutines %d (before %d)", fds, fds0, gor, gor0)
	})
}

// TestFaultManyFDsSerialReconnect is fault 5: chartee holds more than 1,024
// fds (1,100 TCP clients), then its serial frontend (a socat pty pair) is
// killed and restarted, so the port is reopened at an fd above 1,023 —
// where go.bug.st/serial's select() would panic. The kernel gives the
// lowest free fd, so once the port is gone the test fills every free fd
// below 1,024 with more clients before socat comes back, and then checks
// the port's own fd (/proc/PID/fd links to its pty). Chartee reconnects,
// does not panic, every client is still attached and receives the output,
// and what a client types reaches the port.
func TestFaultManyFDsSerialReconnect(t *testing.T) {
	harness.Begin(t)
	const clients = 1100
	// The test process needs an fd per client too; chartee (a Go program)
	// raises its own soft limit to the hard one at start.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	if lim.Cur < clients+400 {
		t.Fatalf("RLIMIT_NOFILE hard limit %d is too low for %d clients: raise it (ulimit -Hn)", lim.Max, clients)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "console"), filepath.Join(dir, "console-far")
	pair := harness.StartPtyPair(t, "socat", a, b)
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, faultConfig(c, fmt.Sprintf(`      type: serial
      path: %q
      exclusive: false
      reconnect: {initial: 50ms, max: 200ms}`, a),
		`      - {name: ops, type: tcp-listen, listen: "127.0.0.1:0", queue: 16KiB, input: true}
`, ""))
	c.Start(t)
	waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "t").Frontend.Up })
	pid := c.Proc.Pid()
	if port := faultFDsOf(t, pid, a); len(port) == 0 || port[0] >= 1024 {
		t.Fatalf("before the clients the port is at fds %v: want it low, to see it move", port)
	}
	addr := c.Addr(t, "t", "ops")
	var conns []net.Conn
	dial := func(n int) {
		for range n {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("client %d: %v", len(conns), err)
			}
			conns = append(conns, conn)
			t.Cleanup(func() { conn.Close() })
		}
		faultWaitLegs(t, c, "ops", len(conns))
	}
	dial(clients)
	if n := faultProcFDs(t, pid); n <= 1024 {
		t.Fatalf("chartee holds only %d fds; the test needs more than 1024", n)
	}

	pair.Proc.Kill()
	os.Remove(a)
	os.Remove(b)
	waitFor(t, "chartee to see the frontend gone", func() bool { return !c.Tee(t, "t").Frontend.Up })
	// The port's old fd (and any other freed since) is now the lowest
	// free one: fill every hole below 1024 with a client.
	for range 5 {
		free := faultFreeFDsBelow(t, pid, 1024)
		if free == 0 {
			break
		}
		dial(free)
	}
	if free := faultFreeFDsBelow(t, pid, 1024); free != 0 {
		t.Fatalf("%d fds below 1024 are still free in chartee", free)
	}
	harness.StartPtyPair(t, "socat-again", a, b)
	waitFor(t, "chartee to reopen the serial port", func() bool { return c.Tee(t, "t").Frontend.Up })
	faultAlive(t, c)
	port := faultFDsOf(t, pid, a)
	if len(port) == 0 {
		t.Fatalf("no fd of chartee's is the port %s", a)
	}
	for _, fd := range port {
		if fd < 1024 {
			t.Fatalf("chartee reopened the port at fds %v: not above 1023", port)
		}
	}
	t.Logf("the port is at fds %v, with %d clients", port, len(conns))

	far := harness.OpenTTY(t, b)
	farRec := harness.Record(t, "far", far)
	faultWriteAll(t, far, []byte("after the reconnect\n"))
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn.SetReadDeadline(time.Now().Add(timeoutLong))
			var got []byte
			buf := make([]byte, 256)
			for !bytes.Contains(got, []byte("after the reconnect\n")) {
				n, err := conn.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					errs <- fmt.Errorf("client %d: %v after %q", i, err, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// And the other way: what a client types is written to the port.
	if _, err := conns[0].Write([]byte("typed at fd>1023\r")); err != nil {
		t.Fatal(err)
	}
	farRec.WaitFor(t, "typed at fd>1023\r", 0, timeoutLong)
	st := c.Tee(t, "t")
	if st.Backend(t, "ops").Legs != len(conns) || st.Frontend.Reconnects == 0 {
		t.Fatalf("after the reconnect: %d legs (want %d), %d reconnects", st.Backend(t, "ops").Legs, len(conns), st.Frontend.Reconnects)
	}
	faultAlive(t, c)
}

// TestFaultReloadRefused is fault 6: SIGHUP with a broken config, and with
// a config whose new capture path cannot be opened. Both are refused and
// logged; the running config stays — same backends, same listener, the
// capture still written at its old path — and a good reload still works.
func TestFaultReloadRefused(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	peer := newFaultPeer(t, "tcp", "127.0.0.1:0")
	c := harness.NewChartee(t, dir)
	capture := filepath.Join(dir, "capture.raw")
	notDir := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(notDir, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(capturePath, extra string) string {
		return faultConfig(c, "      type: tcp-connect\n      address: "+peer.addr, fmt.Sprintf(
			`      - {name: ops, type: tcp-listen, listen: "127.0.0.1:0"}
      - {name: capture, type: file, path: %q, on_overflow: block}
%s`, capturePath, extra), "")
	}
	c.WriteConfig(t, config(capture, ""))
	c.Start(t)
	front := peer.accept(t)
	client := faultDial(t, "client", c.Addr(t, "t", "ops"))
	faultWaitLegs(t, c, "ops", 1)
	addr := c.Addr(t, "t", "ops")
	var stream []byte
	emit := func(s string) {
		stream = append(stream, s...)
		faultWriteAll(t, front, []byte(s))
		client.WaitFor(t, s, 0, timeoutLong)
	}
	emit("before the reloads\n")

	for _, bad := range []struct{ name, config, words string }{
		{"broken", config(capture, "      - {name: x, type: ringbuf\n"), "reload failed"},
		{"unwritable capture", config(filepath.Join(notDir, "capture.raw"), "      - {name: rb, type: ringbuf}\n"), "reload failed"},
	} {
		c.WriteConfig(t, bad.config)
		mark := len(c.Proc.Output())
		if err := c.Proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line := faultLogged(t, c, mark, bad.words)
		t.Logf("%s: %s", bad.name, line)
		st := c.Tee(t, "t")
		if len(st.Backends) != 2 || st.Backend(t, "ops").Source != addr || st.Backend(t, "ops").Legs != 1 ||
			st.Backend(t, "capture").Legs != 1 {
			t.Fatalf("%s config changed the running tee: %+v", bad.name, st.Backends)
		}
		emit(fmt.Sprintf("after the %s reload\n", bad.name))
		faultWaitFile(t, capture, stream)
	}
	// The API's reload refuses the same file with a client error.
	var apiErr *harness.APIError
	if err := c.Request("POST", "/v1/reload", nil, nil); !errors.As(err, &apiErr) || apiErr.Status/100 == 2 {
		t.Errorf("POST /v1/reload of the unwritable capture: %v, want an error", err)
	}
	// A good file is applied afterwards.
	c.WriteConfig(t, config(capture, "      - {name: rb, type: ringbuf}\n"))
	mark := len(c.Proc.Output())
	c.Proc.Signal(syscall.SIGHUP)
	faultLogged(t, c, mark, "config reloaded")
	if st := c.Tee(t, "t"); len(st.Backends) != 3 {
		t.Fatalf("the good reload did not apply: %+v", st.Backends)
	}
	emit("after the good reload\n")
	faultWaitFile(t, capture, stream)
	if err := client.Err(); err != nil {
		t.Errorf("the client was disconnected: %v", err)
	}
	faultAlive(t, c)
}

// TestFaultKill9Capture is fault 7: chartee is killed with SIGKILL while it
// captures a fast stream, then started again with the same config. The
// capture file holds an exact prefix of the stream up to the kill (nothing
// torn or corrupted; it agrees with what a block client saw), and the
// output after the restart is appended after it.
func TestFaultKill9Capture(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	peer := newFaultPeer(t, "tcp", "127.0.0.1:0")
	c := harness.NewChartee(t, dir)
	capture := filepath.Join(dir, "capture.raw")
	clientAddr := harness.FreeAddr(t)
	c.WriteConfig(t, faultConfig(c, "      type: tcp-connect\n      address: "+peer.addr+"\n      reconnect: {initial: 50ms, max: 200ms}",
		fmt.Sprintf(`      - {name: capture, type: file, path: %q, format: raw, append: true, on_overflow: block}
      - {name: ops, type: tcp-listen, listen: %q, on_overflow: block}
`, capture, clientAddr), ""))
	c.Start(t)
	front := peer.accept(t)
	client := faultDial(t, "client", clientAddr)
	faultWaitLegs(t, c, "ops", 1)

	const total = 64 << 20
	stream := faultPattern(0, total)
	writeDone := make(chan error, 1)
	go func() {
		_, err := front.Write(stream) // ends with an error when chartee is killed
		writeDone <- err
	}()
	waitFor(t, "a few MiB captured", func() bool { return fileSize(capture) > 4<<20 })
	if err := syscall.Kill(c.Proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.Proc.Done()
	front.Close()
	faultWaitWrite(t, writeDone)
	<-client.Done()

	before, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	k := len(before)
	if k == 0 || k >= total || !bytes.Equal(before, stream[:k]) {
		t.Fatalf("after kill -9 the capture's %d bytes are not an exact prefix of the stream: %s", k, firstDiff(before, stream[:min(k, total)]))
	}
	seen := client.Bytes()
	if !bytes.Equal(seen, stream[:len(seen)]) {
		t.Fatalf("the block client's %d bytes are not a prefix of the stream: %s", len(seen), firstDiff(seen, stream[:len(seen)]))
	}
	t.Logf("at the kill: %d bytes captured, %d seen by the block client", k, len(seen))

	// Restarted with the same config, chartee appends.
	c.Start(t)
	front2 := peer.accept(t)
	client2 := faultDial(t, "client-after", clientAddr)
	faultWaitLegs(t, c, "ops", 1)
	after := faultPattern(0, 1<<20) // a new stream: its records start at 0 again
	faultWriteAll(t, front2, after)
	faultWaitBytes(t, client2, after)
	faultWaitFile(t, capture, append(before, after...))
}

// faultWaitWrite waits for the frontend writer's result; a write that does
// not finish means chartee stopped reading its frontend.
func faultWaitWrite(t testing.TB, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(timeoutLong):
		t.Fatalf("the frontend write did not finish within %v: chartee stopped reading its frontend", timeoutLong)
		return nil
	}
}
