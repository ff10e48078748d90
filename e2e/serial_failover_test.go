package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// TestSerialFailover is issue 5's second scenario: the frontend is a pty
// (one end of a socat pair), a spare is another; the primary's socat is
// killed mid-stream. The client stays connected, chartee fails over, the
// spare gets the primary's line settings (read back with stty -F), and
// what the client typed during the switch arrives at the spare.
func TestSerialFailover(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	primary := harness.StartPtyPair(t, "socat-primary", filepath.Join(dir, "primary"), filepath.Join(dir, "primary-far"))
	spare := harness.StartPtyPair(t, "socat-spare", filepath.Join(dir, "spare"), filepath.Join(dir, "spare-far"))
	// The spare starts at other settings than the primary's, so that only
	// chartee's replay can make them equal. (exclusive: false lets stty -F
	// read a port chartee holds without root.)
	stty := harness.RequireProgram(t, "stty", "coreutils")
	if out, err := execCombined(stty, "-F", spare.A, "9600", "-cstopb"); err != nil {
		t.Fatalf("stty: %v: %s", err, out)
	}
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
tees:
  - name: fw1
    frontend:
      type: serial
      path: %q
      baud: 57600
      stop_bits: "2"
      exclusive: false
      reconnect: {initial: 100ms, max: 1s}
      failover:
        - type: serial
          path: %q
          exclusive: false
    backends:
      - name: ops
        type: tcp-listen
        listen: 127.0.0.1:0
        input: true
`, c.Socket, primary.A, spare.A))
	c.Start(t)
	waitFor(t, "the primary to be up", func() bool { return c.Tee(t, "fw1").Frontend.Up })
	before := harness.Stty(t, primary.A)
	if before.Baud != 57600 || before.StopBits != 2 {
		t.Fatalf("the primary was not configured: %+v", before)
	}

	conn, err := net.Dial("tcp", c.Addr(t, "fw1", "ops"))
	if err != nil {
		t.Fatal(err)
	}
	client := harness.Record(t, "client", conn)
	waitFor(t, "the client to be a leg", func() bool { return c.Tee(t, "fw1").Backend(t, "ops").Legs == 1 })
	leg := c.Tee(t, "fw1").Legs[0].Name

	// The device on the far side of the primary talks continuously.
	primaryFar := harness.OpenTTY(t, primary.B)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if _, err := fmt.Fprintf(primaryFar, "primary-%d\n", i); err != nil {
				return // its socat is gone
			}
		}
	}()
	defer func() { close(stop); wg.Wait(); primaryFar.Close() }()
	client.WaitFor(t, "primary-100\n", 0, timeoutLong)

	// Pull the primary: socat dies, its ptys hang up.
	primary.Proc.Kill()
	// Type through the switch: every line written after the kill must
	// reach the spare, none may go to the dead primary.
	spareFar := harness.OpenTTY(t, spare.B)
	atSpare := harness.Record(t, "spare-far", spareFar)
	var typed strings.Builder
	for i := 0; i < 200; i++ {
		line := fmt.Sprintf("typed-%d\n", i)
		typed.WriteString(line)
		if _, err := conn.Write([]byte(line)); err != nil {
			t.Fatalf("the client could not type during the switch: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, "the failover to the spare", func() bool {
		f := c.Tee(t, "fw1").Frontend
		return f.Up && f.Failovers >= 1 && f.Candidate == 1
	})
	atSpare.WaitUntil(t, "everything typed during the switch", timeoutLong, func(b []byte) bool {
		return len(b) >= typed.Len()
	})
	if got := atSpare.Bytes(); !bytes.Equal(got, []byte(typed.String())) {
		t.Errorf("the spare received other input than was typed after the kill:\n%s", firstDiff(got, []byte(typed.String())))
	}

	// The spare carries the primary's line settings.
	after := harness.Stty(t, spare.A)
	if after.Baud != before.Baud || after.StopBits != before.StopBits || after.DataBits != before.DataBits || after.Parity != before.Parity {
		t.Errorf("spare line settings %d %d%s%d, primary's were %d %d%s%d",
			after.Baud, after.DataBits, after.Parity, after.StopBits, before.Baud, before.DataBits, before.Parity, before.StopBits)
	}
	if l := c.Tee(t, "fw1").Line; l.Baud != 57600 || l.StopBits != "2" {
		t.Errorf("the tee's recorded line state is %+v", l)
	}

	// The spare's output reaches the same, still connected client.
	at := client.Len()
	if _, err := spareFar.Write([]byte("from-the-spare\n")); err != nil {
		t.Fatal(err)
	}
	client.WaitFor(t, "from-the-spare\n", at, timeoutLong)
	if err := client.Err(); err != nil {
		t.Errorf("the client's connection ended: %v", err)
	}
	st := c.Tee(t, "fw1")
	if len(st.Legs) != 1 || st.Legs[0].Name != leg {
		t.Errorf("legs after the failover: %+v, want only %s", st.Legs, leg)
	}
	// No byte the client received was lost or mangled: it is primary lines
	// in order, then the spare's line.
	checkPrimaryThenSpare(t, client.Bytes())
}

// checkPrimaryThenSpare checks the client's stream: whole "primary-N" lines
// with N counting up from 0 (a line cut by the kill may be the last), then
// "from-the-spare".
func checkPrimaryThenSpare(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	end := strings.Index(s, "from-the-spare\n")
	lines := strings.Split(s[:end], "\n")
	next := 0
	for i, l := range lines {
		if l == "" && i == len(lines)-1 {
			break
		}
		want := fmt.Sprintf("primary-%d", next)
		if l != want {
			if i >= len(lines)-2 && strings.HasPrefix(want, l) {
				// The line the kill cut in two; the spare's text starts fresh.
				continue
			}
			t.Errorf("client line %d is %q, want %q", i, l, want)
			return
		}
		next++
	}
}

func execCombined(program string, args ...string) (string, error) {
	out, err := exec.Command(program, args...).CombinedOutput()
	return string(out), err
}
