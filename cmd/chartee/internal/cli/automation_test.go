package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtlAutomation drives send, wait and break through the real command
// line against an in-process daemon whose frontend is cat: what is typed
// comes back as output, so every send has an answer to wait for.
func TestCtlAutomation(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "ctl.sock")
	conf := filepath.Join(dir, "c.yaml")
	writeFile(t, conf, fmt.Sprintf(`
control: {socket: %q}
tees:
  - name: cat
    line_ending: '\n'
    frontend: {type: exec, command: [/bin/cat], pty: false}
`, sock))
	ctx, cancel := context.WithCancel(context.Background())
	_, _, done, _ := startInProcess(t, ctx, "run", "-c", conf)
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("run did not stop")
		}
	}()
	env := map[string]string{"CHARTEE_SOCKET": sock}
	ctl := func(args ...string) ctlResult { return runCmd(ctx, env, append([]string{"ctl"}, args...)...) }

	r := ctl("--json", "send", "cat", `hello \x41\tworld\n`)
	var sent struct {
		Written int    `json:"written"`
		Offset  uint64 `json:"offset"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &sent) != nil || sent.Written != 14 || sent.Offset != 0 {
		t.Fatalf("send: %+v", r)
	}
	r = ctl("wait", "cat", `^hello A\tworld$`, "--from", "0", "--timeout", "10s")
	if r.code != exitOK || r.stdout != "0 hello A\tworld\n" {
		t.Fatalf("wait: %+v", r)
	}
	file := filepath.Join(dir, "script.txt")
	writeFile(t, file, "from a file\n")
	r = ctl("send", "cat", "--file", file)
	if r.code != exitOK || !strings.Contains(r.stdout, "sent 12 bytes to tee cat") {
		t.Fatalf("send --file: %+v", r)
	}
	r = ctl("send", "cat", "--line", "with the line ending")
	if r.code != exitOK {
		t.Fatalf("send --line: %+v", r)
	}
	r = ctl("--json", "wait", "cat", `line (ending)$`, "--from", "start", "--timeout", "10s")
	if r.code != exitOK || !strings.Contains(r.stdout, `"match": "line ending"`) || !strings.Contains(r.stdout, `"offset": 35`) {
		t.Fatalf("wait --json: %+v", r)
	}
	// A timeout: exit 1, the last lines shown.
	r = ctl("wait", "cat", "never printed", "--from", "start", "--timeout", "200ms")
	if r.code != exitError || !strings.Contains(r.stdout, "no match") || !strings.Contains(r.stdout, "from a file") {
		t.Fatalf("wait timeout: %+v", r)
	}
	// cat's pipes cannot send a break: a clear error.
	r = ctl("break", "cat")
	if r.code != exitError || !strings.Contains(r.stderr, "cannot send a break") {
		t.Fatalf("break on exec: %+v", r)
	}
	for _, bad := range [][]string{
		{"send", "cat"},
		{"wait", "cat", "a("},
		{"wait", "cat", "x", "--from", "later"},
		{"break", "cat", "--line"},
		{"send", "cat", "x", "--file", filepath.Join(dir, "missing")},
	} {
		if r := ctl(bad...); r.code == exitOK {
			t.Errorf("ctl %v succeeded: %+v", bad, r)
		}
	}
}
