package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// timeoutLong bounds a step that involves a slow program (a VM under TCG, a
// Python start-up) on a loaded machine; nothing normally comes near it.
const timeoutLong = 60 * time.Second

// waitFor polls cond until it holds, failing the test after timeoutLong.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeoutLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeoutLong, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForState is waitFor with the state shown when it times out.
func waitForState(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeoutLong)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeoutLong, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// firstDiff describes where two byte strings first differ, with context.
func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	return fmt.Sprintf("lengths %d and %d, first difference at byte %d:\n  %q\n  %q",
		len(a), len(b), i, a[lo:min(len(a), i+80)], b[lo:min(len(b), i+80)])
}
