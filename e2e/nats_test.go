package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"chartee/e2e/internal/harness"
)

// natsServer runs Debian's nats-server with JetStream on a free loopback
// port and returns its URL once it accepts clients.
func natsServer(t *testing.T) string {
	t.Helper()
	bin := harness.RequireProgram(t, "/usr/sbin/nats-server", "nats-server")
	addr := harness.FreeAddr(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p := harness.Start(t, "nats-server", bin,
		"-a", "127.0.0.1", "-p", port, "-js", "-sd", t.TempDir())
	url := "nats://" + addr
	waitForState(t, "nats-server to accept clients", func() (bool, string) {
		if p.Exited() {
			t.Fatalf("nats-server exited: %s", p.Output())
		}
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err != nil {
			return false, err.Error()
		}
		nc.Close()
		return true, ""
	})
	return url
}

// TestNATSConsole is issue 7's end-to-end scenario against Debian's
// nats-server: chartee publishes a console into a JetStream stream, a
// read-only `chartee console` in a pty replays and watches it, an
// interactive one types into it, both see the same output, the read-only
// one cannot type, ^E . leaves and the terminal is restored; the stream
// holds the console's output in order.
func TestNATSConsole(t *testing.T) {
	harness.Begin(t)
	url := natsServer(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeoutLong)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CONSOLES", Subjects: []string{"chartee.>"}})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
tees:
  - name: app
    frontend:
      type: exec
      command: ["/bin/sh", "-c", "echo APPLIANCE-READY; while read l; do echo \"got: $l\"; done"]
      pty: true
    backends:
      - name: fleet
        type: nats
        servers: [%q]
        subject: chartee.{appliance}.app
        appliance: e2e-box
        jetstream: {stream: CONSOLES}
        input: true
        on_overflow: block
`, c.Socket, url))
	c.Start(t)
	waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "app").Frontend.Up })
	const subject = "chartee.e2e-box.app"
	waitFor(t, "the first output in the stream", func() bool {
		_, err := st.GetLastMsgForSubject(ctx, subject+".out")
		return err == nil
	})

	bin := harness.Binary(t)
	watch := harness.StartTerminal(t, "console-ro", bin, "console", "--nats", url, "--read-only", subject)
	watch.Screen.WaitFor(t, "read-only", 0, timeoutLong)
	// The output from before it attached is replayed from the stream.
	watch.Screen.WaitFor(t, "APPLIANCE-READY", 0, timeoutLong)
	if watch.Echoes(t) {
		t.Fatal("the console did not put its terminal in raw mode")
	}

	op := harness.StartTerminal(t, "console-rw", bin, "console", "--nats", url, subject)
	op.Screen.WaitFor(t, "APPLIANCE-READY", 0, timeoutLong)
	op.Screen.WaitFor(t, ". leaves", 0, timeoutLong)
	op.Type(t, "hello fleet\r")
	for _, term := range []*harness.Terminal{op, watch} {
		term.Screen.WaitFor(t, "got: hello fleet", 0, timeoutLong)
	}

	// The watcher types; nothing reaches the appliance.
	watch.Type(t, "reboot\r")
	watch.Screen.WaitFor(t, "typing is not sent", 0, timeoutLong)
	op.Type(t, "second\r")
	for _, term := range []*harness.Terminal{op, watch} {
		term.Screen.WaitFor(t, "got: second", 0, timeoutLong)
	}
	if bytes.Contains(op.Screen.Bytes(), []byte("reboot")) {
		t.Fatalf("a read-only console typed into the appliance:\n%q", op.Screen.Bytes())
	}

	// ^E . leaves, with exit status 0 and the terminal as it was.
	for _, term := range []*harness.Terminal{watch, op} {
		term.Type(t, "\x05.")
		if err := term.Proc.Wait(timeoutLong); err != nil {
			t.Fatalf("%s after ^E .: %v\n%q", term.Proc.Name, err, term.Screen.Bytes())
		}
		if !term.Echoes(t) {
			t.Errorf("%s left its terminal in raw mode", term.Proc.Name)
		}
	}

	// The stream holds the console's output in order, with the headers.
	var stored []byte
	var session string
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject+".out"))
		if err != nil {
			break
		}
		if got := m.Header.Get("Chartee-Offset"); got != fmt.Sprint(len(stored)) {
			t.Fatalf("message %d: Chartee-Offset %q, want %d", m.Sequence, got, len(stored))
		}
		if m.Header.Get("Chartee-Appliance") != "e2e-box" {
			t.Fatalf("message %d: Chartee-Appliance %q", m.Sequence, m.Header.Get("Chartee-Appliance"))
		}
		if s := m.Header.Get("Chartee-Session"); session == "" {
			session = s
		} else if s != session {
			t.Fatalf("message %d: session %q after %q", m.Sequence, s, session)
		}
		stored = append(stored, m.Data...)
		seq = m.Sequence + 1
	}
	want := []string{"APPLIANCE-READY", "got: hello fleet", "got: second"}
	at := 0
	for _, w := range want {
		i := strings.Index(string(stored[at:]), w)
		if i < 0 {
			t.Fatalf("the stream lacks %q in order:\n%q", w, stored)
		}
		at += i + len(w)
	}
	waitForState(t, "the leg's count to match the stream", func() (bool, string) {
		out := c.Tee(t, "app").Backend(t, "fleet").BytesOut
		return out == uint64(len(stored)), fmt.Sprintf("the leg wrote %d bytes, the stream holds %d", out, len(stored))
	})
}
