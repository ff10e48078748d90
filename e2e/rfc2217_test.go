package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// pyserialClient is a pyserial RFC 2217 client: it changes the line
// settings, sends a break, then waits for the test before exchanging data.
// Each step prints a marker the test waits for.
const pyserialClient = `
import sys, serial
port, up_path, n_down, down_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = serial.serial_for_url('rfc2217://127.0.0.1:%s' % port, baudrate=9600, timeout=30)
s.baudrate = 57600
s.parity = serial.PARITY_EVEN
s.stopbits = serial.STOPBITS_TWO
s.send_break(0.25)
print('SETTINGS-DONE', s.baudrate, s.parity, s.stopbits, flush=True)
sys.stdin.readline()
s.write(open(up_path, 'rb').read())
s.flush()
print('UP-SENT', flush=True)
got = b''
while len(got) < n_down:
    chunk = s.read(n_down - len(got))
    if not chunk:
        sys.exit('timed out after %d of %d bytes' % (len(got), n_down))
    got += chunk
open(down_path, 'wb').write(got)
print('DOWN-RECEIVED', flush=True)
s.close()
`

// TestRFC2217Pyserial is issue 5's third scenario: pyserial's rfc2217://
// client changes baud rate, parity and stop bits and sends a break through
// chartee; the frontend pty's settings follow; data passes 8-bit clean
// both ways (every byte value, IAC 0xff and CR NUL included).
//
// Linux ptys (since 6.x) force cs8 and no parity whatever is asked, so the
// parity is checked where chartee records it (the tee's line state in the
// API) and the pty is checked for baud rate and stop bits; a break on a pty
// has no visible effect, so the break is checked to be accepted and to
// leave the session working.
func TestRFC2217Pyserial(t *testing.T) {
	harness.Begin(t)
	python := harness.RequireProgram(t, "/usr/bin/python3", "python3-serial")
	if out, err := exec.Command(python, "-c", "import serial.rfc2217").CombinedOutput(); err != nil {
		t.Fatalf("pyserial is missing (%v: %s): install the Debian package \"python3-serial\" "+
			"(apt-get install -y python3-serial), or set %s=skip to skip the end-to-end tests locally", err, out, harness.SkipEnv)
	}
	dir := t.TempDir()
	pair := harness.StartPtyPair(t, "socat", filepath.Join(dir, "port"), filepath.Join(dir, "port-far"))
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
tees:
  - name: lab
    frontend:
      type: serial
      path: %q
      baud: 115200
      exclusive: false
    backends:
      - name: rfc2217
        type: tcp-listen
        listen: 127.0.0.1:0
        protocol: rfc2217
        control: true
        input: true
`, c.Socket, pair.A))
	c.Start(t)
	waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "lab").Frontend.Up })
	far := harness.OpenTTY(t, pair.B)
	atFar := harness.Record(t, "port-far", far)
	_, port, err := net.SplitHostPort(c.Addr(t, "lab", "rfc2217"))
	if err != nil {
		t.Fatal(err)
	}

	// 8-bit clean: every byte value several times over, in random order,
	// plus the sequences a telnet layer is most likely to mangle.
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func() []byte {
		b := []byte("\xff\xff\r\x00\r\n\n\r\xff\xfa\xf0")
		for i := 0; i < 16; i++ {
			for _, v := range rng.Perm(256) {
				b = append(b, byte(v))
			}
		}
		return b
	}
	up, down := mk(), mk()
	upPath, downPath, script := filepath.Join(dir, "up.bin"), filepath.Join(dir, "down.bin"), filepath.Join(dir, "client.py")
	for path, data := range map[string][]byte{upPath: up, script: []byte(pyserialClient)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(python, script, port, upPath, fmt.Sprint(len(down)), downPath)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	py := harness.StartCmd(t, "pyserial", cmd)
	defer stdin.Close()
	started := time.Now()
	waitOutput(t, py, "SETTINGS-DONE")
	t.Logf("pyserial connected and set the line in %v", time.Since(started).Round(time.Millisecond))

	// The frontend pty follows the client's settings.
	waitFor(t, "the frontend pty at 57600 baud, 2 stop bits", func() bool {
		s := harness.Stty(t, pair.A)
		return s.Baud == 57600 && s.StopBits == 2
	})
	if l := c.Tee(t, "lab").Line; l.Baud != 57600 || l.Parity != "even" || l.StopBits != "2" {
		t.Errorf("the tee's line state is %+v, want 57600 even 2", l)
	}

	// Client to port.
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	atFar.WaitUntil(t, "the client's bytes", timeoutLong, func(b []byte) bool { return len(b) >= len(up) })
	if got := atFar.Bytes(); !bytes.Equal(got, up) {
		t.Errorf("the port received other bytes than pyserial sent:\n%s", firstDiff(got, up))
	}
	// Port to client.
	if _, err := far.Write(down); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, py, "DOWN-RECEIVED")
	t.Logf("data exchanged after %v", time.Since(started).Round(time.Millisecond))
	if err := py.Wait(timeoutLong); err != nil {
		t.Fatalf("pyserial client: %v\n%s", err, py.Output())
	}
	t.Logf("pyserial exited after %v", time.Since(started).Round(time.Millisecond))
	got, err := os.ReadFile(downPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, down) {
		t.Errorf("pyserial received other bytes than the port sent:\n%s", firstDiff(got, down))
	}
}

// waitOutput waits for a marker in a program's output; the program ending
// first fails the test with its output.
func waitOutput(t *testing.T, p *harness.Proc, marker string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to print %s", p.Name, marker), func() bool {
		if bytes.Contains([]byte(p.Output()), []byte(marker)) {
			return true
		}
		if p.Exited() {
			t.Fatalf("%s exited before printing %s: %v\n%s", p.Name, marker, p.Wait(0), p.Output())
		}
		return false
	})
}
