package daemon

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLogsTheFirstFrontendOpen: the daemon's log has every engine event
// from the first, the frontend's opening included (the engine's Events
// hook is in place before the tee starts; a subscription made after
// tee.New could miss it), and the shutdown's detach events.
func TestLogsTheFirstFrontendOpen(t *testing.T) {
	f := newFeeder(t)
	cfg := parse(t, teeYAML("console", f.addr(), indent(`- name: rb
  type: ringbuf
  size: 4KiB`)))
	d, _, logs := start(t, cfg)
	c := f.conn(t)
	defer c.Close()
	waitFor(t, "the frontend opening logged", func() bool {
		return strings.Contains(logs.String(), `msg=frontend-restored tee=console`) &&
			strings.Contains(logs.String(), `reason="opened `)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returns once the tee's last events are logged.
	if s := logs.String(); !strings.Contains(s, "msg=detach tee=console backend=rb") {
		t.Fatalf("no detach of rb logged by the end of Shutdown:\n%s", s)
	}
}
