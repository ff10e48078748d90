package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// TestVMConsole is issue 5's first scenario: a real VM's serial console
// (QEMU, TCG, Debian's kernel, a busybox initramfs) served by chartee to
// two telnet clients, a capture file and a ring buffer. The boot log
// reaches everyone identically, a command typed in one client runs in the
// VM and both see its output, and a capture swapped mid-boot leaves the
// old and the new file together equal to what a client saw.
func TestVMConsole(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	vm := harness.StartVM(t, dir, true) // paused: nothing is printed until everyone is there
	c := harness.NewChartee(t, dir)
	cap1, cap2 := filepath.Join(dir, "capture-1.log"), filepath.Join(dir, "capture-2.log")
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
tees:
  - name: vm
    input: shared
    frontend:
      type: unix-connect
      path: %q
      reconnect: {initial: 100ms, max: 1s}
    backends:
      - name: telnet
        type: tcp-listen
        listen: 127.0.0.1:0
        protocol: telnet
        input: true
      - name: capture
        type: file
        path: %q
        append: false
      - name: ring
        type: ringbuf
        size: 4MiB
`, c.Socket, vm.Socket, cap1))
	c.Start(t)
	waitFor(t, "the frontend to connect to QEMU's console socket", func() bool {
		return c.Tee(t, "vm").Frontend.Up
	})
	addr := c.Addr(t, "vm", "telnet")
	alice, aliceAt := harness.Telnet(t, "telnet-alice", addr)
	bob, bobAt := harness.Telnet(t, "telnet-bob", addr)
	waitFor(t, "both telnet clients to be legs", func() bool {
		return c.Tee(t, "vm").Backend(t, "telnet").Legs == 2
	})
	// What the server sent each client: everything after telnet's own
	// "Escape character is" line.
	aliceSaw := func() []byte { return alice.Screen.Bytes()[aliceAt:] }
	bobSaw := func() []byte { return bob.Screen.Bytes()[bobAt:] }

	start := time.Now()
	vm.Resume(t)
	defer func() {
		if t.Failed() {
			a := aliceSaw()
			t.Logf("alice saw %d bytes; head %q", len(a), a[:min(len(a), 2000)])
		}
	}()

	// Swap the capture mid-boot: once the kernel has printed its banner
	// and a good part of its log, but well before userspace.
	alice.Screen.WaitUntil(t, "the middle of the boot log", bootTimeout, func(b []byte) bool {
		return len(b) > aliceAt+4096 && bytes.Contains(b[aliceAt:], []byte("Linux version"))
	})
	if out, err := c.Ctl(t, "swap", "vm", "capture", "file,path="+cap2+",append=false"); err != nil {
		t.Fatalf("swapping the capture: %v\n%s", err, out)
	}
	swappedAt := len(aliceSaw())
	alice.Screen.WaitFor(t, harness.VMReadyMarker, aliceAt, bootTimeout)
	if swappedAt >= bytes.Index(aliceSaw(), []byte(harness.VMReadyMarker)) {
		t.Errorf("the swap came after the boot had finished (at byte %d); not a mid-boot swap", swappedAt)
	}
	promptAt := alice.Screen.WaitFor(t, harness.VMPrompt, aliceAt, timeoutLong)
	bob.Screen.WaitFor(t, harness.VMPrompt, bobAt, timeoutLong)
	t.Logf("VM booted to a prompt %v after resume", time.Since(start).Round(time.Millisecond))

	// Bob types; the command runs in the VM; both see its output. The
	// shell's arithmetic makes the output differ from the typed line, so
	// only a shell in the VM can have produced it.
	n := rand.IntN(1 << 30)
	bob.Type(t, fmt.Sprintf("echo marker-%d-$((6*7))\r", n))
	marker := fmt.Sprintf("marker-%d-42", n)
	alice.Screen.WaitFor(t, "\n"+marker+"\r\n", promptAt, timeoutLong)
	bob.Screen.WaitFor(t, "\n"+marker+"\r\n", bobAt, timeoutLong)
	// And the next prompt, so the stream is at rest when compared.
	alice.Screen.WaitFor(t, marker+"\r\n"+harness.VMPrompt, promptAt, timeoutLong)

	// Everyone saw the same bytes: the whole stream since the VM started
	// (the engine's offset counts every byte the frontend produced).
	// The kernel may still print (a late "tsc: Refined TSC" line), so the
	// ring is read inside the wait: every copy must have reached the
	// same offset before they are compared.
	var offset uint64
	var ring string
	waitFor(t, "clients, captures and the ring to agree", func() bool {
		offset = c.Tee(t, "vm").Offset
		var err error
		if ring, err = c.Ctl(t, "tail", "vm", "ring"); err != nil {
			t.Fatal(err)
		}
		return uint64(len(aliceSaw())) == offset && uint64(len(bobSaw())) == offset &&
			fileSize(cap1)+fileSize(cap2) == int64(offset) && uint64(len(ring)) == offset
	})
	a, b := aliceSaw(), bobSaw()
	if !bytes.Equal(a, b) {
		t.Errorf("the two clients saw different streams:\n%s", firstDiff(a, b))
	}
	old, err := os.ReadFile(cap1)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(cap2)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) == 0 || len(cur) == 0 {
		t.Errorf("the swap did not split the capture: old %d bytes, new %d bytes", len(old), len(cur))
	}
	if both := append(old, cur...); !bytes.Equal(both, a) {
		t.Errorf("old capture + new capture differ from what the client saw:\n%s", firstDiff(both, a))
	}
	if !bytes.Contains(a, []byte("Linux version")) || !bytes.Contains(a, []byte(harness.VMReadyMarker)) {
		t.Errorf("the stream lacks the boot log (%d bytes)", len(a))
	}
	if !bytes.Equal([]byte(ring), a) {
		t.Errorf("the ring buffer differs from what the client saw:\n%s", firstDiff([]byte(ring), a))
	}
}
