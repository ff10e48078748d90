// Package e2e runs the real chartee binary against real programs (QEMU,
// telnet, socat, pyserial, promtool, asciinema) and talks to it only from
// outside: sockets, ptys, files, the CLI and the control API's socket.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"chartee/e2e/internal/harness"
)

func TestMain(m *testing.M) {
	// The chartee binary is built once, on first use, into a directory
	// that goes away with the run.
	dir, err := os.MkdirTemp("", "chartee-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	harness.SetBuildDir(dir)
	code := run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(m *testing.M) int {
	if harness.Skipping() {
		harness.AnnounceSkip()
		code := m.Run()
		harness.AnnounceSkip()
		return code
	}
	code := m.Run()
	// The helpers start goroutines (process reapers, stream recorders);
	// every one of them must be gone when the tests are.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
			return 1
		}
	}
	return code
}
