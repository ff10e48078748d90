package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"pgregory.net/rapid"

	"chartee/backends"
	"chartee/chardev"
)

const consoleTestTimeout = 20 * time.Second

func consoleServer(t *testing.T, jetStream bool) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: jetStream, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(consoleTestTimeout) {
		t.Fatal("nats server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func consoleClient(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// consoleSession is a runConsole in a goroutine with pipes for a terminal.
type consoleSession struct {
	stdin    *io.PipeWriter
	out, msg syncBuffer
	done     chan error
}

func startConsole(t *testing.T, url, subject string, edit func(*consoleConfig)) *consoleSession {
	t.Helper()
	spec := backends.NewNATSSpec()
	spec.Servers = []string{url}
	spec.Subject = subject
	cfg := consoleConfig{spec: spec, subject: subject, replay: consoleDefaultReplay, escape: 0x1d}
	if edit != nil {
		edit(&cfg)
	}
	r, w := io.Pipe()
	s := &consoleSession{stdin: w, done: make(chan error, 1)}
	go func() { s.done <- runConsole(context.Background(), cfg, r, &s.out, &s.msg) }()
	t.Cleanup(func() {
		_ = w.Close()
		select {
		case <-s.done:
		case <-time.After(consoleTestTimeout):
			t.Error("the console did not end")
		}
	})
	waitFor(t, consoleTestTimeout, "the console banner", func() bool { return strings.Contains(s.msg.String(), "leaves") })
	return s
}

func (s *consoleSession) typeKeys(t *testing.T, keys string) {
	t.Helper()
	if _, err := io.WriteString(s.stdin, keys); err != nil {
		t.Fatal(err)
	}
}

func (s *consoleSession) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(consoleTestTimeout):
		t.Fatal("the console did not leave")
		return nil
	}
}

// consoleInbox collects what the console types on SUBJECT.in.
func consoleInbox(t *testing.T, nc *nats.Conn, subj string) *syncBuffer {
	t.Helper()
	var b syncBuffer
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) { _, _ = b.Write(m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &b
}

func TestConsoleEscape(t *testing.T) {
	const k = "\x1d"
	cases := []struct {
		name   string
		chunks []string
		send   string
		action int
	}{
		{"plain", []string{"ls -l\r"}, "ls -l\r", consoleNone},
		{"leave", []string{"abc" + k + ".def"}, "abc", consoleQuit},
		{"leave across chunks", []string{"abc" + k, ".def"}, "abc", consoleQuit},
		{"key twice", []string{k + k + "x"}, k + "x", consoleNone},
		{"key then other", []string{"a" + k + "b"}, "a" + k + "b", consoleNone},
		{"help", []string{k + "?z"}, "z", consoleHelp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := consoleEscape{}
			e.m.Key = 0x1d
			var sent []byte
			action := consoleNone
			for _, ch := range c.chunks {
				s, a := e.feed([]byte(ch))
				sent = append(sent, s...)
				if a != consoleNone {
					action = a
				}
				if a == consoleQuit {
					break
				}
			}
			if string(sent) != c.send || action != c.action {
				t.Fatalf("sent %q action %d, want %q action %d", sent, action, c.send, c.action)
			}
		})
	}
}

// TestConsoleEscapeProperty: however typing is cut into reads, bytes
// without the escape key pass unchanged, and the key doubled is the key.
func TestConsoleEscapeProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		data := rapid.SliceOf(rapid.Byte()).Draw(t, "data")
		var typed []byte
		for _, b := range data {
			typed = append(typed, b)
			if b == 0x1d {
				typed = append(typed, b)
			}
		}
		e := consoleEscape{}
		e.m.Key = 0x1d
		var sent []byte
		for len(typed) > 0 {
			n := rapid.IntRange(1, len(typed)).Draw(t, "cut")
			s, a := e.feed(typed[:n])
			if a != consoleNone {
				t.Fatalf("action %d from %q", a, typed[:n])
			}
			sent = append(sent, s...)
			typed = typed[n:]
		}
		if !bytes.Equal(sent, data) {
			t.Fatalf("sent %q, want %q", sent, data)
		}
	})
}

func TestConsoleUsage(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"console", "--nats", "nats://127.0.0.1:4222"}, nil, "want one SUBJECT"},
		{[]string{"console", "--nats", "nats://127.0.0.1:4222", "a.*"}, nil, "wildcards"},
		{[]string{"console", "chartee.a.b"}, nil, "--nats: required"},
		{[]string{"console", "chartee.a.b", "--replay", "lots"}, map[string]string{"CHARTEE_NATS": "127.0.0.1:4222"}, "--replay"},
		{[]string{"console", "--nats", "127.0.0.1:4222", "--escape", "x", "chartee.a.b"}, nil, "--escape"},
		{[]string{"console", "--nats", "http://127.0.0.1:4222", "chartee.a.b"}, nil, "scheme"},
	}
	for _, c := range cases {
		r := runCmd(context.Background(), c.env, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.stderr, exitUsage, c.want)
		}
	}
	r := runCmd(context.Background(), nil, "console", "-h")
	if r.code != exitOK || !strings.Contains(r.stdout, "read-only") || !strings.Contains(r.stdout, "^E by default") {
		t.Errorf("console -h: exit %d, %q", r.code, r.stderr)
	}
}

// TestConsoleLive: without JetStream the console shows live output, types
// on SUBJECT.in, and leaves on ^] '.'; two operators see the same output.
func TestConsoleLive(t *testing.T) {
	srv := consoleServer(t, false)
	nc := consoleClient(t, srv.ClientURL())
	typed := consoleInbox(t, nc, "chartee.app.tty.in")
	a := startConsole(t, srv.ClientURL(), "chartee.app.tty", nil)
	b := startConsole(t, srv.ClientURL(), "chartee.app.tty", nil)
	mustContain(t, "banner", a.msg.String(), "live output")
	for i := range 5 {
		if err := nc.Publish("chartee.app.tty.out", fmt.Appendf(nil, "boot %d\r\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	want := "boot 0\r\nboot 1\r\nboot 2\r\nboot 3\r\nboot 4\r\n"
	for _, s := range []*consoleSession{a, b} {
		waitFor(t, consoleTestTimeout, "the output", func() bool { return s.out.String() == want })
	}
	a.typeKeys(t, "root\r")
	waitFor(t, consoleTestTimeout, "the typing on .in", func() bool { return typed.String() == "root\r" })
	a.typeKeys(t, "\x1d\x1d\x1d?")
	waitFor(t, consoleTestTimeout, "the help", func() bool { return strings.Contains(a.msg.String(), "leave") })
	a.typeKeys(t, "\x1d.")
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	// The console flushed before leaving; the inbox is another client.
	waitFor(t, consoleTestTimeout, "the escape key sent as itself", func() bool { return typed.String() == "root\r\x1d" })
	// b is still attached.
	if err := nc.Publish("chartee.app.tty.out", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, consoleTestTimeout, "b's output", func() bool { return strings.HasSuffix(b.out.String(), "still here") })
}

// TestConsoleReadOnly: nothing typed is sent, the operator is told once,
// and the escape still leaves.
func TestConsoleReadOnly(t *testing.T) {
	srv := consoleServer(t, false)
	nc := consoleClient(t, srv.ClientURL())
	typed := consoleInbox(t, nc, "chartee.app.tty.in")
	c := startConsole(t, srv.ClientURL(), "chartee.app.tty", func(c *consoleConfig) { c.readOnly = true })
	mustContain(t, "banner", c.msg.String(), "read-only")
	c.typeKeys(t, "reboot\r")
	waitFor(t, consoleTestTimeout, "the read-only notice", func() bool {
		return strings.Contains(c.msg.String(), "typing is not sent")
	})
	c.typeKeys(t, "again\r\x1d.")
	if err := c.wait(t); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := typed.String(); got != "" {
		t.Fatalf("a read-only console typed %q", got)
	}
	if n := strings.Count(c.msg.String(), "typing is not sent"); n != 1 {
		t.Fatalf("told %d times", n)
	}
}

// consoleJetStream starts a JetStream server with a stream holding
// chartee.> and a nats backend device publishing into it.
func consoleJetStream(t *testing.T) (*server.Server, jetstream.Stream) {
	t.Helper()
	srv := consoleServer(t, true)
	js, err := jetstream.New(consoleClient(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), consoleTestTimeout)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CONSOLES", Subjects: []string{"chartee.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return srv, st
}

func consoleDevice(t *testing.T, url, subject string) chardev.Chardev {
	t.Helper()
	f, err := chardev.Lookup("nats")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*backends.NATSSpec)
	spec.Servers = []string{url}
	spec.Subject = subject
	spec.JetStream = &backends.NATSJetStream{Stream: "CONSOLES"}
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	return dev
}

func consoleWrite(t *testing.T, dev io.Writer, p []byte) {
	t.Helper()
	if _, err := dev.Write(p); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleReplayStart: the binary search finds the last n bytes of the
// latest session, mid-message and at a message boundary, among other
// subjects' messages and an older session.
func TestConsoleReplayStart(t *testing.T) {
	srv, st := consoleJetStream(t)
	old := consoleDevice(t, srv.ClientURL(), "chartee.app.tty")
	other := consoleDevice(t, srv.ClientURL(), "chartee.app.other")
	for i := range 30 {
		consoleWrite(t, old, bytes.Repeat([]byte{'o'}, 10+i))
		consoleWrite(t, other, []byte("noise"))
	}
	_ = old.Close()
	dev := consoleDevice(t, srv.ClientURL(), "chartee.app.tty")
	var latest []byte
	for i := range 40 {
		p := fmt.Appendf(nil, "[%02d:%s]", i, strings.Repeat("x", i%7))
		latest = append(latest, p...)
		consoleWrite(t, dev, p)
		consoleWrite(t, other, []byte("noise"))
	}
	ctx := context.Background()
	for _, n := range []int{1, 5, 37, 100, len(latest) - 1, len(latest), len(latest) + 500} {
		seq, skip, err := consoleReplayStart(ctx, st, "chartee.app.tty.out", n)
		if err != nil {
			t.Fatal(err)
		}
		// Read from seq to the end, as the console would.
		var got []byte
		for s := seq; ; {
			m, err := st.GetMsg(ctx, s, jetstream.WithGetMsgSubject("chartee.app.tty.out"))
			if err != nil {
				break
			}
			got = append(got, m.Data...)
			s = m.Sequence + 1
		}
		got = got[skip:]
		want := latest[max(0, len(latest)-n):]
		if !bytes.Equal(got, want) {
			t.Errorf("replay %d: got %q, want %q", n, got, want)
		}
	}
	seq, skip, err := consoleReplayStart(ctx, st, "chartee.app.nothing.out", 100)
	info, _ := st.Info(ctx)
	if err != nil || skip != 0 || seq != info.State.LastSeq+1 {
		t.Fatalf("an empty subject: %d %d %v", seq, skip, err)
	}
}

// TestConsoleReplayThenLive: the console finds the stream by subject,
// replays the recent output, then shows new output with no gap or
// duplicate; a second operator sees the same.
func TestConsoleReplayThenLive(t *testing.T) {
	srv, _ := consoleJetStream(t)
	dev := consoleDevice(t, srv.ClientURL(), "chartee.app.tty")
	var all []byte
	for i := range 100 {
		p := fmt.Appendf(nil, "line %03d\r\n", i)
		all = append(all, p...)
		consoleWrite(t, dev, p)
	}
	var sessions []*consoleSession
	for range 2 {
		sessions = append(sessions, startConsole(t, srv.ClientURL(), "chartee.app.tty", func(c *consoleConfig) { c.replay = 105 }))
	}
	mustContain(t, "banner", sessions[0].msg.String(), "stream CONSOLES", "replaying up to 105 bytes")
	for i := 100; i < 110; i++ {
		p := fmt.Appendf(nil, "line %03d\r\n", i)
		all = append(all, p...)
		consoleWrite(t, dev, p)
	}
	want := string(all[100*10-105:])
	for _, s := range sessions {
		waitFor(t, consoleTestTimeout, "replay and live output", func() bool { return len(s.out.String()) >= len(want) })
		if got := s.out.String(); got != want {
			t.Fatalf("console shows %q, want %q", got, want)
		}
	}
}

// TestFleetExampleConfig: the documented fleet example passes `chartee
// check`, nats backends and all.
func TestFleetExampleConfig(t *testing.T) {
	r := runCmd(context.Background(), nil, "check", "-c", "../../../../configs/fleet-nats.yaml")
	if r.code != exitOK {
		t.Fatalf("check configs/fleet-nats.yaml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustContain(t, "check", r.stdout+r.stderr, "2 tees, 4 backends")
}

// TestConsoleNoReader: an interactive console on a subject nobody reads
// warns that typing goes nowhere; with a reader it does not.
func TestConsoleNoReader(t *testing.T) {
	srv := consoleServer(t, false)
	c := startConsole(t, srv.ClientURL(), "chartee.typo.tty", nil)
	waitFor(t, consoleTestTimeout, "the warning", func() bool { return strings.Contains(c.msg.String(), "nobody reads chartee.typo.tty.in") })

	nc := consoleClient(t, srv.ClientURL())
	consoleInbox(t, nc, "chartee.app.tty.in")
	ok := startConsole(t, srv.ClientURL(), "chartee.app.tty", nil)
	ok.typeKeys(t, "\x1d.")
	if err := ok.wait(t); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ok.msg.String(), "nobody reads") {
		t.Fatalf("warned with a reader: %q", ok.msg.String())
	}
}

// FuzzConsoleEscape: the escape filter never panics, never sends more than
// it was given plus one key per escape, and input without the escape key
// passes unchanged.
func FuzzConsoleEscape(f *testing.F) {
	f.Add([]byte("ls -l\r"), 3)
	f.Add([]byte("a\x1d\x1db\x1d?c\x1d.d"), 1)
	f.Add([]byte("\x1d"), 1)
	f.Fuzz(func(t *testing.T, typed []byte, cut int) {
		e := consoleEscape{}
		e.m.Key = 0x1d
		if cut <= 0 {
			cut = 1
		}
		var sent []byte
		for p := typed; len(p) > 0; {
			n := min(cut, len(p))
			s, a := e.feed(p[:n])
			sent = append(sent, s...)
			if a == consoleQuit {
				break
			}
			p = p[n:]
		}
		if len(sent) > len(typed)+bytes.Count(typed, []byte{0x1d}) {
			t.Fatalf("sent %d bytes for %d typed", len(sent), len(typed))
		}
		if !bytes.Contains(typed, []byte{0x1d}) && !bytes.Equal(sent, typed) {
			t.Fatalf("sent %q for %q", sent, typed)
		}
	})
}
