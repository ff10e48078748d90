package daemon

import (
	"strings"
	"testing"
	"time"

	"chartee/tee"
)

// TestUpgradeCarriesWatches: a tee with watches upgrades (they used to
// refuse it). A pattern half printed at the cut matches once the rest
// comes, in the new process, at the right offset; a match reported before
// the cut is not reported again; a watch's cooldown goes on.
func TestUpgradeCarriesWatches(t *testing.T) {
	f := newFeeder(t)
	cfg := teeYAML("t", f.addr(), indent(`- {name: ring, type: ringbuf, size: 64KiB}`)) + `    watch:
      - {name: ready, pattern: 'system is ready', actions: [event]}
      - {name: panic, pattern: 'Kernel panic', cooldown: 1h, actions: [event]}
`
	d, _, _ := start(t, parse(t, cfg))
	if b := d.UpgradeBlockers(); len(b) != 0 {
		t.Fatalf("blockers %q", b)
	}
	feed := f.conn(t)
	events, cancel := d.Subscribe(256)
	defer cancel()
	tt, _ := d.Tee("t")
	first := "boot: system is ready\r\nKernel panic - once\r\n"
	feed.Write([]byte(first))
	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for !seen["ready"] || !seen["panic"] {
		select {
		case e := <-events:
			for _, w := range []string{"ready", "panic"} {
				if e.Kind == tee.EventWatch && strings.Contains(e.Reason, "watch "+w+" matched") {
					seen[w] = true
				}
			}
		case <-timeout:
			t.Fatalf("matches before the upgrade: %v", seen)
		}
	}
	half := "again: system is re"
	feed.Write([]byte(half))
	waitFor(t, "the half line taken", func() bool { return tt.Offset() == uint64(len(first)+len(half)) })

	nd := handOver(t, d, parse(t, cfg))
	nevents, ncancel := nd.Subscribe(256)
	defer ncancel()
	feed.Write([]byte("ady\r\nKernel panic - twice (cooling down)\r\nsystem is ready\r\n"))
	// Actions run on several workers: events come in any order.
	across := uint64(len(first) + len("again: "))
	later := uint64(len(first)+len(half)) + uint64(len("ady\r\nKernel panic - twice (cooling down)\r\n"))
	got := map[uint64]bool{}
	deadline := time.After(10 * time.Second)
	for !got[across] || !got[later] {
		select {
		case e := <-nevents:
			if e.Kind != tee.EventWatch {
				continue
			}
			if strings.Contains(e.Reason, "watch panic") {
				t.Fatalf("the panic watch fired during its cooldown after the upgrade: %s", e.Reason)
			}
			if strings.Contains(e.Reason, "watch ready") {
				if e.Offset != across && e.Offset != later {
					t.Fatalf("a ready match at %d after the upgrade; want %d (across the cut) and %d only", e.Offset, across, later)
				}
				got[e.Offset] = true
			}
		case <-deadline:
			t.Fatalf("ready matches after the upgrade at %v, want %d (across the cut) and %d", got, across, later)
		}
	}
}
