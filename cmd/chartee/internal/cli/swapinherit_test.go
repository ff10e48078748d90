package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"chartee/cmd/chartee/internal/api"
)

// `ctl swap TEE NAME SPEC` keeps every option the spec does not give:
// the capture in configs/capture-alongside.yaml stays lossless (block,
// its 4MiB queue, raw format) when swapped to a new path, and the report
// and `ctl show` say so.
func TestSwapInheritsUnspecifiedOptions(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
tees:
  - name: board
    frontend: {type: demo, heartbeat: 0s}
    backends:
      - name: raw
        type: file
        path: %s/board.raw
        format: raw
        direction: both
        queue: 4MiB
        on_overflow: block
`, sock, dir))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _, done, _ := startInProcess(t, ctx, "run", "-c", cfg)
	env := map[string]string{"CHARTEE_SOCKET": sock}

	r := runCmd(ctx, env, "ctl", "swap", "board", "raw", "file,path="+dir+"/board-2.log")
	if r.code != exitOK {
		t.Fatalf("swap: %d %s", r.code, r.stderr)
	}
	mustContain(t, "swap report", r.stdout, "now:", "file "+dir+"/board-2.log (raw, both); input no, on_overflow block, queue 4MiB, replay 0")

	r = runCmd(ctx, env, "ctl", "--json", "show", "board")
	var st api.TeeStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("show --json: %v\n%s", err, r.stdout)
	}
	if len(st.Backends) != 1 {
		t.Fatalf("backends %+v", st.Backends)
	}
	b := st.Backends[0]
	if b.Overflow != "block" || b.Queue != 4<<20 || b.Input || b.Device != "file "+dir+"/board-2.log (raw, both)" {
		t.Fatalf("after the swap: %+v", b)
	}
	r = runCmd(ctx, env, "ctl", "show", "board")
	mustContain(t, "ctl show", r.stdout, "file "+dir+"/board-2.log (raw, both)", "block", "4MiB")

	// What the spec gives wins; a different type inherits the leg keys only.
	r = runCmd(ctx, env, "ctl", "swap", "board", "raw", "file,path="+dir+"/board-3.log,on_overflow=drop,format=timestamped")
	mustContain(t, "second swap", r.stdout, "(timestamped, both); input no, on_overflow drop, queue 4MiB")
	r = runCmd(ctx, env, "ctl", "swap", "board", "raw", "ringbuf,size=64KiB")
	mustContain(t, "type change", r.stdout, "ringbuf 64KiB; input no, on_overflow drop, queue 4MiB")
	if strings.Contains(r.stdout, "board-3") {
		t.Errorf("a different type inherited the file's keys:\n%s", r.stdout)
	}
	cancel()
	<-done
}
