package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"chartee/backends/capture"
	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
)

// handOver does in one process what `chartee ctl upgrade` does across
// two: d stops at a cut and carries its tees, a new daemon for cfg is
// started on duplicates of the carried files (as exec hands them to a
// new process) and activated (the commit). d stays frozen, as an old
// process that committed does until it exits; at the end of the test it
// is thawed and shut down after the new daemon.
func handOver(t *testing.T, d *Daemon, cfg *config.Config) *Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fz, err := d.Freeze(ctx)
	if err != nil {
		t.Fatalf("freeze: %v", err)
	}
	t.Cleanup(fz.Thaw)
	var files []*os.File
	for _, f := range fz.Files {
		rc, err := f.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var dup int
		rc.Control(func(fd uintptr) { dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, os.NewFile(uintptr(dup), f.Name()))
	}
	fz.CloseFiles()
	in, err := ParseInheritance(fz.State, files)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := New(context.Background(), cfg, Options{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Inherit: in,
	})
	if err != nil {
		t.Fatalf("new daemon: %v", err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		nd.Shutdown(sctx)
	})
	nd.Activate(Upgraded{OldVersion: "old", NewVersion: "new"})
	// The inherited frontends come up asynchronously once activated; a
	// freeze refuses a tee whose frontend is not up yet, so the next
	// handover waits for them.
	waitFor(t, "the inherited frontends up", func() bool {
		for _, tt := range nd.Tees() {
			if !tt.Stats().Frontend.Up {
				return false
			}
		}
		return true
	})
	return nd
}

// peerReader reads everything a tcp-connect backend sends to the feeder
// it dialed.
type peerReader struct {
	mu   sync.Mutex
	got  bytes.Buffer
	err  error
	done chan struct{}
}

func readPeer(t *testing.T, c io.ReadCloser) *peerReader {
	p := &peerReader{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			p.mu.Lock()
			p.got.Write(buf[:n])
			p.err = err
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-p.done })
	return p
}

func (p *peerReader) bytes() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.got.Bytes()), p.err
}

// TestUpgradeCarriesSingleStreams: across three handovers while the
// console streams, a tcp-connect backend keeps its one connection (not
// redialed) and, like a timestamped and an asciicast capture and a
// program reading a pty leg, gets every byte exactly once; the captures
// keep one header and no extra line break; the pty's reader never reads
// a hangup; a ring buffer serves the whole stream at its offsets; a pty
// leg nobody reads (its writes blocked) is carried too; the leg counters
// continue.
func TestUpgradeCarriesSingleStreams(t *testing.T) {
	front, peer := newFeeder(t), newFeeder(t)
	dir := t.TempDir()
	ts, cast, link := filepath.Join(dir, "cap.log"), filepath.Join(dir, "cap.cast"), filepath.Join(dir, "console")
	backends := indent(`- {name: out, type: tcp-connect, address: "` + peer.addr() + `", on_overflow: block}
- {name: ts, type: file, path: "` + ts + `", format: timestamped, on_overflow: block}
- {name: cast, type: file, path: "` + cast + `", format: asciicast, on_overflow: block}
- {name: pty, type: pty, link: "` + link + `", on_overflow: block}
- {name: rb, type: ringbuf, size: 64KiB, on_overflow: block}
- {name: idle, type: pty, link: "` + link + `-idle"}
- {name: raw, type: file, path: "` + filepath.Join(dir, "raw.log") + `", on_overflow: block}`)
	d, _, _ := start(t, parse(t, teeYAML("console", front.addr(), backends)))
	out := readPeer(t, peer.conn(t))
	slave, err := os.OpenFile(link, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	picocom := readPeer(t, slave)
	c := front.conn(t)
	const total = 3000
	stop, wait := streamAsync(c, 0, total)
	defer stop()
	var lastOut uint64
	for i := range 3 {
		waitFor(t, "output to flow", func() bool {
			b, _ := out.bytes()
			return len(b) > (i+1)*300*lineLen
		})
		d = handOver(t, d, parse(t, teeYAML("console", front.addr(), backends)))
		tt, ok := d.Tee("console")
		if !ok {
			t.Fatal("no tee after the handover")
		}
		for _, l := range tt.Stats().Legs {
			if l.Name == "out" {
				if l.BytesOut < lastOut {
					t.Fatalf("handover %d: leg out counted %d bytes, %d before: the counter reset", i, l.BytesOut, lastOut)
				}
				lastOut = l.BytesOut
			}
		}
	}
	n := wait()
	waitFor(t, "every line at the peer", func() bool {
		b, _ := out.bytes()
		return len(b) >= n*lineLen
	})
	b, err := out.bytes()
	if err != nil {
		t.Fatalf("the tcp-connect backend's connection was closed: %v", err)
	}
	checkLines(t, b, 0, n)
	// A raw capture (its writes coalesced by the engine) too.
	waitFor(t, "the raw capture", func() bool { return fileSize(filepath.Join(dir, "raw.log")) >= int64(n*lineLen) })
	checkLines(t, readFile(t, filepath.Join(dir, "raw.log")), 0, n)
	waitFor(t, "every line at the pty's reader", func() bool {
		b, _ := picocom.bytes()
		return len(b) >= n*lineLen
	})
	b, err = picocom.bytes()
	if err != nil {
		t.Fatalf("the pty's reader read a hangup: %v", err)
	}
	checkLines(t, b, 0, n)
	select {
	case extra := <-peer.conns:
		extra.Close()
		t.Fatal("the tcp-connect backend dialed again instead of being carried")
	default:
	}
	waitFor(t, "the captures", func() bool { return fileSize(ts) >= int64(n*lineLen) })
	lines, err := capture.ParseTimestamped(readFile(t, ts), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, l := range lines {
		got = append(got, l.Data...)
	}
	checkLines(t, got, 0, n)
	waitFor(t, "the asciicast capture", func() bool {
		_, events, err := capture.ParseAsciicast(bytes.NewReader(readFile(t, cast)))
		return err == nil && len(capture.Stream(events, capture.CodeOutput)) >= n*lineLen
	})
	if h := bytes.Count(readFile(t, cast), []byte(`"version"`)); h != 1 {
		t.Fatalf("the asciicast capture has %d headers, want 1", h)
	}
	_, events, _ := capture.ParseAsciicast(bytes.NewReader(readFile(t, cast)))
	checkLines(t, capture.Stream(events, capture.CodeOutput), 0, n)
	tt, _ := d.Tee("console")
	if _, ok := tt.Device("idle"); !ok {
		t.Fatal("the pty leg nobody reads did not survive the handovers")
	}
	if _, err := os.Stat(link + "-idle"); err != nil {
		t.Fatalf("its link: %v", err)
	}
	dev, ok := tt.Device("rb")
	if !ok {
		t.Fatal("no ringbuf after the handovers")
	}
	sr := dev.(chardev.ScrollbackReader)
	waitFor(t, "the ring buffer", func() bool { _, next := sr.Bounds(); return next >= uint64(n*lineLen) })
	kept := make([]byte, n*lineLen)
	if k, next, missed := sr.ReadAt(0, kept); k != len(kept) || missed != 0 || next != uint64(n*lineLen) {
		t.Fatalf("ring buffer read %d bytes, next %d, missed %d", k, next, missed)
	}
	checkLines(t, kept, 0, n)
}

// TestUpgradeCarriesPtyFrontend: a console on a pty (a program writing
// to its slave) streams on across three handovers, byte-exact at a
// tcp-connect backend, and a line typed after the last one reaches the
// program.
func TestUpgradeCarriesPtyFrontend(t *testing.T) {
	peer := newFeeder(t)
	link := filepath.Join(t.TempDir(), "guest")
	cfg := `tees:
  - name: console
    drain_timeout: 2s
    frontend: {type: pty, link: "` + link + `"}
    backends:
      - {name: out, type: tcp-connect, address: "` + peer.addr() + `", on_overflow: block}
`
	d, _, _ := start(t, parse(t, cfg))
	pc := peer.conn(t)
	out := readPeer(t, pc)
	var guest *os.File
	waitFor(t, "the frontend's link", func() bool {
		var err error
		guest, err = os.OpenFile(link, os.O_RDWR|unix.O_NOCTTY, 0)
		return err == nil
	})
	defer guest.Close()
	streamAcrossHandovers(t, d, cfg, guest, pc, out)
}

// TestUpgradeCarriesSerialFrontend: a serial port (here a pty's slave,
// the device at the pty's master) streams on across three handovers,
// byte-exact at a tcp-connect backend, its descriptor never closed, and
// a line typed after the last one reaches the device.
func TestUpgradeCarriesSerialFrontend(t *testing.T) {
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A pollable far end, so a read can time out.
	rc, _ := m.SyscallConn()
	var fd int
	rc.Control(func(f uintptr) { fd, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) })
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fd, true)
	device := os.NewFile(uintptr(fd), "device")
	defer device.Close()
	peer := newFeeder(t)
	cfg := `tees:
  - name: console
    drain_timeout: 2s
    frontend: {type: serial, path: "` + s.Name() + `", baud: 9600}
    backends:
      - {name: out, type: tcp-connect, address: "` + peer.addr() + `", on_overflow: block}
`
	d, _, _ := start(t, parse(t, cfg))
	pc := peer.conn(t)
	out := readPeer(t, pc)
	// The port is opened in the background: until then its termios is
	// a fresh pty's (echo on), not the raw mode chartee sets.
	tt, _ := d.Tee("console")
	waitFor(t, "the port to open", func() bool { return tt.Stats().Frontend.Up })
	streamAcrossHandovers(t, d, cfg, device, pc, out)
}

// streamAcrossHandovers streams 3,000 lines from dev (the far end of the
// frontend) through three handovers of d, checks the tcp-connect peer
// got every line exactly once, then that a line the peer types reaches
// dev.
func streamAcrossHandovers(t *testing.T, d *Daemon, cfg string, dev *os.File, pc net.Conn, out *peerReader) {
	t.Helper()
	stop, wait := streamAsync(dev, 0, 3000)
	defer stop()
	for i := range 3 {
		waitFor(t, "output to flow", func() bool {
			b, _ := out.bytes()
			return len(b) > (i+1)*300*lineLen
		})
		d = handOver(t, d, parse(t, cfg))
	}
	n := wait()
	waitFor(t, "every line at the peer", func() bool {
		b, _ := out.bytes()
		return len(b) >= n*lineLen
	})
	b, err := out.bytes()
	if err != nil {
		t.Fatalf("the backend's connection was closed: %v", err)
	}
	checkLines(t, b, 0, n)
	pc.Write([]byte("typed after the handovers\n"))
	dev.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 26)
	if _, err := io.ReadFull(dev, got); err != nil || string(got) != "typed after the handovers\n" {
		t.Fatalf("the far end read %q, %v", got, err)
	}
}

// TestUpgradeChangedDeviceRollsBack: a new process whose config moves a
// capture or a pty's link refuses what was carried for it, naming both,
// and fails to start; the old daemon thaws and goes on, its capture and
// pty exactly as before (nothing written, the link untouched).
func TestUpgradeChangedDeviceRollsBack(t *testing.T) {
	front := newFeeder(t)
	dir := t.TempDir()
	ts, link := filepath.Join(dir, "cap.log"), filepath.Join(dir, "console")
	yaml := func(ts, link string) string {
		return teeYAML("console", front.addr(), indent(`- {name: ts, type: file, path: "`+ts+`", format: timestamped, on_overflow: block}
- {name: pty, type: pty, link: "`+link+`"}`))
	}
	d, _, _ := start(t, parse(t, yaml(ts, link)))
	c := front.conn(t)
	c.Write([]byte("00000000\n"))
	waitFor(t, "the capture", func() bool { return fileSize(ts) > 0 })
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cfg, want string }{
		{yaml(ts+".new", link), "the running capture is " + ts},
		{yaml(ts, link+".new"), `has link "` + link + `", the new config wants "` + link + `.new"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		fz, err := d.Freeze(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		before := readFile(t, ts)
		in, err := ParseInheritance(fz.State, fz.Files)
		if err != nil {
			t.Fatal(err)
		}
		fz.Files = nil // handed to the new daemon, which closes them
		nd, err := New(context.Background(), parse(t, tc.cfg), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Inherit: in})
		if err == nil {
			nd.Shutdown(context.Background())
			t.Fatalf("a new daemon started with %s changed", tc.want)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("error %q, want %q", err, tc.want)
		}
		fz.Thaw() // the rollback
		if got := readFile(t, ts); !bytes.Equal(got, before) {
			t.Fatalf("the failed start wrote to the capture:\n%q\nwas\n%q", got, before)
		}
		if got, err := os.Readlink(link); err != nil || got != target {
			t.Fatalf("after the failed start the link -> %q (%v), want %s", got, err, target)
		}
		for _, p := range []string{ts + ".new", link + ".new"} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the failed start left %s behind: %v", p, err)
			}
		}
	}
	c.Write([]byte("00000001\n"))
	waitFor(t, "the old daemon to go on capturing", func() bool { return bytes.Contains(readFile(t, ts), []byte("00000001")) })
	lines, err := capture.ParseTimestamped(readFile(t, ts), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, l := range lines {
		got = append(got, l.Data...)
	}
	checkLines(t, got, 0, 2)
}
