package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"chartee/e2e/internal/harness"
)

func TestMain(m *testing.M) {
	// TestSoakShort runs this binary again as the soak command itself.
	if args, ok := os.LookupEnv(soakArgsEnv); ok {
		os.Args = append([]string{"soak"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// soakArgsEnv, when set, makes the test binary the soak command with these
// arguments.
const soakArgsEnv = "CHARTEE_SOAK_ARGS"

// TestSoakShort runs the soak for 30 s as part of make test, with all of
// its checks: every byte to every block leg (stayers, churning clients,
// captures across swaps), and goroutines, fds and RSS back to the start
// level. The daemon is built with -race, as in the other e2e tests. It is
// an e2e test: CHARTEE_E2E=skip skips it (loudly), CI never does.
func TestSoakShort(t *testing.T) {
	harness.Begin(t)
	harness.RequireProgram(t, "socat", "socat")
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "chartee")
	build := exec.Command("go", "build", "-race", "-o", bin, "./cmd/chartee")
	build.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/chartee: %v\n%s", err, out)
	}
	// 512 KiB/s keeps the race-instrumented daemon and soak well within
	// this 2-core machine while the rest of make test runs; an operation
	// (swap, reload, frontend drop) every 2 s makes about 15 of them.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), soakArgsEnv+"=-duration 30s -rate 524288 -every 2s -binary "+bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "soak: PASS") {
		t.Fatalf("soak: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// The pattern is one stream: any window of it equals the same bytes cut
// from a longer window starting at 0.
func TestPatternWindowsAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		off := rapid.IntRange(0, 1<<16).Draw(t, "off")
		n := rapid.IntRange(0, 4096).Draw(t, "n")
		whole := make([]byte, off+n)
		pattern(0, whole)
		win := make([]byte, n)
		pattern(uint64(off), win)
		if !bytes.Equal(win, whole[off:]) {
			t.Fatalf("window [%d,+%d) differs from the stream", off, n)
		}
	})
}

// A client that joins anywhere, and reads in any pieces, finds its offset
// and accepts the stream; one changed byte is caught and counted.
func TestClientChecksTheStream(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		join := rapid.IntRange(0, 1<<14).Draw(t, "join")
		n := rapid.IntRange(200, 8192).Draw(t, "n")
		corrupt := rapid.IntRange(-1, n-1).Draw(t, "corrupt")
		stream := make([]byte, n)
		pattern(uint64(join), stream)
		if corrupt >= 0 {
			stream[corrupt] ^= 0x20
		}
		f := &figures{}
		c := &client{name: "c", f: f, start: -1}
		want := make([]byte, 1024)
		var err error
		for b := stream; len(b) > 0 && err == nil; {
			k := min(len(b), rapid.IntRange(1, 300).Draw(t, "piece"))
			err = c.check(b[:k], want)
			b = b[k:]
		}
		// A corrupted offset field can make the client believe it joined
		// elsewhere; every other byte is compared with the pattern.
		switch {
		case corrupt < 0 && err != nil:
			t.Fatalf("a clean stream was refused: %v", err)
		case corrupt < 0 && c.next() != uint64(join+n):
			t.Fatalf("client at %d, want %d", c.next(), join+n)
		case corrupt >= 0 && err == nil:
			t.Fatalf("a changed byte at %d went unnoticed (client at %d)", corrupt, c.next())
		}
	})
}
