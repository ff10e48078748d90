package harness

import (
	"os"
	"testing"
	"time"
)

// PtyPair is two ptys joined back to back by socat: what is written to one
// is read from the other, like two ends of a null-modem cable. Each end
// is a real tty with its own termios (stty -F reads it).
type PtyPair struct {
	A, B string // symlinks to the two pty slaves
	Proc *Proc
}

// StartPtyPair runs socat with two raw, echo-less ptys linked at a and b.
func StartPtyPair(t testing.TB, name, a, b string) *PtyPair {
	t.Helper()
	socat := RequireProgram(t, "socat", "socat")
	p := Start(t, name, socat, "-d", "-d",
		"pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	deadline := time.Now().Add(timeoutShort)
	for {
		_, errA := os.Stat(a)
		_, errB := os.Stat(b)
		if errA == nil && errB == nil {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("e2e: socat %s did not create %s and %s:\n%s", name, a, b, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// socat logs "starting data transfer loop" once both ptys are open.
	for !contains(p.Output(), "starting data transfer loop") {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("e2e: socat %s did not start:\n%s", name, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &PtyPair{A: a, B: b, Proc: p}
}

// Stty returns `stty -F path -a`'s settings as a set of words, e.g.
// "speed 115200 baud" is reported as Baud, and flags like "parenb" or
// "-cstopb" are present as given.
func Stty(t testing.TB, path string) SttySettings {
	t.Helper()
	stty := RequireProgram(t, "stty", "coreutils")
	out, err := execOutput(stty, "-F", path, "-a")
	if err != nil {
		t.Fatalf("e2e: stty -F %s: %v: %s", path, err, out)
	}
	return parseStty(out)
}
