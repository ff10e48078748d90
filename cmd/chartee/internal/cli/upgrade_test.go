package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"chartee/cmd/chartee/internal/api"
)

// TestUpgradeRefusedKeepsClients: a daemon whose tees cannot be carried
// to a new binary yet refuses `ctl upgrade` (and SIGUSR2) with what would
// be dropped, starts nothing, and keeps every client attached.
func TestUpgradeRefusedKeepsClients(t *testing.T) {
	bin := chartee(t)
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
tees:
  - name: console
    frontend: {type: demo, heartbeat: 50ms}
    backends:
      - {name: raw, type: tcp-listen, listen: "127.0.0.1:0"}
`, sock))
	p := startProcess(t, bin, nil, "run", "-c", cfg)
	var addr string
	waitFor(t, 15*time.Second, "the listener", func() bool {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if _, a, ok := strings.Cut(l, "backend raw          listening on "); ok {
				addr = a
				return true
			}
		}
		return false
	})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readUntil(t, conn, "alive")

	r := runBinary(t, bin, "ctl", "--socket", sock, "upgrade", "--binary", bin)
	if r.code != exitError {
		t.Fatalf("ctl upgrade: exit %d, want %d\n%s%s", r.code, exitError, r.stdout, r.stderr)
	}
	mustContain(t, "ctl upgrade", r.stderr, "upgrade: refused, nothing changed",
		"tee console: frontend demo (its simulated console lives in the old process's memory) cannot be carried yet")
	p.cmd.Process.Signal(syscall.SIGUSR2)
	waitFor(t, 5*time.Second, "the SIGUSR2 refusal in the log", func() bool {
		return strings.Count(p.stderr.String(), "upgrade refused") == 2
	})
	// The client is still attached and still fed.
	readUntil(t, conn, "alive")
	readUntil(t, conn, "alive")
	if r := runBinary(t, bin, "ctl", "--socket", sock, "list"); r.code != exitOK {
		t.Fatalf("ctl list after the refusal: exit %d\n%s", r.code, r.stderr)
	}
}

// TestUpgradePreparesBeforeTheCut: while a new binary starts (here: one
// that never says it is prepared), the running daemon has not stopped at
// any cut: its clients keep receiving output during the upgrade call,
// which then fails saying nothing was frozen.
func TestUpgradePreparesBeforeTheCut(t *testing.T) {
	f := startCarryFixture(t)
	hang := filepath.Join(shortTempDir(t), "hang")
	writeFile(t, hang, "#!/bin/sh\nexec sleep 60\n")
	os.Chmod(hang, 0o755)
	a := newReader(t, f.raw)
	waitGrowth(t, a, 900)
	done := make(chan ctlResult, 1)
	go func() { done <- f.upgrade(t, "--binary", hang, "--timeout", "8s") }()
	// The new binary is running (not prepared, never will be): wait for
	// it, then for more output while the call is still in flight.
	waitFor(t, 15*time.Second, "the new binary to start", func() bool {
		return strings.Contains(f.p.stderr.String(), "upgrade: starting the new binary")
	})
	s, _ := a.snapshot()
	grew := make(chan struct{})
	go func() {
		defer close(grew)
		waitUntil(15*time.Second, func() bool { s2, _ := a.snapshot(); return len(s2) >= len(s)+900 })
	}()
	select {
	case <-grew:
		if s2, _ := a.snapshot(); len(s2) < len(s)+900 {
			t.Fatalf("no output for 15s while the new binary prepared")
		}
	case r := <-done:
		t.Fatalf("the upgrade call ended before more output came: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := <-done
	if r.code != exitError {
		t.Fatalf("upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustContain(t, "ctl upgrade", r.stderr, "rolled back, this daemon carries on (nothing was frozen)",
		"was not prepared within 8s")
	s, err := a.snapshot()
	if err != nil {
		t.Fatalf("the client was disconnected: %v", err)
	}
	checkCounter(t, "client", s)
}

// TestUpgradeReportsThePause: `ctl upgrade` says how long the output
// paused, how long the new binary took to prepare before the cut, and
// where the pause went, step by step in both processes.
func TestUpgradeReportsThePause(t *testing.T) {
	f := startCarryFixture(t)
	a := newReader(t, f.raw)
	waitGrowth(t, a, 900)
	r := runBinary(t, f.bin, "ctl", "--socket", f.sock, "upgrade", "--binary", f.bin)
	if r.code != exitOK {
		t.Fatalf("upgrade: exit %d\n%s%s\ndaemon log:\n%s", r.code, r.stdout, r.stderr, f.p.stderr.String())
	}
	pid := 0
	if _, rest, ok := strings.Cut(r.stdout, " -> "); ok {
		if _, rest, ok = strings.Cut(rest, " -> "); ok {
			fmt.Sscanf(rest, "%d", &pid)
		}
	}
	if pid == 0 {
		t.Fatalf("no new pid in %q", r.stdout)
	}
	killByPID(t, pid)
	mustContain(t, "ctl upgrade", r.stdout, "output paused ", "the new binary started and checked the config in ",
		"before the cut; from the cut: frozen +")
	// Every step, in the order they happen (the new process's steps are
	// read off the same clock).
	last := -1
	for _, step := range []string{"frozen", "state", "received", "built", "ready", "committed", "running"} {
		i := strings.Index(r.stdout, " "+step+" +")
		if i < 0 {
			t.Fatalf("step %s missing from %q", step, r.stdout)
		}
		if i < last {
			t.Errorf("step %s out of order in %q", step, r.stdout)
		}
		last = i
	}
	s, _ := a.snapshot()
	waitGrowth(t, a, len(s)+900)
	s, err := a.snapshot()
	if err != nil {
		t.Fatalf("the client was disconnected: %v", err)
	}
	checkCounter(t, "client", s)
}

// TestUpgradeRefusedAsPIDOne: as a container's init, the daemon refuses
// to upgrade, saying why, before it looks at anything else: the old
// process's exit at the commit would stop the container.
func TestUpgradeRefusedAsPIDOne(t *testing.T) {
	u := &upgrader{log: slog.New(slog.DiscardHandler), getpid: func() int { return 1 }}
	_, exit, err := u.upgrade(context.Background(), api.UpgradeRequest{})
	if err == nil || exit != nil {
		t.Fatalf("upgrade as PID 1: err %v, exit %v; want a refusal", err, exit != nil)
	}
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.Code != api.CodeUpgradeRefused || !strings.Contains(aerr.Message, "runs as PID 1") {
		t.Fatalf("upgrade as PID 1: %v, want %s saying it runs as PID 1", err, api.CodeUpgradeRefused)
	}
}
