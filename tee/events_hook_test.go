package tee

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// eventLog collects the events an Options.Events hook is given.
type eventLog struct {
	mu sync.Mutex
	ev []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ev)
}

// TestEventsHookSeesEveryEventFromTheFirst: an Options.Events hook is in
// place before the tee starts, so it gets the frontend's first opening,
// which a Subscribe after New can miss, and after Close it has had every
// event, in order.
func TestEventsHookSeesEveryEventFromTheFirst(t *testing.T) {
	var log eventLog
	h := newHarness(t, Options{Events: log.add})
	h.attach("a", LegOptions{})
	if err := h.tee.Detach("a"); err != nil {
		t.Fatal(err)
	}
	h.tee.Close()
	ev := log.all()
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, string(e.Kind)+" "+e.Backend)
	}
	if len(ev) < 3 || ev[0].Kind != EventFrontendRestored || !strings.HasPrefix(ev[0].Reason, "opened ") {
		t.Fatalf("events %q: want the frontend opening first", kinds)
	}
	if !slices.Contains(kinds, "attach a") || !slices.Contains(kinds, "detach a") ||
		slices.Index(kinds, "attach a") > slices.Index(kinds, "detach a") {
		t.Fatalf("events %q: want attach a, then detach a", kinds)
	}
	if ev[0].Tee != "t0" || ev[0].Time.IsZero() {
		t.Fatalf("first event %+v: tee name and time not set", ev[0])
	}
	if h.tee.EventsMissed() != 0 {
		t.Fatalf("missed %d events", h.tee.EventsMissed())
	}
}

// TestEventsHookThatStallsDoesNotSlowTheTee: a hook that blocks costs it
// events (counted), never the tee its progress.
func TestEventsHookThatStallsDoesNotSlowTheTee(t *testing.T) {
	release := make(chan struct{})
	var got atomic.Int64
	h := newHarness(t, Options{EventBuffer: 2, Events: func(Event) {
		<-release
		got.Add(1)
	}})
	defer close(release) // before the harness's Close, which waits for the hook
	for i := range 10 {
		name := fmt.Sprintf("b%d", i)
		h.attach(name, LegOptions{})
		if err := h.tee.Detach(name); err != nil {
			t.Fatal(err)
		}
	}
	if h.tee.EventsMissed() == 0 {
		t.Fatal("20 events into a stalled hook with room for 2: none counted as missed")
	}
}
