package daemon

import (
	"strings"
	"testing"
)

// TestUpgradeBlockers: a tee names the devices that cannot be carried, by
// type, so a refused upgrade says exactly what it would have dropped.
func TestUpgradeBlockers(t *testing.T) {
	f := newFeeder(t)
	d, _, _ := start(t, parse(t, teeYAML("console", f.addr(), indent(`- {name: rb, type: ringbuf, size: 4KiB}
- {name: raw, type: tcp-listen, listen: "127.0.0.1:0"}`))))
	got := d.UpgradeBlockers()
	if len(got) != 1 {
		t.Fatalf("blockers %q, want one line for tee console", got)
	}
	for _, want := range []string{"tee console:", "backend rb (ringbuf)", "cannot be carried yet"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("blocker %q lacks %q", got[0], want)
		}
	}
	// tcp-connect and tcp-listen can be carried.
	for _, not := range []string{"tcp-connect", "tcp-listen"} {
		if strings.Contains(got[0], not) {
			t.Errorf("blocker %q names %s, which can be carried", got[0], not)
		}
	}
}
