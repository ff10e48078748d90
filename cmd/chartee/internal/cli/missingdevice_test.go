package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A frontend device that is not there is said at once: in the log (once,
// not at every retry), in `ctl list` and `ctl show`, and in the metrics.
func TestMissingDeviceIsReported(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
metrics: {listen: "127.0.0.1:0"}
tees:
  - name: fw1
    frontend:
      type: serial
      path: /dev/ttyUSB-chartee-absent
      reconnect: {initial: 10ms, max: 20ms}
    backends:
      - {name: recent, type: ringbuf}
`, sock))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr, _, done, info := startInProcess(t, ctx, "run", "-c", cfg)
	const problem = "serial: open /dev/ttyUSB-chartee-absent: no such file or directory"
	waitFor(t, 5*time.Second, "the open error in the log", func() bool {
		return strings.Contains(stderr.String(), "level=WARN msg=frontend-open-failed tee=fw1")
	})
	env := map[string]string{"CHARTEE_SOCKET": sock}
	r := runCmd(ctx, env, "ctl", "list")
	mustContain(t, "ctl list", r.stdout, "PROBLEM", problem+" (retrying)")
	r = runCmd(ctx, env, "ctl", "show", "fw1")
	mustContain(t, "ctl show", r.stdout, "DOWN, retrying", "last error: "+problem)
	var body string
	waitFor(t, 5*time.Second, "failed opens counted", func() bool {
		body = httpGet(t, info.MetricsURL)
		return strings.Contains(body, `chartee_frontend_open_failures_total{tee="fw1"}`) &&
			!strings.Contains(body, `chartee_frontend_open_failures_total{tee="fw1"} 0`) &&
			!strings.Contains(body, `chartee_frontend_open_failures_total{tee="fw1"} 1`+"\n")
	})
	// Dozens of retries, one log line: the error did not change.
	if n := strings.Count(stderr.String(), "msg=frontend-open-failed"); n != 1 {
		t.Errorf("%d open-failure log lines, want 1:\n%s", n, stderr.String())
	}
	mustContain(t, "log", stderr.String(), problem+"; retrying")
	cancel()
	<-done
}
