package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// conn is one end of a byte stream the bench drives: the device side of
// the "serial port" or one client of the server under test. *os.File (a
// non-blocking tty) and net.Conn both are.
type conn interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// env is what every run shares.
type env struct {
	dir      string // scratch directory, removed at the end
	chartee  string // chartee binary; "" when it could not be built
	buildErr error
	runs     int // numbers scratch files
}

func (e *env) scratch(name string) string {
	e.runs++
	return filepath.Join(e.dir, fmt.Sprintf("%03d-%s", e.runs, name))
}

// runOpts shape one server instance.
type runOpts struct {
	clients int    // clients it must accept
	capture string // chartee only: a capture file backend named "cap" at this path
	metrics bool   // chartee only: serve /metrics
}

// target is a running server under test with its device.
type target struct {
	dev     conn // the bench's side of the device
	proc    *proc
	dial    func(ctx context.Context) (conn, error)
	socket  string // chartee control socket
	metrics string // chartee metrics address
	cleanup []func()
}

func (t *target) close() {
	if t.proc != nil {
		t.proc.stop()
	}
	for i := len(t.cleanup) - 1; i >= 0; i-- {
		t.cleanup[i]()
	}
}

// peer is one system measured: a server under test or a baseline.
type peer struct {
	id    string // -peers name
	label string
	maxN  int // most clients it can serve; 0: any
	unix  bool
	start func(ctx context.Context, e *env, o runOpts) (*target, error)
}

var allPeers = []*peer{
	{id: "device", label: "pty read directly", maxN: 1, start: startDirectPTY},
	{id: "socat", label: "socat", maxN: 1, start: startSocat},
	{id: "ser2net", label: "ser2net", start: func(ctx context.Context, e *env, o runOpts) (*target, error) {
		return startSer2net(ctx, e, o, true)
	}},
	{id: "ser2net-nodelay", label: "ser2net chardelay:false", start: func(ctx context.Context, e *env, o runOpts) (*target, error) {
		return startSer2net(ctx, e, o, false)
	}},
	{id: "chartee", label: "chartee", start: func(ctx context.Context, e *env, o runOpts) (*target, error) {
		return startChartee(ctx, e, o, false)
	}},
	{id: "chartee-cap", label: "chartee + block capture", maxN: 1, start: func(ctx context.Context, e *env, o runOpts) (*target, error) {
		// The issue-10 target's setup: beside the client, a block raw
		// capture file leg (removed after the run: it grows fast).
		if o.capture == "" {
			o.capture = e.scratch("cap.raw")
		}
		t, err := startChartee(ctx, e, o, false)
		if err == nil {
			t.cleanup = append(t.cleanup, func() { os.Remove(o.capture) })
		}
		return t, err
	}},
	{id: "chartee-gmp1", label: "chartee GOMAXPROCS=1", start: func(ctx context.Context, e *env, o runOpts) (*target, error) {
		return startChartee(ctx, e, o, false, "GOMAXPROCS=1")
	}},
	{id: "chartee-ssh", label: "chartee over SSH", start: startCharteeSSH},
	{id: "unix", label: "unix socket read directly", maxN: 1, unix: true, start: startDirectUnix},
	{id: "chartee-unix", label: "chartee (unix frontend)", unix: true, start: func(ctx context.Context, e *env, o runOpts) (*target, error) {
		return startChartee(ctx, e, o, true)
	}},
}

func peerByID(id string) *peer {
	for _, p := range allPeers {
		if p.id == id {
			return p
		}
	}
	return nil
}

func newPTYTarget() (*target, *ptyDevice, error) {
	d, err := openPTY()
	if err != nil {
		return nil, nil, err
	}
	return &target{dev: d.master, cleanup: []func(){d.Close}}, d, nil
}

func tcpDialer(port int) func(ctx context.Context) (conn, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return func(ctx context.Context) (conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("bench: dial %s: %w", addr, err)
		}
		return c.(*net.TCPConn), nil
	}
}

// startDirectPTY is the device's own limit: the single client is the pty
// slave itself, read by the bench with no server in between.
func startDirectPTY(ctx context.Context, e *env, o runOpts) (*target, error) {
	t, d, err := newPTYTarget()
	if err != nil {
		return nil, err
	}
	used := false
	t.dial = func(context.Context) (conn, error) {
		if used {
			return nil, errors.New("bench: the direct pty has one reader")
		}
		used = true
		return openRawTTY(d.slavePath)
	}
	return t, nil
}

func startSocat(ctx context.Context, e *env, o runOpts) (*target, error) {
	t, d, err := newPTYTarget()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		t.close()
		return nil, err
	}
	t.proc, err = startProc("socat", e.scratch("socat.log"), "socat",
		fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", port),
		"FILE:"+d.slavePath+",raw,echo=0")
	if err != nil {
		t.close()
		return nil, err
	}
	if err := waitListening(ctx, t.proc, port, 10*time.Second); err != nil {
		t.close()
		return nil, err
	}
	t.dial = tcpDialer(port)
	return t, nil
}

// startSer2net runs ser2net 4 on the pty slave. max-connections lets it
// serve several clients (it sends the device output to all of them); with
// chardelay (the default) it waits a couple of character times, at least
// 1 ms, after device input before sending.
func startSer2net(ctx context.Context, e *env, o runOpts, chardelay bool) (*target, error) {
	t, d, err := newPTYTarget()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		t.close()
		return nil, err
	}
	n := max(o.clients, 1)
	cfg := fmt.Sprintf(`%%YAML 1.1
---
connection: &bench
  accepter: tcp,127.0.0.1,%d
  connector: serialdev,%s,115200n81,local
  options:
    max-connections: %d
`, port, d.slavePath, n)
	if !chardelay {
		cfg += "    chardelay: false\n"
	}
	path := e.scratch("ser2net.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	t.proc, err = startProc("ser2net", strings.TrimSuffix(path, ".yaml")+".log", "ser2net",
		"-n", "-u", "-P", strings.TrimSuffix(path, ".yaml")+".pid", "-c", path)
	if err != nil {
		t.close()
		return nil, err
	}
	if err := waitListening(ctx, t.proc, port, 10*time.Second); err != nil {
		t.close()
		return nil, err
	}
	t.dial = tcpDialer(port)
	return t, nil
}

// startDirectUnix is the unix-socket device's own limit: the bench plays
// QEMU (the listening side) and reads its own connection directly.
func startDirectUnix(ctx context.Context, e *env, o runOpts) (*target, error) {
	path := e.scratch("direct.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer l.Close()
	client, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	l.(*net.UnixListener).SetDeadline(time.Now().Add(5 * time.Second))
	dev, err := l.Accept()
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	used := false
	t := &target{dev: dev.(*net.UnixConn), cleanup: []func(){func() { dev.Close(); client.Close() }}}
	t.dial = func(context.Context) (conn, error) {
		if used {
			return nil, errors.New("bench: the direct unix socket has one reader")
		}
		used = true
		return client.(*net.UnixConn), nil
	}
	return t, nil
}

// startChartee runs chartee with one tee: the frontend is the pty slave (a
// serial port) or, for the QEMU case, a unix socket the bench listens on;
// the clients are one tcp-listen backend. Every leg is a block leg, so no
// byte may be lost.
func startChartee(ctx context.Context, e *env, o runOpts, unixFront bool, environ ...string) (*target, error) {
	if e.chartee == "" {
		return nil, fmt.Errorf("bench: chartee not available: %v", e.buildErr)
	}
	var t *target
	var front string
	var l *net.UnixListener
	if unixFront {
		path := e.scratch("qemu.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		l = ln.(*net.UnixListener)
		t = &target{}
		front = fmt.Sprintf("{type: unix-connect, path: %q}", path)
	} else {
		var d *ptyDevice
		var err error
		t, d, err = newPTYTarget()
		if err != nil {
			return nil, err
		}
		front = fmt.Sprintf("{type: serial, path: %q, baud: 115200}", d.slavePath)
	}
	fail := func(err error) (*target, error) {
		if l != nil {
			l.Close()
		}
		t.close()
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	t.socket = e.scratch("chartee.sock")
	var b strings.Builder
	fmt.Fprintf(&b, "control: {socket: %q}\nlog: {level: warn}\n", t.socket)
	if o.metrics {
		mport, err := freePort()
		if err != nil {
			return fail(err)
		}
		t.metrics = fmt.Sprintf("127.0.0.1:%d", mport)
		fmt.Fprintf(&b, "metrics: {listen: %q}\n", t.metrics)
	}
	var sshb *sshBench
	if slices.Contains(environ, sshMarker) {
		var cfgText string
		cfgText, sshb = sshConfigFor(e)
		b.WriteString(cfgText)
	}
	fmt.Fprintf(&b, "tees:\n  - name: bench\n    frontend: %s\n    backends:\n", front)
	fmt.Fprintf(&b, "      - {name: clients, type: tcp-listen, listen: \"127.0.0.1:%d\", max_clients: %d, input: true, on_overflow: block, queue: 1MiB}\n",
		port, max(o.clients, 1))
	if o.capture != "" {
		fmt.Fprintf(&b, "      - {name: cap, type: file, path: %q, format: raw, on_overflow: block, queue: 1MiB}\n", o.capture)
	}
	cfg := e.scratch("chartee.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return fail(fmt.Errorf("bench: %w", err))
	}
	t.proc, err = startProcEnv("chartee", strings.TrimSuffix(cfg, ".yaml")+".log", environ, e.chartee, "run", "-c", cfg)
	if err != nil {
		return fail(err)
	}
	if l != nil {
		l.SetDeadline(time.Now().Add(10 * time.Second))
		c, err := l.Accept()
		l.Close()
		l = nil
		if err != nil {
			return fail(fmt.Errorf("bench: chartee never connected to its unix frontend: %v: %s", err, t.proc.logTail()))
		}
		t.dev = c.(*net.UnixConn)
		t.cleanup = append(t.cleanup, func() { c.Close() })
	}
	if err := waitListening(ctx, t.proc, port, 10*time.Second); err != nil {
		return fail(err)
	}
	t.dial = tcpDialer(port)
	if sshb != nil {
		if err := waitListening(ctx, t.proc, sshb.port, 10*time.Second); err != nil {
			return fail(err)
		}
		t.dial = sshDialer(sshb)
	}
	return t, nil
}
