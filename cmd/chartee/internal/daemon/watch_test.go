package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"chartee/tee"
	"chartee/watch"
)

// TestWatchesRunAndReloadWithoutTouchingLegs starts a tee with a watch,
// checks it fires, then reloads: a changed pattern, an added watch and
// input pacing apply while every leg — the watch leg included — stays the
// same leg, with no byte lost by the client. Removing every watch detaches
// the watch leg alone.
func TestWatchesRunAndReloadWithoutTouchingLegs(t *testing.T) {
	f := newFeeder(t)
	base := teeYAML("t", f.addr(), indent(`- {name: ring, type: ringbuf, size: 64KiB}`))
	withWatch := func(watches string) string { return base + "    watch:\n" + watches }
	d, _, _ := start(t, parse(t, withWatch(`      - {name: panic, pattern: 'Kernel panic', actions: [event]}
`)))
	feed := f.conn(t)
	events, cancel := d.Subscribe(256)
	defer cancel()
	tt, _ := d.Tee("t")
	legsBefore := legIDs(tt)
	if !slices.Contains(backendNames(t, d, "t"), watch.BackendName) {
		t.Fatalf("no watch leg: %v", backendNames(t, d, "t"))
	}
	feed.Write([]byte("boot\r\nKernel panic - not syncing: x\r\n"))
	waitEvent(t, events, "watch panic matched")

	rep, err := d.Apply(context.Background(), parse(t, withWatch(`      - {name: panic, pattern: 'Kernel panic|Oops', actions: [event]}
      - {name: login, pattern: 'login: $', actions: [{send: "root\n"}]}
`)+"    input_pacing: {char_delay: 1ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Updated, "t (watches)") || !slices.Contains(rep.Updated, "t (settings)") ||
		len(rep.Attached)+len(rep.Detached)+len(rep.Swapped) != 0 {
		t.Fatalf("reload report %+v", rep)
	}
	if got := legIDs(tt); !slices.Equal(got, legsBefore) {
		t.Fatalf("legs changed over the reload: %v -> %v", legsBefore, got)
	}
	feed.Write([]byte("Oops: 0002\r\nvm login: "))
	waitEvent(t, events, `watch panic matched "Oops"`)
	// The login watch's send goes through the frontend, paced.
	buf := make([]byte, 16)
	feed.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := readAtLeast(feed, buf, 5)
	if err != nil || string(buf[:n]) != "root\n" {
		t.Fatalf("the frontend got %q, %v; want the login watch's send", buf[:n], err)
	}

	if _, err := d.Apply(context.Background(), parse(t, base)); err != nil {
		t.Fatal(err)
	}
	if got := backendNames(t, d, "t"); !slices.Equal(got, []string{"ring"}) {
		t.Fatalf("after removing every watch: backends %v", got)
	}
}

func readAtLeast(c interface{ Read([]byte) (int, error) }, buf []byte, n int) (int, error) {
	got := 0
	for got < n {
		k, err := c.Read(buf[got:])
		got += k
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// legIDs names every leg with when it was attached: a leg re-created by a
// reload would show a new time.
func legIDs(t *tee.Tee) []string {
	var out []string
	for _, l := range t.Stats().Legs {
		out = append(out, l.Name+"@"+l.Since.String())
	}
	slices.Sort(out)
	return out
}

func waitEvent(t *testing.T, events <-chan tee.Event, reason string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == tee.EventWatch && strings.Contains(e.Reason, reason) {
				return
			}
		case <-timeout:
			t.Fatalf("no watch event %q", reason)
		}
	}
}
