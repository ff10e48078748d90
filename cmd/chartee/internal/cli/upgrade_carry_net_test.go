package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"chartee/backends/telnet"
	"chartee/chardev"
)

// portServer is an RFC 2217 port server standing in for ser2net: the
// console behind it prints a numbered line every millisecond, keeps what
// is typed, and the server records every byte chartee sends it.
type portServer struct {
	ln    net.Listener
	ctl   *portControl
	mu    sync.Mutex
	raw   bytes.Buffer // what chartee sent, protocol included
	typed bytes.Buffer
	stop  chan struct{}
	wg    sync.WaitGroup
}

// portControl is the serial line behind the port server.
type portControl struct {
	mu    sync.Mutex
	line  chardev.LineSettings
	bauds []int
}

func (c *portControl) SetLineSettings(l chardev.LineSettings) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.Baud == 0 {
		l.Baud = c.line.Baud
	}
	if l.DataBits == 0 {
		l.DataBits = c.line.DataBits
	}
	if l.Baud != c.line.Baud {
		c.bauds = append(c.bauds, l.Baud)
	}
	c.line = l
	return nil
}

func (c *portControl) LineSettings() chardev.LineSettings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.line
}

func (c *portControl) baudChanges() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.bauds...)
}

func (c *portControl) SetModemLines(dtr, rts *bool) error { return nil }
func (c *portControl) ModemStatus() (chardev.ModemStatus, error) {
	return chardev.ModemStatus{CTS: true, DSR: true, DCD: true}, nil
}
func (c *portControl) Break(time.Duration) error { return nil }
func (c *portControl) PurgeInput()               {}
func (c *portControl) TakeWriteLock() error      { return nil }
func (c *portControl) ReleaseWriteLock()         {}
func (c *portControl) Status() string            { return "port" }

type recordingConn struct {
	net.Conn
	p *portServer
}

func (c recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.p.mu.Lock()
	c.p.raw.Write(b[:n])
	c.p.mu.Unlock()
	return n, err
}

func newPortServer(t *testing.T) *portServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &portServer{ln: ln, ctl: &portControl{line: chardev.LineSettings{Baud: 9600, DataBits: 8}}, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		srv := telnet.NewServer(recordingConn{c, p}, telnet.Config{RFC2217: true, Control: true})
		srv.SetControl(p.ctl)
		defer srv.Close()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := srv.Read(buf)
				p.mu.Lock()
				p.typed.Write(buf[:n])
				p.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := fmt.Fprintf(srv, "%08d\n", i); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(p.stop); ln.Close(); p.wg.Wait() })
	return p
}

func (p *portServer) received() (raw []byte, typed string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.raw.Bytes()), p.typed.String()
}

// tapProxy relays one client to chartee and records what chartee sends
// it, protocol bytes included, so the test can see every negotiation.
type tapProxy struct {
	ln   net.Listener
	mu   sync.Mutex
	down bytes.Buffer
	wg   sync.WaitGroup
}

func newTapProxy(t *testing.T, target string) *tapProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tapProxy{ln: ln}
	var conns []net.Conn
	var cmu sync.Mutex
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		cmu.Lock()
		conns = append(conns, c, s)
		cmu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			io.Copy(s, c)
		}()
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			p.mu.Lock()
			p.down.Write(buf[:n])
			p.mu.Unlock()
			if _, werr := c.Write(buf[:n]); err != nil || werr != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *tapProxy) addr() string { return p.ln.Addr().String() }

func (p *tapProxy) received() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.down.Bytes())
}

// decodeFrom decodes a telnet stream and returns its data and the byte
// offsets at which protocol events ended.
func decodeFrom(stream []byte) (data string, events []int) {
	var d telnet.Decoder
	var out []byte
	for in := stream; len(in) > 0; {
		var ev *telnet.Event
		out, in, ev = d.Decode(out, in)
		if ev != nil {
			events = append(events, len(stream)-len(in))
		}
	}
	return string(out), events
}

// termClient is a program on a pseudo-terminal: the Debian telnet client.
type termClient struct {
	cmd    *exec.Cmd
	pt     *os.File
	mu     sync.Mutex
	screen bytes.Buffer
	done   chan struct{}
}

func startTermClient(t *testing.T, name string, args ...string) *termClient {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed (.ci/run installs it): %v", name, err)
	}
	c := &termClient{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), "TERM=dumb")
	c.pt, err = pty.StartWithSize(c.cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		buf := make([]byte, 32<<10)
		for {
			n, err := c.pt.Read(buf)
			c.mu.Lock()
			c.screen.Write(buf[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		<-c.done
		c.pt.Close()
	})
	return c
}

func (c *termClient) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.screen.String()
}

func (c *termClient) typeKeys(t *testing.T, s string) {
	t.Helper()
	if _, err := c.pt.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// pyClient is pyserial's rfc2217:// client, reading the port into its
// stdout and taking commands on stdin: "w TEXT" writes TEXT and a
// newline, "b N" sets the baud rate; each command is acknowledged on
// stderr.
type pyClient struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   syncBuffer
	errb  syncBuffer
	done  chan struct{}
}

const pyRFC2217Client = `
import serial, sys, threading
p = serial.serial_for_url(sys.argv[1], baudrate=19200, timeout=0.05)
sys.stderr.write("open\n"); sys.stderr.flush()
def reader():
    while True:
        d = p.read(65536)
        if d:
            sys.stdout.buffer.write(d); sys.stdout.buffer.flush()
threading.Thread(target=reader, daemon=True).start()
for line in sys.stdin:
    cmd, arg = line[0], line[2:].rstrip("\n")
    if cmd == "w":
        p.write((arg + "\n").encode())
        sys.stderr.write("wrote\n")
    elif cmd == "b":
        p.baudrate = int(arg)
        sys.stderr.write("baud %d\n" % p.baudrate)
    sys.stderr.flush()
`

func startPyClient(t *testing.T, addr string) *pyClient {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import serial").Run(); err != nil {
		t.Fatalf("pyserial is needed (/usr/bin/python3 with python3-serial, installed by .ci/run): %v", err)
	}
	c := &pyClient{cmd: exec.Command("/usr/bin/python3", "-c", pyRFC2217Client, "rfc2217://"+addr), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.errb
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.stdin.Close(); c.cmd.Process.Kill(); <-c.done })
	return c
}

func (c *pyClient) command(t *testing.T, cmd, ack string) {
	t.Helper()
	before := strings.Count(c.errb.String(), ack)
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "pyserial to say "+ack, func() bool {
		return strings.Count(c.errb.String(), ack) > before || strings.Contains(c.errb.String(), "Traceback")
	})
	if strings.Contains(c.errb.String(), "Traceback") {
		t.Fatalf("pyserial failed:\n%s", c.errb.String())
	}
}

var (
	otherBuildOnce sync.Once
	otherBuildPath string
	otherBuildErr  error
)

// otherBuild is a second chartee build, version v3-net-test, built once.
func otherBuild(t *testing.T) string {
	t.Helper()
	bin := chartee(t)
	otherBuildOnce.Do(func() {
		otherBuildPath = filepath.Join(filepath.Dir(bin), "chartee-v3-net")
		out, err := exec.Command("go", "build", "-ldflags", "-X chartee/cmd/chartee/internal/cli.Version=v3-net-test",
			"-o", otherBuildPath, "chartee/cmd/chartee").CombinedOutput()
		if err != nil {
			otherBuildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if otherBuildErr != nil {
		t.Fatal(otherBuildErr)
	}
	return otherBuildPath
}

// counterLines checks that s, a console's stream as a client got it
// (notices on lines of their own left out), is consecutive numbered
// lines, and returns how many.
func counterLines(t *testing.T, who, s string) int {
	t.Helper()
	var kept []string
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	for i, l := range lines {
		if i == len(lines)-1 {
			kept = append(kept, l) // may still be arriving
			break
		}
		if len(kept) == 0 && !counterLine.MatchString(l) {
			continue // what a client printed before, a line it joined in
		}
		if !strings.HasPrefix(l, "[chartee]") && l != "" {
			kept = append(kept, l)
		}
	}
	if len(kept) < 2 {
		t.Fatalf("%s: no numbered lines in %q", who, s)
	}
	return checkCounter(t, who, strings.Join(kept, "\n"))
}

var counterLine = regexp.MustCompile(`^[0-9]{8}$`)

// TestUpgradeCarriesTelnetClients: the Debian telnet client and
// pyserial's RFC 2217 client, attached to a console whose frontend is
// chartee's own RFC 2217 connection to a port server, stay attached
// through upgrades alternating two builds: their streams are exact, no
// option is negotiated again either way, the port server is not
// reconnected and gets no line setting again, an escape key typed before
// an upgrade takes its command after it, and typing and line changes
// still work.
func TestUpgradeCarriesTelnetClients(t *testing.T) {
	bin, other := chartee(t), otherBuild(t)
	port := newPortServer(t)
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
tees:
  - name: console
    frontend: {type: tcp-connect, address: %q, protocol: rfc2217}
    backends:
      - {name: tel, type: tcp-listen, listen: "127.0.0.1:0", protocol: telnet, on_overflow: block}
      - {name: com, type: tcp-listen, listen: "127.0.0.1:0", protocol: rfc2217, control: true, on_overflow: block}
`, sock, port.ln.Addr().String()))
	p := startProcess(t, bin, nil, "run", "-c", cfg)
	addrs := map[string]string{}
	re := regexp.MustCompile(`backend (\w+)\s+listening on (\S+)`)
	waitFor(t, 15*time.Second, "the listeners", func() bool {
		for _, m := range re.FindAllStringSubmatch(p.stderr.String(), -1) {
			addrs[m[1]] = m[2]
		}
		return addrs["tel"] != "" && addrs["com"] != ""
	})

	telTap, comTap := newTapProxy(t, addrs["tel"]), newTapProxy(t, addrs["com"])
	host, tport, _ := strings.Cut(telTap.addr(), ":")
	tel := startTermClient(t, "telnet", "-8", "-E", host, tport)
	py := startPyClient(t, comTap.addr())
	waitFor(t, 20*time.Second, "pyserial to open the port", func() bool { return strings.Contains(py.errb.String(), "open") })
	waitFor(t, 20*time.Second, "both clients to get the console", func() bool {
		return strings.Count(tel.text(), "\n") > 200 && strings.Count(py.out.String(), "\n") > 200
	})
	if got := port.ctl.baudChanges(); len(got) != 1 || got[0] != 19200 {
		t.Fatalf("the port server's baud rate changes %v, want pyserial's 19200 carried to it", got)
	}
	// From here on, nothing but data is expected either way.
	telMark, comMark := len(telTap.received()), len(comTap.received())
	portMark, _ := port.received()

	for i := range 4 {
		b, want := other, "v3-net-test"
		if i%2 == 1 {
			b, want = bin, ""
		}
		if i == 3 {
			// An escape key typed before the upgrade waits for its
			// command key in the new process.
			tel.typeKeys(t, "\x05")
		}
		r := runBinary(t, bin, "ctl", "--socket", sock, "--json", "upgrade", "--binary", b)
		if r.code != exitOK {
			t.Fatalf("upgrade %d: exit %d\n%s%s\ndaemon log:\n%s", i, r.code, r.stdout, r.stderr, p.stderr.String())
		}
		var rep struct {
			NewVersion string `json:"new_version"`
			NewPID     int    `json:"new_pid"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		killByPID(t, rep.NewPID)
		if !strings.HasPrefix(rep.NewVersion, want) {
			t.Errorf("upgrade %d: new version %q, want %s", i, rep.NewVersion, want)
		}
		n1, n2 := len(telTap.received()), len(comTap.received())
		waitFor(t, 20*time.Second, "output after the upgrade", func() bool {
			return len(telTap.received()) > n1+900 && len(comTap.received()) > n2+900
		})
	}

	// The streams as chartee sent them: no protocol event after the
	// mark (no new negotiation, no COM-PORT message), the data exact.
	for name, tap := range map[string]*tapProxy{"telnet": telTap, "rfc2217": comTap} {
		raw := tap.received()
		data, events := decodeFrom(raw)
		mark := map[string]int{"telnet": telMark, "rfc2217": comMark}[name]
		for _, at := range events {
			if at > mark {
				t.Errorf("%s client: a protocol event ending at byte %d, after the upgrades began (byte %d): %q",
					name, at, mark, raw[max(mark, at-16):at])
			}
		}
		t.Logf("%s client: %d exact lines across 4 upgrades", name, counterLines(t, name+" client (wire)", data))
	}
	// What the programs themselves got.
	counterLines(t, "telnet's screen", tel.text())
	counterLines(t, "pyserial's reads", py.out.String())
	// The port server was not redialed and got nothing but typing.
	raw, _ := port.received()
	if extra := raw[len(portMark):]; bytes.Contains(extra, []byte{telnet.IAC}) {
		t.Errorf("the port server got protocol bytes after the upgrades began: %q", extra)
	}

	tel.typeKeys(t, "?")
	waitFor(t, 20*time.Second, "the escape help on telnet", func() bool { return strings.Contains(tel.text(), "escape commands") })
	tel.typeKeys(t, "typed via telnet\r")
	py.command(t, "w typed via pyserial", "wrote")
	waitFor(t, 20*time.Second, "the typed lines at the console", func() bool {
		_, typed := port.received()
		return strings.Contains(typed, "typed via telnet") && strings.Contains(typed, "typed via pyserial\n")
	})
	py.command(t, "b 38400", "baud 38400")
	if got := port.ctl.baudChanges(); len(got) != 2 || got[1] != 38400 {
		t.Fatalf("the port server's baud rate changes %v, want 19200 then pyserial's 38400 after the upgrades", got)
	}
}
