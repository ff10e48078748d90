package backends

// Tests against real client programs: pyserial's rfc2217:// handler and the
// Debian telnet client, each talking to a tcp-listen backend of a real tee
// (package tee) whose frontend is a real pseudo-terminal. The far side of
// that pty plays the serial device: the test reads there what the client
// typed and writes there what the device prints.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
	"chartee/chardev"
	"chartee/tee"
)

// rcTimeout bounds every wait on a real program.
const rcTimeout = 20 * time.Second

// rcSkipEnv is the variable that switches tests needing real programs off
// (loudly); CI never sets it.
const rcSkipEnv = "CHARTEE_E2E"

// rcProgram returns the path of a program a test needs. A missing program
// fails the test naming the Debian package to install, unless
// CHARTEE_E2E=skip, which skips it loudly.
func rcProgram(t *testing.T, program, debianPackage string) string {
	t.Helper()
	rcSkipIfOff(t, program, debianPackage)
	return rcEssential(t, program, debianPackage)
}

// rcSkipIfOff skips the test, loudly, when CHARTEE_E2E=skip.
func rcSkipIfOff(t *testing.T, program, debianPackage string) {
	t.Helper()
	if strings.EqualFold(os.Getenv(rcSkipEnv), "skip") {
		t.Skipf("SKIPPED (%s=skip): this test of a real %s (Debian %s) did NOT run", rcSkipEnv, program, debianPackage)
	}
}

// rcEssential returns the path of a program from an essential package
// (coreutils), which every Debian system has: it is never skipped.
func rcEssential(t *testing.T, program, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s not found (%v): install the Debian package %s, or set %s=skip to skip this test",
			program, err, debianPackage, rcSkipEnv)
	}
	return path
}

// rcPyserial returns Debian's python3 after checking it has pyserial. It
// is /usr/bin/python3 on purpose: a python3 earlier on PATH (pyenv) may
// not have the Debian package's modules.
func rcPyserial(t *testing.T) string {
	t.Helper()
	rcSkipIfOff(t, "pyserial", "python3-serial")
	py := rcEssential(t, "/usr/bin/python3", "python3")
	out, err := exec.Command(py, "-c", "import serial.rfc2217; print(serial.VERSION)").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import pyserial (%v: %s): install the Debian package python3-serial, or set %s=skip",
			py, err, bytes.TrimSpace(out), rcSkipEnv)
	}
	return py
}

// rcFront is the frontend of these tests: a real pty (the pty backend)
// that also records the breaks the tee sends it. A pty has no break
// condition a program on its other side could see, so the record is how
// a test observes that a client's break reached the device.
type rcFront struct {
	*Pty
	mu     sync.Mutex
	breaks []time.Duration
}

var _ chardev.Breaker = (*rcFront)(nil)

func (f *rcFront) Break(d time.Duration) error {
	f.mu.Lock()
	f.breaks = append(f.breaks, d)
	f.mu.Unlock()
	return nil
}

func (f *rcFront) breakLog() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.breaks...)
}

// rcOpenFront makes the frontend pty and opens its slave as the device
// end, the side a serial device would be on.
func rcOpenFront(t *testing.T) (*rcFront, *os.File) {
	t.Helper()
	p, err := OpenPty(context.Background(), &PtySpec{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &rcFront{Pty: p}, ptyTestClient(t, p.Name())
}

// rcOnce is an opener that yields dev once: these tests' frontends are
// made by the test, and a second open would be a bug in the test.
func rcOnce(dev chardev.Chardev) chardev.Opener {
	var used atomic.Bool
	return chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
		if used.Swap(true) {
			return nil, errors.New("test frontend opened twice")
		}
		return dev, nil
	})
}

// rcNewTee starts a tee and waits for its frontend to be up.
func rcNewTee(t *testing.T, opts tee.Options) *tee.Tee {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "rc"
	}
	tt, err := tee.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	rcWait(t, "the frontend to come up", func() bool { return tt.Stats().Frontend.Up })
	return tt
}

// rcWait polls cond until it holds, failing the test after rcTimeout.
func rcWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(rcTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", rcTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rcListen attaches a tcp-listen backend on a free loopback port and
// returns its address.
func rcListen(t *testing.T, tt *tee.Tee, name string, opts tee.LegOptions, edit func(*TCPListenSpec)) string {
	t.Helper()
	src := tcpTestListen(t, edit)
	if err := tt.AttachSource(name, opts, src); err != nil {
		src.Close()
		t.Fatal(err)
	}
	return src.Addr()
}

// rcReadFull reads exactly n bytes from a pollable file (a pty end).
func rcReadFull(t *testing.T, f *os.File, n int) []byte {
	t.Helper()
	if err := f.SetReadDeadline(time.Now().Add(rcTimeout)); err != nil {
		t.Fatal(err)
	}
	defer f.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	if got, err := io.ReadFull(f, buf); err != nil {
		t.Fatalf("read %d of %d bytes (%q): %v", got, n, buf[:got], err)
	}
	return buf
}

// rcAllBytes is every byte value once, in order.
func rcAllBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// rcStty runs `stty -F path -a` and returns its output.
func rcStty(t *testing.T, path string) string {
	t.Helper()
	stty := rcEssential(t, "stty", "coreutils")
	out, err := exec.Command(stty, "-F", path, "-a").CombinedOutput()
	if err != nil {
		t.Fatalf("stty -F %s: %v: %s", path, err, out)
	}
	return string(out)
}

// rcSttyHas reports whether stty -a output lists setting (e.g. "cstopb",
// "-cstopb") as a word.
func rcSttyHas(out, setting string) bool {
	for _, w := range strings.FieldsFunc(out, func(r rune) bool { return r == ' ' || r == ';' || r == '\n' }) {
		if w == setting {
			return true
		}
	}
	return false
}

// rcTermios reads the pty's termios with TCGETS2 (numeric speeds).
func rcTermios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	var term *unix.Termios
	err := tty.Control(f, func(fd int) error {
		var err error
		term, err = tty.Get(fd)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// rcScript is the pyserial client. It talks to the test over stdin and
// stdout, one line at a time:
//
//	argv: URL MODE BAUD   (MODE control or readonly; BAUD 0 for
//	                       pyserial's default)
//	out:  "open BAUD"                  after opening at BAUD 8N1
//	out:  "set NAME ok|refused: why"   for each of baudrate, parity,
//	                                   stopbits, bytesize, in that order
//	out:  "break ok|refused: why"
//	out:  "settings B P S D"           what pyserial believes
//	in:   "go"                         the device end is ready
//	      writes all 256 byte values, reads 256 bytes
//	out:  "read HEX"
const rcScript = `
import sys, serial

url, mode, baud = sys.argv[1], sys.argv[2], int(sys.argv[3])

def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()

# baud 0: pyserial's default (9600), as most programs open a port.
kw = {"baudrate": baud} if baud else {}
port = serial.serial_for_url(url, timeout=15, **kw)
say("open", port.baudrate)
for name, value in (("baudrate", 57600), ("parity", serial.PARITY_EVEN),
                    ("stopbits", serial.STOPBITS_TWO), ("bytesize", serial.SEVENBITS)):
    try:
        setattr(port, name, value)
        say("set", name, "ok")
    except Exception as e:
        say("set", name, "refused:", repr(e).replace("\n", " "))
try:
    port.send_break(0.3)
    say("break", "ok")
except Exception as e:
    say("break", "refused:", repr(e).replace("\n", " "))
say("settings", port.baudrate, port.parity, port.stopbits, port.bytesize)
if sys.stdin.readline().strip() != "go":
    sys.exit("expected go")
port.write(bytes(range(256)))
port.flush()
got = port.read(256)
say("read", got.hex())
port.close()
`

// rcPyClient runs rcScript and lets the test read its lines.
type rcPyClient struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{}
	err   error
	errb  bytes.Buffer
}

func rcStartPyserial(t *testing.T, url, mode string, baud int) *rcPyClient {
	t.Helper()
	py := rcPyserial(t)
	script := filepath.Join(t.TempDir(), "rfc2217_client.py")
	if err := os.WriteFile(script, []byte(rcScript), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &rcPyClient{lines: make(chan string, 64), done: make(chan struct{})}
	c.cmd = exec.Command(py, script, url, mode, fmt.Sprint(baud))
	c.cmd.Stderr = &c.errb
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.in.Close()
		select {
		case <-c.done:
		case <-time.After(rcTimeout):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	})
	return c
}

// line returns the script's next line, which must start with prefix.
func (c *rcPyClient) line(t *testing.T, prefix string) string {
	t.Helper()
	select {
	case l := <-c.lines:
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("pyserial said %q, want a line starting %q (stderr: %s)", l, prefix, c.errb.String())
		}
		return l
	case <-c.done:
		select {
		case l := <-c.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
			t.Fatalf("pyserial said %q, want %q; exited: %v; stderr: %s", l, prefix, c.err, c.errb.String())
		default:
		}
		t.Fatalf("pyserial exited (%v) before %q; stderr: %s", c.err, prefix, c.errb.String())
	case <-time.After(rcTimeout):
		t.Fatalf("pyserial said nothing for %v, waiting for %q", rcTimeout, prefix)
	}
	return ""
}

func (c *rcPyClient) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("pyserial: %v; stderr: %s", c.err, c.errb.String())
		}
		// A Python exception in pyserial's reader thread (an answer it
		// could not handle) does not fail the script, only prints.
		if strings.Contains(c.errb.String(), "Traceback") {
			t.Fatalf("pyserial printed an exception: %s", c.errb.String())
		}
	case <-time.After(rcTimeout):
		t.Fatal("pyserial did not exit")
	}
}

// TestRealPyserialRFC2217 drives a tee through pyserial's rfc2217://
// handler. With control, the client's line settings reach the pty's
// termios and its break reaches the frontend; without, they are refused
// and the device keeps its settings. Either way all 256 byte values pass
// both ways unchanged (IAC doubled on the wire and undone).
func TestRealPyserialRFC2217(t *testing.T) {
	for _, control := range []bool{true, false} {
		t.Run(fmt.Sprintf("control=%v", control), func(t *testing.T) {
			rcPyserial(t)
			front, device := rcOpenFront(t)
			tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
			addr := rcListen(t, tt, "rfc", tee.LegOptions{Input: true, Control: control}, func(s *TCPListenSpec) {
				s.Protocol = ProtocolRFC2217
				s.Control = control
			})
			before := rcTermios(t, device)
			initial := tt.LineSettings()
			if initial.Baud == 0 {
				t.Fatalf("tee line state %v: the pty frontend's baud rate was not seeded", initial)
			}
			url := "rfc2217://" + addr
			mode, openBaud := "control", 0
			if !control {
				// pyserial insists on the answer matching its request,
				// so without control it can only open at the settings in
				// force (8N1 and the pty's speed).
				url += "?timeout=0.5"
				mode, openBaud = "readonly", initial.Baud
			} else if initial.Baud == 9600 {
				t.Fatalf("the pty frontend starts at 9600: the open at pyserial's default would change nothing")
			}
			py := rcStartPyserial(t, url, mode, openBaud)
			py.line(t, "open")
			names := []string{"baudrate", "parity", "stopbits", "bytesize"}
			for _, name := range names {
				l := py.line(t, "set "+name)
				if control && l != "set "+name+" ok" {
					t.Errorf("with control: %q", l)
				}
				if !control && !strings.HasPrefix(l, "set "+name+" refused:") {
					t.Errorf("without control: %q, want it refused", l)
				}
			}
			brk := py.line(t, "break")
			settings := py.line(t, "settings")
			t.Logf("pyserial: %s; %s", brk, settings)

			term := rcTermios(t, device)
			stty := rcStty(t, front.Name())
			if control {
				if brk != "break ok" {
					t.Errorf("break with control: %q", brk)
				}
				want := chardev.LineSettings{Baud: 57600, DataBits: 7, Parity: chardev.ParityEven, StopBits: chardev.StopBits2}
				if got := tt.LineSettings(); got != want {
					t.Errorf("tee line state %v, want %v", got, want)
				}
				// A Linux pty keeps the speed and stop bits but forces
				// CS8 and no parity (drivers/tty/pty.c), so those two can
				// only be checked in the tee's line state above.
				if term.Cflag&unix.CBAUD != unix.B57600 || term.Ospeed != 57600 || term.Cflag&unix.CSTOPB == 0 {
					t.Errorf("pty termios cflag %#o ospeed %d: want B57600 and CSTOPB", term.Cflag, term.Ospeed)
				}
				if !strings.Contains(stty, "speed 57600 baud") || !rcSttyHas(stty, "cstopb") {
					t.Errorf("stty -F %s does not show 57600 and cstopb:\n%s", front.Name(), stty)
				}
				rcWait(t, "the break to reach the frontend", func() bool { return len(front.breakLog()) == 1 })
				if d := front.breakLog()[0]; d < 100*time.Millisecond || d > 2*time.Second {
					t.Errorf("break of %v for a 0.3s BREAK-ON..BREAK-OFF", d)
				}
			} else {
				if !strings.HasPrefix(brk, "break refused:") {
					t.Errorf("break without control: %q, want it refused", brk)
				}
				if got := tt.LineSettings(); got != initial {
					t.Errorf("tee line state %v changed from %v by a client without control", got, initial)
				}
				if term.Cflag != before.Cflag || term.Ospeed != before.Ospeed {
					t.Errorf("pty termios changed without control: cflag %#o->%#o ospeed %d->%d",
						before.Cflag, term.Cflag, before.Ospeed, term.Ospeed)
				}
				if rcSttyHas(stty, "cstopb") || strings.Contains(stty, "speed 57600 baud") {
					t.Errorf("stty shows the refused settings:\n%s", stty)
				}
				if n := len(front.breakLog()); n != 0 {
					t.Errorf("%d breaks reached the frontend from a client without control", n)
				}
			}

			// Data, 8-bit clean both ways. 0xff is IAC on the wire.
			if _, err := io.WriteString(py.in, "go\n"); err != nil {
				t.Fatal(err)
			}
			if got := rcReadFull(t, device, 256); !bytes.Equal(got, rcAllBytes()) {
				t.Errorf("device read %x, want every byte value in order", got)
			}
			if _, err := device.Write(rcAllBytes()); err != nil {
				t.Fatal(err)
			}
			got := strings.TrimPrefix(py.line(t, "read"), "read ")
			if want := hex.EncodeToString(rcAllBytes()); got != want {
				t.Errorf("pyserial read %s, want %s", got, want)
			}
			py.wait(t)
		})
	}
}

// rcTelnet is the Debian telnet client running on a pty of its own, as a
// person's terminal would run it.
type rcTelnet struct {
	cmd    *exec.Cmd
	term   *os.File // pollable pty master: the person's keyboard and screen
	done   chan struct{}
	screen bytes.Buffer // everything telnet printed, guarded by mu
	mu     sync.Mutex
	notify chan struct{}
}

// rcStartTelnet runs `telnet -8 -E host port`: an 8-bit data path, and no
// telnet escape character, so ^] typed by the test reaches chartee.
func rcStartTelnet(t *testing.T, addr string) *rcTelnet {
	t.Helper()
	bin := rcProgram(t, "telnet", "telnet")
	host, port, _ := strings.Cut(addr, ":")
	c := &rcTelnet{done: make(chan struct{}), notify: make(chan struct{}, 1)}
	c.cmd = exec.Command(bin, "-8", "-E", host, port)
	c.cmd.Env = append(os.Environ(), "TERM=dumb")
	master, err := pty.StartWithSize(c.cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := tty.Pollable(master)
	master.Close()
	if err != nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		t.Fatal(err)
	}
	c.term = pm
	go func() {
		defer close(c.done)
		buf := make([]byte, 4096)
		for {
			n, err := pm.Read(buf)
			if n > 0 {
				c.mu.Lock()
				c.screen.Write(buf[:n])
				c.mu.Unlock()
				select {
				case c.notify <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		_ = pm.Close()
		<-c.done
	})
	return c
}

// waitScreen waits until what telnet printed contains want, and returns
// it all.
func (c *rcTelnet) waitScreen(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(rcTimeout)
	for {
		c.mu.Lock()
		s := c.screen.String()
		c.mu.Unlock()
		if strings.Contains(s, want) {
			return s
		}
		select {
		case <-c.notify:
		case <-c.done:
			c.mu.Lock()
			s := c.screen.String()
			c.mu.Unlock()
			if strings.Contains(s, want) {
				return s
			}
			t.Fatalf("telnet ended before printing %q; screen: %q", want, s)
		case <-deadline:
			t.Fatalf("telnet did not print %q within %v; screen: %q", want, rcTimeout, s)
		}
	}
}

// screenSince returns what telnet printed after offset.
func (c *rcTelnet) screenLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.screen.Len()
}

func (c *rcTelnet) screenFrom(off int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.screen.String()[off:]
}

// typeKeys types s on telnet's keyboard.
func (c *rcTelnet) typeKeys(t *testing.T, s string) {
	t.Helper()
	if _, err := c.term.Write([]byte(s)); err != nil {
		t.Fatalf("typing %q: %v", s, err)
	}
}

// rcTelnetSession is a tee with a pty frontend, a telnet tcp-listen
// backend, raw captures of output and of input, and telnet connected.
type rcTelnetSession struct {
	tee    *tee.Tee
	front  *rcFront
	device *os.File
	capOut string // raw capture of what the frontend printed
	capIn  string // raw capture of what was typed into it
	telnet *rcTelnet
}

func rcNewTelnetSession(t *testing.T, topts tee.Options, edit func(*TCPListenSpec)) *rcTelnetSession {
	t.Helper()
	rcProgram(t, "telnet", "telnet")
	s := &rcTelnetSession{}
	s.front, s.device = rcOpenFront(t)
	topts.Frontend = rcOnce(s.front)
	s.tee = rcNewTee(t, topts)
	dir := t.TempDir()
	s.capOut, s.capIn = filepath.Join(dir, "out.log"), filepath.Join(dir, "in.log")
	// Two captures rather than one of both directions: the engine records
	// input after writing it to the frontend, so in a capture of both an
	// echo can come before the key that caused it.
	for name, direction := range map[string]FileDirection{s.capOut: FileOut, s.capIn: FileIn} {
		capSpec := fileSpecFor(name, func(f *FileSpec) { f.Direction = direction; f.Append = false })
		if err := s.tee.Attach(context.Background(), "cap-"+string(direction), tee.LegOptions{}, chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
			return NewFile(capSpec)
		})); err != nil {
			t.Fatal(err)
		}
	}
	addr := rcListen(t, s.tee, "telnet", tee.LegOptions{Input: true}, func(spec *TCPListenSpec) {
		spec.Protocol = ProtocolTelnet
		spec.Banner = "chartee test console\r\n"
		// 8-bit clean data path: every byte value, ^E (the default
		// escape key) included, must pass untouched.
		spec.Escape = "none"
		if edit != nil {
			edit(spec)
		}
	})
	s.telnet = rcStartTelnet(t, addr)
	s.telnet.waitScreen(t, "chartee test console")
	rcWait(t, "telnet to become a leg", func() bool { return rcLegCount(s.tee, "telnet") == 1 })
	return s
}

// rcLegCount counts the live legs of backend name.
func rcLegCount(tt *tee.Tee, name string) int {
	n := 0
	for _, l := range tt.Stats().Legs {
		if l.Backend == name {
			n++
		}
	}
	return n
}

// rcHasTelnetProtocol reports whether b holds a telnet command: IAC
// followed by a command byte (WILL, DO, SB and friends), as opposed to
// data, where it would have been doubled and undoubled.
func rcHasTelnetProtocol(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == 0xff && b[i+1] >= 0xf0 && b[i+1] != 0xff {
			return true
		}
	}
	return false
}

// TestRealTelnetClient: the Debian telnet client agrees to character mode
// (a single key reaches the frontend with no Enter), the data path is
// 8-bit clean both ways, and none of the option negotiation shows in what
// the frontend receives or in the capture.
func TestRealTelnetClient(t *testing.T) {
	s := rcNewTelnetSession(t, tee.Options{}, nil)

	// Character mode: one key, no Enter, arrives alone.
	s.telnet.typeKeys(t, "x")
	if got := rcReadFull(t, s.device, 1); string(got) != "x" {
		t.Fatalf("frontend got %q, want the single key x", got)
	}
	// The server echoes (WILL ECHO): telnet must not echo locally, so the
	// key shows on the screen only if the device echoes it.
	if _, err := s.device.Write([]byte("<x>")); err != nil {
		t.Fatal(err)
	}
	if sc := s.telnet.waitScreen(t, "<x>"); strings.Contains(sc, "x<x>") {
		t.Errorf("telnet echoed the key locally: %q", sc)
	}

	// Device to telnet: every byte value. telnet prints what it receives
	// to its terminal, which is in raw mode in character mode; the pty
	// master sees the bytes as they left telnet.
	mark := s.telnet.screenLen()
	payload := append([]byte("[["), rcAllBytes()...)
	payload = append(payload, "]]"...)
	if _, err := s.device.Write(payload); err != nil {
		t.Fatal(err)
	}
	s.telnet.waitScreen(t, "]]")
	if got := s.telnet.screenFrom(mark); got != string(payload) {
		t.Errorf("telnet printed %x\nwant         %x", got, payload)
	}

	// Telnet to device: every byte value typed on the keyboard. The
	// terminal line discipline telnet set up passes them through; CR is
	// sent as CR NUL outside binary mode, so it must be undone by the
	// server.
	typed := rcAllBytes()
	s.telnet.typeKeys(t, string(typed))
	got := rcReadFull(t, s.device, len(typed))
	if !bytes.Equal(got, typed) {
		t.Errorf("frontend got %x\nwant         %x", got, typed)
	}
	if rcHasTelnetProtocol(got) {
		t.Errorf("telnet protocol in the frontend's input: %x", got)
	}

	// The captures hold exactly the data, no negotiation.
	for path, want := range map[string][]byte{
		s.capOut: append([]byte("<x>"), payload...),
		s.capIn:  append([]byte("x"), typed...),
	} {
		rcWait(t, "the capture "+filepath.Base(path)+" to hold everything", func() bool {
			b, _ := os.ReadFile(path)
			return len(b) >= len(want)
		})
		capBytes, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(capBytes, want) {
			t.Errorf("capture %s %x\nwant %x", filepath.Base(path), capBytes, want)
		}
		if rcHasTelnetProtocol(capBytes) {
			t.Errorf("telnet protocol in the capture %s: %x", filepath.Base(path), capBytes)
		}
	}
}

// TestRealTelnetEscapeCommands: the escape commands over a real telnet
// connection: ^] then b sends a break, l takes the write lock, s shows the
// status, ? the help, and ^] twice sends ^] itself.
func TestRealTelnetEscapeCommands(t *testing.T) {
	s := rcNewTelnetSession(t, tee.Options{Input: tee.Exclusive}, func(spec *TCPListenSpec) { spec.Escape = "^]" })

	mark := s.telnet.screenLen()
	s.telnet.typeKeys(t, "\x1d?")
	s.telnet.waitScreen(t, "this help")
	if help := s.telnet.screenFrom(mark); !strings.Contains(help, "[chartee] escape commands (^] then):") {
		t.Errorf("help: %q", help)
	}

	s.telnet.typeKeys(t, "\x1db")
	s.telnet.waitScreen(t, "[chartee] break sent")
	if got := s.front.breakLog(); len(got) != 1 {
		t.Errorf("frontend got %d breaks, want 1", len(got))
	}

	s.telnet.typeKeys(t, "\x1dl")
	s.telnet.waitScreen(t, "[chartee] write lock taken")
	if wl := s.tee.Stats().WriteLock; !strings.HasPrefix(wl, "telnet#") {
		t.Errorf("write lock held by %q, want the telnet leg", wl)
	}

	mark = s.telnet.screenLen()
	s.telnet.typeKeys(t, "\x1ds")
	s.telnet.waitScreen(t, "legs:")
	if st := s.telnet.screenFrom(mark); !strings.Contains(st, "tee rc: frontend") || !strings.Contains(st, "write lock: telnet#") {
		t.Errorf("status: %q", st)
	}

	s.telnet.typeKeys(t, "\x1du")
	s.telnet.waitScreen(t, "[chartee] write lock released")

	// None of that was typed into the device; the key twice is.
	s.telnet.typeKeys(t, "a\x1d\x1dz")
	if got := rcReadFull(t, s.device, 3); string(got) != "a\x1dz" {
		t.Errorf("frontend got %q, want a, ^], z", got)
	}
}
