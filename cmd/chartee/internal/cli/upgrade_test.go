package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
