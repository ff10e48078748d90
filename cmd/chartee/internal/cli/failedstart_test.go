package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A start that fails because an address is taken leaves no capture file
// behind, and an existing capture (an asciicast appended to) exactly as
// it was: every socket is bound before any capture is created or
// appended to, and a capture opened ahead of a failure is discarded.
func TestFailedStartLeavesNoCapture(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name, metrics, telnet string
	}{
		{"metrics port busy", busy.Addr().String(), "127.0.0.1:0"},
		{"backend port busy", "127.0.0.1:0", busy.Addr().String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := shortTempDir(t)
			fresh := filepath.Join(dir, "fresh.cast")
			kept := filepath.Join(dir, "kept.cast")
			truncated := filepath.Join(dir, "truncated.log")
			old := `{"version":2,"width":80,"height":24,"timestamp":1700000000}` + "\n" + `[0.5,"o","earlier run\r\n"]` + "\n"
			writeFile(t, kept, old)
			writeFile(t, truncated, "the previous run's log\n")
			cfg := filepath.Join(dir, "c.yaml")
			writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
metrics: {listen: %q}
tees:
  - name: t1
    frontend: {type: demo, heartbeat: 0s}
    backends:
      - {name: fresh, type: file, path: %s, format: asciicast}
      - {name: kept, type: file, path: %s, format: asciicast, append: true}
      - {name: truncated, type: file, path: %s, format: timestamped, append: false}
      - {name: tel, type: tcp-listen, listen: %q, protocol: telnet}
`, filepath.Join(dir, "ctl.sock"), c.metrics, fresh, kept, truncated, c.telnet))
			r := runCmd(context.Background(), nil, "run", "-c", cfg)
			if r.code != exitError || !strings.Contains(r.stderr, "address already in use") {
				t.Fatalf("run: exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if _, err := os.Stat(fresh); !os.IsNotExist(err) {
				t.Errorf("a failed start left %s behind (stat: %v)", fresh, err)
			}
			if b, _ := os.ReadFile(kept); string(b) != old {
				t.Errorf("a failed start changed the appended capture:\n%q\nwant\n%q", b, old)
			}
			if b, _ := os.ReadFile(truncated); string(b) != "the previous run's log\n" {
				t.Errorf("a failed start truncated %s: %q", truncated, b)
			}
			if _, err := os.Stat(filepath.Join(dir, "ctl.sock")); !os.IsNotExist(err) {
				t.Errorf("a failed start left the control socket (stat: %v)", err)
			}
		})
	}
}
