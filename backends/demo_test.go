package backends

import (
	"context"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"chartee/chardev"
)

func demoTestOpen(t *testing.T, heartbeat time.Duration) *Demo {
	t.Helper()
	f, err := chardev.Lookup("demo")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*DemoSpec)
	spec.Hostname = "testbox"
	spec.Heartbeat = chardev.Duration(heartbeat)
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	d := dev.(*Demo)
	d.lineDelay = time.Millisecond // before the first Read: no race
	t.Cleanup(func() { d.Close() })
	return d
}

// demoTerm reads a Demo like a terminal would, keeping what arrived
// beyond the text a test waited for.
type demoTerm struct {
	t       *testing.T
	d       *Demo
	pending string
}

// until reads up to and including want; after serialTestTimeout it closes
// the device, which ends the Read and fails the test.
func (c *demoTerm) until(want string) string {
	c.t.Helper()
	timer := time.AfterFunc(serialTestTimeout, func() { c.d.Close() })
	defer timer.Stop()
	buf := make([]byte, 4096)
	for !strings.Contains(c.pending, want) {
		n, err := c.d.Read(buf)
		c.pending += string(buf[:n])
		if err != nil {
			c.t.Fatalf("waiting for %q, got %q: %v", want, c.pending, err)
		}
	}
	i := strings.Index(c.pending, want) + len(want)
	out := c.pending[:i]
	c.pending = c.pending[i:]
	return out
}

// typed writes s and reads until want shows up.
func (c *demoTerm) typed(s, want string) string {
	c.t.Helper()
	if _, err := c.d.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
	return c.until(want)
}

func TestDemoSession(t *testing.T) {
	d := demoTestOpen(t, 0)
	term := &demoTerm{t: t, d: d}
	boot := term.until("testbox login: ")
	for _, want := range []string{"Linux version", "Hostname set to <testbox>", "simulated"} {
		if !strings.Contains(boot, want) {
			t.Errorf("boot log lacks %q:\n%s", want, boot)
		}
	}
	if strings.Contains(strings.ReplaceAll(boot, "\r\n", ""), "\n") {
		t.Errorf("boot log has a bare LF: %q", boot)
	}

	out := term.typed("alice\r\n", "alice@testbox:~$ ")
	if !strings.HasPrefix(out, "alice\r\n") || !strings.Contains(out, "Try 'help'") {
		t.Errorf("login: %q", out)
	}

	out = term.typed("echo hello   world\r", "alice@testbox:~$ ")
	if !strings.Contains(out, "echo hello   world\r\nhello world\r\n") {
		t.Errorf("echo: %q", out)
	}
	out = term.typed("ecx\x7fho fixed\r", "alice@testbox:~$ ")
	if !strings.Contains(out, "ecx\b \bho fixed\r\nfixed\r\n") {
		t.Errorf("backspace: %q", out)
	}
	out = term.typed("rm -rf /\r", "alice@testbox:~$ ")
	if !strings.Contains(out, "-sh: rm: command not found\r\n") {
		t.Errorf("unknown command: %q", out)
	}
	out = term.typed("\x1b[Auname -a\r", "alice@testbox:~$ ")
	if !strings.Contains(out, "uname -a\r\nLinux testbox ") || strings.Contains(out, "[A") {
		t.Errorf("arrow key then uname -a: %q", out)
	}
	for _, cmd := range []string{"help", "uptime", "date", "whoami", "hostname"} {
		out := term.typed(cmd+"\r", "alice@testbox:~$ ")
		if strings.Contains(out, "not found") || !strings.Contains(out, cmd+"\r\n") {
			t.Errorf("%s: %q", cmd, out)
		}
	}
	term.typed("exit\r", "testbox login: ")
	serialAssertCloseUnblocksRead(t, d)
	if _, err := d.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestDemoHeartbeat(t *testing.T) {
	d := demoTestOpen(t, 20*time.Millisecond)
	term := &demoTerm{t: t, d: d}
	term.until("testbox login: ")
	// The prompt is redrawn after the interruption.
	out := term.until("heartbeat: testbox is alive\r\ntestbox login: ")
	out += term.until("heartbeat: testbox is alive\r\ntestbox login: ")
	if !strings.Contains(out, "] heartbeat: testbox is alive\r\ntestbox login: ") {
		t.Errorf("heartbeat output %q", out)
	}
}

// Without heartbeat, a finished boot has no timed event left.
func TestDemoNoHeartbeat(t *testing.T) {
	d := demoTestOpen(t, 0)
	(&demoTerm{t: t, d: d}).until("testbox login: ")
	d.mu.Lock()
	_, timed := d.untilNextEvent(time.Now())
	d.mu.Unlock()
	if timed {
		t.Error("heartbeat 0 still schedules an event")
	}
}

// Line settings are kept and shown on the console, so a replay after a
// frontend swap is visible.
func TestDemoLineSettings(t *testing.T) {
	d := demoTestOpen(t, 0)
	term := &demoTerm{t: t, d: d}
	term.until("testbox login: ")
	if err := d.SetLineSettings(chardev.LineSettings{Baud: 9600, Parity: chardev.ParityEven, DataBits: 7}); err != nil {
		t.Fatal(err)
	}
	term.until("line settings now 9600 7E1")
	if err := d.SetLineSettings(chardev.LineSettings{Flow: chardev.FlowRTSCTS}); err != nil {
		t.Fatal(err)
	}
	want := chardev.LineSettings{Baud: 9600, DataBits: 7, Flow: chardev.FlowRTSCTS}
	if got, _ := d.LineSettings(); got != want {
		t.Errorf("LineSettings() = %v, want %v", got, want)
	}
	term.typed("root\r", "root@testbox:~# ")
	term.typed("stty\r", "speed 9600 baud")
	if err := d.SetLineSettings(chardev.LineSettings{DataBits: 9}); err == nil {
		t.Error("9 data bits accepted")
	}
}

func TestDemoSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec DemoSpec
		key  string
	}{
		{DemoSpec{Hostname: "a_b"}, "hostname"},
		{DemoSpec{Hostname: "bad host"}, "hostname"},
		{DemoSpec{Hostname: "-x"}, "hostname"},
		{DemoSpec{Hostname: "ok", Heartbeat: -1}, "heartbeat"},
	} {
		err := tc.spec.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "demo: "+tc.key+":") {
			t.Errorf("%+v: %v, want an error naming %s", tc.spec, err, tc.key)
		}
	}
	if err := NewDemoSpec().Validate(); err != nil {
		t.Error(err)
	}
	// The zero spec works: host "demo", no heartbeat.
	d, err := OpenDemo(context.Background(), &DemoSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.lineDelay = time.Millisecond
	(&demoTerm{t: t, d: d}).until("demo login: ")
}

// demoRecovers feeds arbitrary input to a logged-in demo shell and checks
// the console always recovers: after ^C and a login name (taken if the
// input logged out, a harmless unknown command otherwise), ^C and an echo
// command are answered normally at a shell prompt, and the input line
// never exceeds its limit.
func demoRecovers(t interface{ Fatalf(string, ...any) }, input []byte) {
	d := &Demo{hostname: "h", state: demoShell, user: "u", atLineStart: true,
		wake: make(chan struct{}, 1), closed: make(chan struct{}), start: time.Now()}
	for _, b := range input {
		d.input(b)
		if len(d.line) > demoMaxLine {
			t.Fatalf("line grew to %d bytes", len(d.line))
		}
	}
	d.out = d.out[:0]
	for _, b := range []byte("\x03u\r\x03echo marker\r") {
		d.input(b)
	}
	prompt := d.user + "@h:~$ "
	if d.user == "root" {
		prompt = "root@h:~# "
	}
	if out := string(d.out); d.state != demoShell || !strings.HasSuffix(out, "echo marker\r\nmarker\r\n"+prompt) {
		t.Fatalf("after input %q the console did not recover: %q", input, out)
	}
}

func TestDemoInputRecovers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		input := rapid.SliceOf(rapid.OneOf(
			rapid.Byte(),
			rapid.SampledFrom([]byte("\r\n\x7f\b\x03\x04\x15\x1b[AOexit ")),
		)).Draw(t, "input")
		demoRecovers(t, input)
	})
}

func FuzzDemoInput(f *testing.F) {
	f.Add([]byte("echo hi\r"))
	f.Add([]byte("\x1b[1;5A\x1bOP"))
	f.Add([]byte("exit\r\x04"))
	f.Fuzz(func(t *testing.T, input []byte) { demoRecovers(t, input) })
}
