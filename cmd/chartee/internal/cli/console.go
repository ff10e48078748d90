package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"chartee/backends"
	"chartee/backends/escape"
	"chartee/chardev"
)

const consoleUsage = `Usage: chartee console --nats URL[,URL...] [flags] SUBJECT

An interactive console on any appliance of a NATS cluster: it shows what a
chartee nats backend publishes on SUBJECT.out and types what you type on
SUBJECT.in (the backend needs input: true). SUBJECT is the backend's
subject, like chartee.rack1-con3.ttyS4. When a JetStream stream holds
SUBJECT.out (--stream, or found by subject), the recent output is replayed
first. Several operators may attach to the same console at once.

The terminal is put in raw mode: every key, Ctrl-C included, goes to the
console. ESC-KEY then '.' leaves, ESC-KEY then '?' helps, ESC-KEY twice
sends ESC-KEY itself (ESC-KEY is --escape, ^E by default, as on
telnet legs; it clashes with neither telnet's ^] nor ssh's ~).

The servers are --nats, else $CHARTEE_NATS.
`

// consoleDefaultReplay is how much recent output is replayed on attach.
const consoleDefaultReplay = 4 << 10

// consoleConfig is what a console session needs.
type consoleConfig struct {
	spec     *backends.NATSSpec // servers, creds, tls (subject unused)
	subject  string             // base subject: SUBJECT.out, SUBJECT.in
	stream   string             // "": look it up by subject; "-": none
	replay   int                // bytes of recent output to replay
	readOnly bool
	escape   byte
	// makeRaw, when set, puts the terminal in raw mode once connected (so
	// Ctrl-C still interrupts a slow connection) and returns how to
	// restore it, or nil when stdin is not a terminal.
	makeRaw func() (func(), error)
	// raw is whether the terminal is in raw mode: messages then end lines
	// with CR LF.
	raw bool
}

func (a *app) console(args []string) int {
	fs := newFlagSet("chartee console", a.stderr, consoleUsage)
	servers := fs.String("nats", "", "NATS server URLs, comma separated (default $CHARTEE_NATS)")
	stream := fs.String("stream", "", "the JetStream stream holding SUBJECT.out, for replay (default: found by subject; - for none)")
	replay := fs.String("replay", strconv.Itoa(consoleDefaultReplay), "bytes of recent output to replay on attach (4KiB, 1MiB; 0: none)")
	readOnly := fs.Bool("read-only", false, "watch only: nothing typed is sent")
	escKey := fs.String("escape", "^E", "escape `key`: it then '.' leaves")
	creds := fs.String("creds", "", "NATS credentials file")
	tlsCA := fs.String("tls-ca", "", "PEM bundle the servers' certificates must chain to")
	tlsCert := fs.String("tls-cert", "", "client certificate (PEM)")
	tlsKey := fs.String("tls-key", "", "client key (PEM)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(a.stderr, "chartee console: "+format+"\n", args...)
		return exitUsage
	}
	if len(pos) != 1 {
		return fail("want one SUBJECT, got %d arguments (chartee console -h)", len(pos))
	}
	cfg := consoleConfig{subject: pos[0], stream: *stream, readOnly: *readOnly}
	if err := backends.NATSCheckSubject(cfg.subject); err != nil {
		return fail("subject %q: %v", cfg.subject, err)
	}
	size, err := chardev.ParseSize(*replay)
	if err != nil || size < 0 {
		return fail("--replay %q: want a size like 4096 or 64KiB", *replay)
	}
	cfg.replay = int(size)
	if cfg.escape, err = escape.ParseKey(*escKey); err != nil {
		return fail("--escape: %v", err)
	}
	urls := *servers
	if urls == "" {
		urls = a.getenv("CHARTEE_NATS")
	}
	if urls == "" {
		return fail("--nats: required (or $CHARTEE_NATS), like nats://127.0.0.1:4222")
	}
	spec := backends.NewNATSSpec()
	spec.Subject = cfg.subject
	spec.Creds = *creds
	for u := range strings.SplitSeq(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			spec.Servers = append(spec.Servers, u)
		}
	}
	if *tlsCA != "" || *tlsCert != "" || *tlsKey != "" {
		spec.TLS = &backends.NetClientTLS{CA: *tlsCA, Cert: *tlsCert, Key: *tlsKey}
	}
	if err := spec.Validate(); err != nil {
		return fail("%v", err)
	}
	cfg.spec = spec

	stdin := os.Stdin
	cfg.makeRaw = func() (func(), error) { return consoleRaw(int(stdin.Fd())) }
	// In raw mode Ctrl-C is a byte for the console; these end the
	// session (and restore the terminal) when they come from elsewhere.
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	a.notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer a.stopNotify(sigs)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := runConsole(ctx, cfg, stdin, a.stdout, a.stderr); err != nil {
		fmt.Fprintf(a.stderr, "chartee console: %v\n", err)
		return exitError
	}
	return exitOK
}

func (c consoleConfig) eol() string {
	if c.raw {
		return "\r\n"
	}
	return "\n"
}

// consoleRaw puts the terminal on fd in raw mode and returns the function
// that restores it; for anything but a terminal it does nothing and
// returns nil.
func consoleRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, nil // not a terminal: a pipe or a file
	}
	raw := *old
	// cfmakeraw(3).
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("raw terminal mode: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// consoleWriter serializes what the output and input sides write to the
// terminal.
type consoleWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *consoleWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// runConsole runs one session until the escape sequence, the end of stdin
// or ctx. Output goes to stdout, messages to stderr.
func runConsole(ctx context.Context, cfg consoleConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	// Cancelled on return, so the stdin reader never waits to hand over
	// what it read; it ends with stdin (at exit for a terminal).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nc, err := backends.NATSConnect(cfg.spec, "chartee console "+cfg.subject)
	if err != nil {
		return err
	}
	defer nc.Close()
	if cfg.makeRaw != nil {
		restore, err := cfg.makeRaw()
		if err != nil {
			return err
		}
		if restore != nil {
			cfg.raw = true
			// Runs before the deferred nc.Close: the terminal is back
			// in order first, and the last message ends the line.
			defer restore()
		}
	}
	out := &consoleWriter{w: stdout}
	msg := &consoleWriter{w: stderr}
	eol := cfg.eol()

	stop, how, err := consoleFollow(ctx, nc, cfg, out, msg)
	if err != nil {
		return err
	}
	defer stop()
	mode := "type to the console"
	if cfg.readOnly {
		mode = "read-only"
	}
	fmt.Fprintf(msg, "chartee console: %s on %s, %s; %s; %s . leaves%s",
		cfg.subject, nc.ConnectedUrlRedacted(), how, mode, escape.KeyName(cfg.escape), eol)
	if !cfg.readOnly && !consoleHasReader(nc, cfg.subject+backends.NATSInSuffix) {
		fmt.Fprintf(msg, "chartee console: warning: nobody reads %s: typing goes nowhere (is the subject right? is the appliance up?)%s",
			cfg.subject+backends.NATSInSuffix, eol)
	}

	in, readDone := consoleReadInput(ctx, stdin)
	return consoleType(ctx, nc, cfg, msg, in, readDone)
}

// consoleReadInput reads stdin in a goroutine of its own, handing over
// each read until ctx ends; its error (io.EOF at the end) comes on the
// second channel.
func consoleReadInput(ctx context.Context, stdin io.Reader) (<-chan []byte, <-chan error) {
	in := make(chan []byte)
	readDone := make(chan error, 1)
	go func() {
		for {
			buf := make([]byte, 1024)
			n, err := stdin.Read(buf)
			if n > 0 {
				select {
				case in <- buf[:n]:
				case <-ctx.Done():
					readDone <- ctx.Err()
					return
				}
			}
			if err != nil {
				readDone <- err
				return
			}
		}
	}()
	return in, readDone
}

// consoleType sends what is typed to the appliance, acting on the escape
// sequence, until the user leaves, stdin ends or ctx does.
func consoleType(ctx context.Context, nc *nats.Conn, cfg consoleConfig, msg io.Writer, in <-chan []byte, readDone <-chan error) error {
	eol := cfg.eol()
	esc := consoleEscape{m: escape.Machine{Key: cfg.escape}}
	warned := false
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(msg, "%schartee console: detached%s", eol, eol)
			return nil
		case err := <-readDone:
			_ = nc.FlushTimeout(2 * time.Second)
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the terminal: %w", err)
		case p := <-in:
			send, act := esc.feed(p)
			if len(send) > 0 {
				if cfg.readOnly {
					if !warned {
						warned = true
						fmt.Fprintf(msg, "%schartee console: read-only, typing is not sent (%s . leaves)%s", eol, escape.KeyName(cfg.escape), eol)
					}
				} else if err := nc.Publish(cfg.subject+backends.NATSInSuffix, send); err != nil {
					return fmt.Errorf("sending input: %w", err)
				}
			}
			switch act {
			case consoleQuit:
				_ = nc.FlushTimeout(2 * time.Second)
				fmt.Fprintf(msg, "%schartee console: detached%s", eol, eol)
				return nil
			case consoleHelp:
				k := escape.KeyName(cfg.escape)
				fmt.Fprintf(msg, "%s%s then:%s  .  leave%s  ?  this help%s  %s  send %s itself%s",
					eol, k, eol, eol, eol, k, k, eol)
			}
		}
	}
}

// consoleHasReader reports whether anything subscribes to subj: an empty
// request gets "no responders" at once when nothing does. A nats backend
// reads and ignores the empty message; it never answers, so a reader
// shows as a timeout.
func consoleHasReader(nc *nats.Conn, subj string) bool {
	_, err := nc.Request(subj, nil, 300*time.Millisecond)
	return !errors.Is(err, nats.ErrNoResponders)
}

// Escape actions.
const (
	consoleNone = iota
	consoleQuit
	consoleHelp
)

// consoleEscape finds the escape commands in what is typed: key '.'
// leaves, key '?' helps, key twice is the key itself, and key followed by
// anything else is sent as typed.
type consoleEscape struct {
	m escape.Machine
}

// feed returns what to send of p and the action typed at its end. Bytes
// after a '.' are not sent.
func (e *consoleEscape) feed(p []byte) (send []byte, action int) {
	rest := p
	for len(rest) > 0 {
		var cmd escape.Command
		send, rest, cmd = e.m.Step(send, rest)
		switch {
		case cmd.Op == escape.OpNone:
		case cmd.Key == '.':
			return send, consoleQuit
		case cmd.Op == escape.OpHelp:
			action = consoleHelp
		default:
			send = append(send, e.m.Key, cmd.Key)
		}
	}
	return send, action
}

// consoleFollow starts copying the console's output to out: from a
// JetStream stream (the recent output first) when one holds SUBJECT.out,
// otherwise live from core NATS. It returns how to stop, and what it
// does, for the banner.
func consoleFollow(ctx context.Context, nc *nats.Conn, cfg consoleConfig, out, msg io.Writer) (func(), string, error) {
	subj := cfg.subject + backends.NATSOutSuffix
	eol := cfg.eol()
	sessions := &consoleSessions{msg: msg, eol: eol}
	var stream jetstream.Stream
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, "", err
	}
	if cfg.stream != "-" {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		name := cfg.stream
		if name == "" {
			// No stream holds the subject, or no JetStream at all: live
			// output only.
			name, _ = js.StreamNameBySubject(lctx, subj)
		}
		if name != "" {
			if stream, err = js.Stream(lctx, name); err != nil {
				return nil, "", fmt.Errorf("stream %s: %w", name, err)
			}
		}
	}
	if stream == nil {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			sessions.see(m.Header)
			_, _ = out.Write(m.Data)
		})
		if err != nil {
			return nil, "", fmt.Errorf("subscribe %s: %w", subj, err)
		}
		if err := nc.Flush(); err != nil {
			_ = sub.Unsubscribe()
			return nil, "", err
		}
		return func() { _ = sub.Unsubscribe() }, "live output (no stream holds " + subj + ")", nil
	}

	start, skip, err := consoleReplayStart(ctx, stream, subj, cfg.replay)
	if err != nil {
		return nil, "", fmt.Errorf("stream %s: finding the last %d bytes: %w", stream.CachedInfo().Config.Name, cfg.replay, err)
	}
	cons, err := js.OrderedConsumer(ctx, stream.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return nil, "", fmt.Errorf("stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		data := m.Data()
		if skip > 0 {
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream == start {
				data = data[min(skip, len(data)):]
			}
			skip = 0
		}
		sessions.see(m.Headers())
		_, _ = out.Write(data)
	})
	if err != nil {
		return nil, "", fmt.Errorf("stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	stop := func() {
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}
	how := fmt.Sprintf("stream %s", stream.CachedInfo().Config.Name)
	if cfg.replay > 0 {
		how += fmt.Sprintf(" (replaying up to %d bytes)", cfg.replay)
	}
	return stop, how, nil
}

// consoleSessions tells the operator when the publishing device changed
// (the appliance restarted, the leg was swapped): the output before and
// after may not join.
type consoleSessions struct {
	msg     io.Writer
	eol     string
	session string
}

func (s *consoleSessions) see(h nats.Header) {
	id := h.Get(backends.NATSHeaderSession)
	if id == "" || id == s.session {
		return
	}
	if s.session != "" {
		fmt.Fprintf(s.msg, "%schartee console: new output session from %s%s", s.eol, h.Get(backends.NATSHeaderAppliance), s.eol)
	}
	s.session = id
}

// consoleStored is one stored message of SUBJECT.out, as far as replay
// needs it.
type consoleStored struct {
	seq     uint64
	session string
	off     uint64
	n       int
}

func consoleStoredMsg(m *jetstream.RawStreamMsg) consoleStored {
	off, _ := strconv.ParseUint(m.Header.Get(backends.NATSHeaderOffset), 10, 64)
	return consoleStored{seq: m.Sequence, session: m.Header.Get(backends.NATSHeaderSession), off: off, n: len(m.Data)}
}

// consoleReplayStart finds where to start reading subj so that the last n
// bytes of the latest session come first: the stream sequence of the
// message holding the first of them, and how many bytes of that message
// to skip. Messages on one subject carry increasing offsets within a
// session, so a binary search over sequences finds it in a few requests
// however large the stream is. With nothing stored, or n = 0, it returns
// the sequence after the last, and only new output is shown.
func consoleReplayStart(ctx context.Context, stream jetstream.Stream, subj string, n int) (uint64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	end := info.State.LastSeq + 1
	if n <= 0 {
		return end, 0, nil
	}
	lastRaw, err := stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return end, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	last := consoleStoredMsg(lastRaw)
	var target uint64
	if total := last.off + uint64(last.n); total > uint64(n) {
		target = total - uint64(n)
	}
	// holds reports whether m is at or past the first byte wanted.
	holds := func(m consoleStored) bool {
		return m.session == last.session && m.off+uint64(m.n) > target
	}
	get := func(seq uint64) (consoleStored, error) {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			return consoleStored{}, err
		}
		return consoleStoredMsg(m), nil
	}
	// Invariant: the answer is the first message at or after lo that
	// holds, and the first message at or after hi (found) holds.
	lo, hi := info.State.FirstSeq, last.seq
	found := last
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := get(mid)
		if err != nil {
			return 0, 0, err
		}
		if holds(m) {
			found, hi = m, mid
		} else {
			lo = m.seq + 1
		}
	}
	skip := 0
	if target > found.off {
		skip = int(target - found.off)
	}
	return found.seq, skip, nil
}
