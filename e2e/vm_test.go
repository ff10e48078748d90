package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// bootTimeout bounds a TCG boot of the Debian kernel on a slow shared
// machine (measured: see TestVMConsoleDirect's log).
const bootTimeout = 150 * time.Second

// TestVMConsoleDirect checks the VM harness on its own, without chartee:
// connected straight to QEMU's console socket, the boot log, the ready
// marker and a prompt arrive, and a typed command runs in the guest.
func TestVMConsoleDirect(t *testing.T) {
	harness.Begin(t)
	start := time.Now()
	vm := harness.StartVM(t, t.TempDir(), true)
	conn, err := net.Dial("unix", vm.Socket)
	if err != nil {
		t.Fatal(err)
	}
	rec := harness.Record(t, "console", conn)
	vm.Resume(t)
	// Paused until connected, so the log is complete from its first line.
	rec.WaitUntil(t, "the first line of the boot log", bootTimeout, func(b []byte) bool {
		return len(b) >= 13 && bytes.Contains(b, []byte("Linux version"))
	})
	if first := rec.Bytes(); !bytes.Contains(first[:min(len(first), 200)], []byte("Linux version")) {
		t.Errorf("boot log does not start with the kernel banner: %q", first[:min(len(first), 200)])
	}
	at := rec.WaitFor(t, harness.VMReadyMarker, 0, bootTimeout)
	at = rec.WaitFor(t, harness.VMPrompt, at, 30*time.Second)
	t.Logf("VM booted to a prompt in %v", time.Since(start).Round(time.Millisecond))

	n := rand.IntN(1 << 30)
	if _, err := fmt.Fprintf(conn, "echo marker-%d-$((6*7))\r", n); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("marker-%d-42", n)
	// The echo of the typed line is "echo marker-N-$((6*7))"; the output,
	// computed by the guest's shell, is "marker-N-42" alone on its line.
	rec.WaitFor(t, "\n"+marker+"\r\n", at, 30*time.Second)
}
