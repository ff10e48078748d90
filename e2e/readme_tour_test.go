package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// tourStep bounds one command of the tour.
const tourStep = 20 * time.Second

// tourLine is one command of the README's tour, as written.
type tourLine struct{ cmd, comment string }

// readmeTour extracts the tour's commands from README.md: the sh block
// between the "<!-- tour" and "<!-- /tour -->" markers, one command a
// line, comments apart.
func readmeTour(t *testing.T) []tourLine {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- tour[^>]*-->\n```sh\n(.*?)```\n<!-- /tour -->").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md: no tour block between <!-- tour --> and <!-- /tour --> markers")
	}
	var out []tourLine
	sc := bufio.NewScanner(bytes.NewReader(m[1]))
	for sc.Scan() {
		cmd, comment, _ := strings.Cut(sc.Text(), " #")
		if cmd = strings.TrimSpace(cmd); cmd != "" {
			out = append(out, tourLine{cmd, strings.TrimSpace(comment)})
		}
	}
	return out
}

// TestReadmeTour runs the README's five-minute tour as written, after `go
// install ./cmd/chartee` (chartee on PATH): `chartee` starts the demo, and
// each line of the tour runs as a shell command in a second "terminal",
// with only what the README says to adapt adapted — the telnet port and
// the metrics URL the demo printed, and /tmp/ as a directory of the test's
// own. It checks what each prints, and that copy.log + copy2.log is the
// console output since the attach, exactly.
func TestReadmeTour(t *testing.T) {
	harness.Begin(t)
	tour := readmeTour(t)
	if len(tour) < 8 {
		t.Fatalf("the tour has %d commands: %v", len(tour), tour)
	}
	bin := t.TempDir()
	if err := os.Symlink(harness.Binary(t), filepath.Join(bin, "chartee")); err != nil {
		t.Fatal(err)
	}
	runDir, err := os.MkdirTemp("", "tour") // short: a unix socket goes in it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	tmp := t.TempDir()
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + tmp, "XDG_RUNTIME_DIR=" + runDir, "TMPDIR=" + tmp}

	// The first terminal: `chartee`.
	cmd := exec.Command(filepath.Join(bin, "chartee")) // what PATH finds
	cmd.Args[0] = "chartee"
	cmd.Env = env
	demo := harness.StartCmd(t, "chartee demo", cmd)
	var printed string
	waitForState(t, "the demo's instructions", func() (bool, string) {
		printed = demo.Output()
		if !strings.Contains(printed, "Ctrl-C stops the demo.") && demo.Exited() {
			t.Fatalf("the demo exited before printing its instructions:\n%s", printed)
		}
		return strings.Contains(printed, "Ctrl-C stops the demo."), printed
	})
	telnetAt := regexp.MustCompile(`(?m)^  telnet (127\.0\.0\.1) (\d+) `).FindStringSubmatch(printed)
	metricsURL := regexp.MustCompile(`metrics: +(http://\S+/metrics)`).FindStringSubmatch(printed)
	if telnetAt == nil || metricsURL == nil {
		t.Fatalf("the demo did not print its telnet port and metrics URL:\n%s", printed)
	}
	// What the demo prints works as printed: chartee is on PATH.
	for _, want := range []string{"\n  chartee ctl list\n", "\n  chartee ctl tail -f console recent\n", "\n  chartee ctl events\n"} {
		if !strings.Contains(printed, want) {
			t.Errorf("the demo's instructions lack %q:\n%s", want, printed)
		}
	}

	adapt := func(c string) string {
		c = strings.ReplaceAll(c, "127.0.0.1 7000", telnetAt[1]+" "+telnetAt[2])
		c = strings.ReplaceAll(c, "http://127.0.0.1:PORT/metrics", metricsURL[1])
		return strings.ReplaceAll(c, "/tmp/", tmp+"/")
	}
	sh := func(ctx context.Context, c string) (string, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", adapt(c))
		cmd.Env = env
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	run := func(c string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), tourStep)
		defer cancel()
		out, err := sh(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		return out
	}
	// follow runs a command that follows until interrupted (the README
	// says Ctrl-C ends it): once ready holds (it follows), during runs,
	// and once the output shows what during caused (done holds) the
	// command is interrupted.
	follow := func(c string, ready func(out string) bool, during func(), done func(out string) bool) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", "exec "+adapt(c))
		cmd.Env = env
		p := harness.StartCmd(t, c, cmd)
		waitForState(t, c+" following", func() (bool, string) { return ready(p.Output()), p.Output() })
		during()
		waitForState(t, c+" showing what happened", func() (bool, string) { return done(p.Output()), p.Output() })
		p.Signal(syscall.SIGINT)
		p.Wait(tourStep) // ended by the signal: its status says so
		if !p.Exited() {
			t.Errorf("%s: still running %v after Ctrl-C", c, tourStep)
		}
		return p.Output()
	}
	// eventsFollowed: the daemon has an events subscriber, blocked
	// waiting for the next event (seen in its goroutine profile: `ctl
	// events` prints nothing until an event).
	daemon := &harness.Chartee{Socket: filepath.Join(runDir, "chartee-demo.sock")}
	eventsFollowed := func(string) bool {
		dump, err := daemon.GoroutineStacks(tourStep)
		if err != nil {
			t.Fatalf("the demo's goroutines: %v", err)
		}
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, " [select") && strings.Contains(g, "api.(*Server).events(") {
				return true
			}
		}
		return false
	}

	var term *harness.Terminal
	var attachedAt int
	for _, l := range tour {
		word := strings.Fields(l.cmd)
		switch {
		case word[0] == "telnet":
			w := strings.Fields(adapt(l.cmd))
			term, _ = harness.Telnet(t, "telnet", net.JoinHostPort(w[1], w[2]))
			term.Screen.WaitFor(t, "demo login: ", 0, timeoutLong)
			term.Type(t, "alice\r")
			term.Screen.WaitFor(t, "alice@demo:~$ ", 0, tourStep)
		case strings.HasPrefix(l.cmd, "chartee ctl list"):
			out := run(l.cmd)
			mustMatch(t, l.cmd, out, `(?m)^TEE\s+FRONTEND\s+UP`, `(?m)^console\s+demo demo\s+yes`)
		case strings.HasPrefix(l.cmd, "chartee ctl show console"):
			out := run(l.cmd)
			mustMatch(t, l.cmd, out, `frontend:\s+demo demo \(up, primary\)`, `(?m)^telnet\s+listening on 127\.0\.0\.1:`+telnetAt[2],
				`(?m)^recent\s+ringbuf 1MiB`, `(?m)^telnet#1\s+telnet\s+127\.0\.0\.1:`)
		case strings.HasPrefix(l.cmd, "chartee ctl tail -f"):
			uptime := regexp.MustCompile(`alice@demo:~\$ uptime`)
			out := follow(l.cmd, func(out string) bool { return strings.Contains(out, "Linux version") },
				func() { term.Type(t, "uptime\r") }, uptime.MatchString)
			mustMatch(t, l.cmd, out, `Linux version`, `alice@demo:~\$ uptime`)
		case strings.HasPrefix(l.cmd, "chartee ctl attach"):
			out := run(l.cmd)
			attachedAt = legStart(t, run, "copy")
			mustMatch(t, l.cmd, out, `attached backend copy to tee console`, `a reload .* removes copy`)
			term.Type(t, "echo before the swap\r")
			waitFileHas(t, filepath.Join(tmp, "copy.log"), "before the swap")
		case strings.HasPrefix(l.cmd, "chartee ctl swap"):
			out := run(l.cmd)
			mustMatch(t, l.cmd, out, `swapped console/copy \(handover\)`, `now:\s+file `+regexp.QuoteMeta(tmp)+`/copy2\.log \(raw, out\); input no, on_overflow drop`, `cut at offset:\s+\d+`)
			term.Type(t, "echo after the swap\r")
			waitFileHas(t, filepath.Join(tmp, "copy2.log"), "after the swap")
		case strings.HasPrefix(l.cmd, "chartee ctl events"):
			detach := regexp.MustCompile(`console detach backend=copy`)
			out := follow(l.cmd, eventsFollowed, func() { run("chartee ctl detach console copy") }, detach.MatchString)
			mustMatch(t, l.cmd, out, `console detach backend=copy`)
		case strings.HasPrefix(l.cmd, "curl "):
			out := run(l.cmd)
			mustMatch(t, l.cmd, out, `chartee_frontend_up\{tee="console"\} 1`, `chartee_backend_legs\{backend="telnet",tee="console"\} 1`)
		default:
			t.Fatalf("the tour has a command this test does not know: %q; teach TestReadmeTour what it should print", l.cmd)
		}
	}

	// "cat /tmp/copy.log /tmp/copy2.log is exactly the console output
	// since the attach": compare with the ring buffer from that offset.
	copied := run("cat /tmp/copy.log /tmp/copy2.log")
	ring := run("chartee ctl tail --offset " + strconv.Itoa(attachedAt) + " console recent")
	if !strings.HasPrefix(ring, copied) || len(copied) == 0 || !strings.Contains(copied, "before the swap") || !strings.Contains(copied, "after the swap") {
		t.Fatalf("copy.log + copy2.log is not the console output since the attach:\ncopies: %q\nring:   %q", copied, ring)
	}
}

// legStart is the stream offset of the first byte leg name got.
func legStart(t *testing.T, run func(string) string, name string) int {
	t.Helper()
	var st struct {
		Legs []struct {
			Name  string `json:"name"`
			First int    `json:"first_offset"`
		} `json:"legs"`
	}
	out := run("chartee ctl --json show console")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("ctl --json show: %v\n%s", err, out)
	}
	for _, l := range st.Legs {
		if l.Name == name {
			return l.First
		}
	}
	t.Fatalf("no leg %s in:\n%s", name, out)
	return 0
}

func waitFileHas(t *testing.T, path, want string) {
	t.Helper()
	waitFor(t, path+" to hold "+want, func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Contains(b, []byte(want))
	})
}

func mustMatch(t *testing.T, what, got string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(got) {
			t.Errorf("%s: output does not match %q:\n%s", what, p, got)
		}
	}
}
