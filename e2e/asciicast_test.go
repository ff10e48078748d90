package e2e

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// generator is the frontend program of TestAsciicastCapture: it waits for
// a line, then prints continuously, multi-byte UTF-8 included (so the
// capture's chunks split characters), and then waits on its input forever.
const generator = `read go
i=0
while [ $i -lt 20000 ]; do
  echo "line $i: é ü ✓ ─ 漢字 — the quick brown fox"
  i=$((i+1))
done
echo END-OF-OUTPUT
exec cat >/dev/null`

// TestAsciicastCapture is issue 5's fourth scenario: a file leg recording
// in asciicast format next to an interactive telnet client while the
// console prints continuously; `asciinema cat` of the live recording
// equals the client's stream byte for byte. Both legs block rather than
// drop when they fall behind (the default, drop, loses bursts on a loaded
// machine: a 1 MB burst once lost 150 KB of the recording here), so the
// frontend waits for them and nothing is lost.
func TestAsciicastCapture(t *testing.T) {
	harness.Begin(t)
	asciinema := harness.RequireProgram(t, "asciinema", "asciinema")
	dir := t.TempDir()
	cast := filepath.Join(dir, "session.cast")
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
tees:
  - name: app
    frontend:
      type: exec
      command: ["/bin/sh", "-c", %q]
      pty: true
    backends:
      - name: telnet
        type: tcp-listen
        listen: 127.0.0.1:0
        protocol: telnet
        input: true
        on_overflow: block
      - name: recording
        type: file
        path: %q
        format: asciicast
        append: false
        on_overflow: block
`, c.Socket, generator, cast))
	c.Start(t)
	waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "app").Frontend.Up })
	client, at := harness.Telnet(t, "telnet", c.Addr(t, "app", "telnet"))
	waitFor(t, "the client to be a leg", func() bool { return c.Tee(t, "app").Backend(t, "telnet").Legs == 1 })

	client.Type(t, "go\r")
	// Keep typing while the output streams: the keys are echoed by the
	// program's terminal into the same stream.
	client.Screen.WaitFor(t, "line 1000:", at, timeoutLong)
	for i := 0; i < 5; i++ {
		client.Type(t, "k")
		time.Sleep(20 * time.Millisecond)
	}
	client.Screen.WaitFor(t, "END-OF-OUTPUT\r\n", at, timeoutLong)
	waitForState(t, "the stream to settle", func() (bool, string) {
		st := c.Tee(t, "app")
		n, rec := uint64(client.Screen.Len()-at), st.Backend(t, "recording")
		return n == st.Offset && rec.BytesOut == st.Offset,
			fmt.Sprintf("client %d bytes, recording %d (dropped %d), stream offset %d", n, rec.BytesOut, rec.Dropped, st.Offset)
	})
	saw := client.Screen.Bytes()[at:]
	if n := bytes.Count(saw, []byte("\r\n")); n < 20001 {
		t.Fatalf("the client saw only %d lines", n)
	}

	// The recording is read while chartee keeps it open: it must already
	// be complete (every write reaches the file before it is acknowledged).
	out, err := harness.OutputWithTTY(t, asciinema, "cat", cast)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, saw) {
		t.Errorf("asciinema cat of the recording differs from the client's stream:\n%s", firstDiff(out, saw))
	}
}
