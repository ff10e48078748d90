package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"chartee/e2e/internal/harness"
)

// TestNoticesOnRealTelnet: with stock telnet clients, in exclusive mode
// the second typist is told once (per episode) on its own screen who holds
// the write lock and which key takes it, and every telnet client sees a
// one-line notice when the frontend is swapped; a raw client's stream
// carries nothing but the console's bytes.
func TestNoticesOnRealTelnet(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
tees:
  - name: con
    input: exclusive
    exclusive_idle: 1h
    frontend: {type: demo, hostname: box, heartbeat: 0s}
    backends:
      - {name: tel, type: tcp-listen, listen: "127.0.0.1:0", protocol: telnet}
      - {name: raw, type: tcp-listen, listen: "127.0.0.1:0"}
`, c.Socket))
	c.Start(t)
	addr := c.Addr(t, "con", "tel")
	alice, aliceAt := harness.Telnet(t, "alice", addr)
	bob, bobAt := harness.Telnet(t, "bob", addr)
	raw := harness.Start(t, "raw nc", harness.RequireProgram(t, "socat", "socat"), "-u", "TCP:"+c.Addr(t, "con", "raw"), "STDOUT")
	alice.Screen.WaitFor(t, "box login: ", aliceAt, timeoutLong)
	bob.Screen.WaitFor(t, "box login: ", bobAt, timeoutLong)

	alice.Type(t, "alice\r")
	alice.Screen.WaitFor(t, "alice@box:~$ ", aliceAt, timeoutLong)
	// Three keystrokes, each discarded on its own (three refusals in
	// one episode) before the next is typed.
	for i, k := range []string{"x", "y", "z"} {
		bob.Type(t, k)
		waitForState(t, fmt.Sprintf("bob's keystroke %d discarded", i+1), func() (bool, string) {
			b := c.Tee(t, "con").Backend(t, "tel")
			return b.Discarded >= uint64(i+1), fmt.Sprintf("%d bytes discarded", b.Discarded)
		})
	}
	notice := regexp.MustCompile(`\r\n\[chartee\] con: input discarded: the write lock is held by tel#1 \(127\.0\.0\.1:\d+\); \^E l takes it once they are 1h0m0s idle, \^E s shows who has it\r\n`)
	bob.Screen.WaitUntil(t, "the refusal notice", timeoutLong, func(b []byte) bool { return notice.Match(b[bobAt:]) })
	// A refusal queues its notice before it is counted, and a leg's
	// writer delivers queued notices before its next output: once output
	// the holder causes after the third refusal is on bob's screen, every
	// notice those refusals queued is there before it.
	alice.Type(t, "echo refusals-counted\r")
	bob.Screen.WaitFor(t, "\r\nrefusals-counted\r\n", bobAt, timeoutLong)
	if n := len(notice.FindAll(bob.Screen.Bytes()[bobAt:], -1)); n != 1 {
		t.Errorf("bob was told %d times in one episode, want once:\n%q", n, bob.Screen.Bytes()[bobAt:])
	}
	if strings.Contains(string(alice.Screen.Bytes()), "input discarded") {
		t.Error("the holder was told its own typing is discarded")
	}

	if out, err := c.Ctl(t, "swap-frontend", "con", "demo,hostname=spare,heartbeat=0s"); err != nil {
		t.Fatalf("swap-frontend: %v\n%s", err, out)
	}
	for _, who := range []*harness.Terminal{alice, bob} {
		who.Screen.WaitFor(t, "\r\n[chartee] con: now on demo spare (frontend swap)\r\n", 0, timeoutLong)
	}
	waitFor(t, "the raw client to get the new frontend's boot log", func() bool {
		return strings.Contains(raw.Output(), "spare login: ")
	})
	if strings.Contains(raw.Output(), "[chartee]") {
		t.Errorf("a raw client got a notice in its stream:\n%q", raw.Output())
	}
}
