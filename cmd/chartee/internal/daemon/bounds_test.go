package daemon

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"chartee/tee"
)

// TestReadersDoNotWaitForATeeOperation: a tee operation that waits on a
// device holds only the tee's operation lock; Config, Tees and the tee's
// stats (what `ctl show` and /metrics read) answer at once.
func TestReadersDoNotWaitForATeeOperation(t *testing.T) {
	f := newFeeder(t)
	d, _, _ := start(t, parse(t, teeYAML("t", f.addr(), indent(`- {name: rb, type: ringbuf, size: 4KiB}`))))
	rt, err := d.lockTee("t") // as a swap waiting on a device does
	if err != nil {
		t.Fatal(err)
	}
	defer rt.op.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if c := d.Config(); len(c.Tees) != 1 {
			t.Errorf("Config has %d tees", len(c.Tees))
		}
		d.Tees()
		if tt, ok := d.Tee("t"); ok {
			tt.Stats()
		}
	}()
	// The operation lock stays held until the test ends: readers that
	// waited for it would never answer, so a generous bound only adds
	// margin for a loaded machine, never a false pass.
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Config/Tees/Stats waited for a tee operation in progress")
	}
}

// TestReloadStopsRemovedTeesInParallel: tees removed by a reload each
// wait up to their drain timeout for a client that does not read; they
// wait at the same time, not one after the other. Seen as state, not
// time: every removed tee has stopped accepting (its shutdown began)
// while each still waits for its client; then the clients go and the
// reload ends.
func TestReloadStopsRemovedTeesInParallel(t *testing.T) {
	const n = 3
	f := newFeeder(t)
	var b strings.Builder
	b.WriteString("tees:\n")
	ports := make([]string, n)
	for i := range n {
		ports[i] = freePort(t)
		fmt.Fprintf(&b, `  - name: t%d
    drain_timeout: 1h
    frontend: {type: tcp-connect, address: %s}
    backends:
      - {name: net, type: tcp-listen, listen: "%s", on_overflow: block, queue: 4KiB}
`, i, f.addr(), ports[i])
	}
	keep := fmt.Sprintf(`tees:
  - name: keep
    frontend: {type: tcp-connect, address: %s}
    backends:
      - {name: rb, type: ringbuf, size: 4KiB}
`, f.addr())
	d, _, _ := start(t, parse(t, b.String()))
	clients := make([]net.Conn, n)
	for i := range n {
		c, err := net.Dial("tcp", ports[i]) // connects, never reads
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
		tt, _ := d.Tee(fmt.Sprintf("t%d", i))
		waitFor(t, "client attached", func() bool { return len(tt.Stats().Legs) == 1 })
	}
	for range n {
		fc := f.conn(t)
		go func() { // as fast as the tee takes it, until it blocks
			buf := make([]byte, 64<<10)
			for {
				if _, err := fc.Write(buf); err != nil {
					return
				}
			}
		}()
	}
	var tees []*tee.Tee
	for i := range n {
		tt, _ := d.Tee(fmt.Sprintf("t%d", i))
		tees = append(tees, tt)
		waitFor(t, "the block leg full", func() bool {
			st := tt.Stats()
			return len(st.Legs) == 1 && st.Legs[0].QueueBytes > 0 && st.Offset > 1<<20
		})
	}
	applied := make(chan error, 1)
	go func() { _, err := d.Apply(context.Background(), parse(t, keep)); applied <- err }()
	// In turn, t1 would not stop accepting while t0 still waits for its
	// client, which it does until the client goes (or for an hour).
	waitFor(t, "every removed tee shutting down at once", func() bool {
		for i := range tees {
			c, err := net.Dial("tcp", ports[i])
			if err == nil {
				c.Close()
				return false // still accepting: its shutdown has not begun
			}
		}
		return true
	})
	select {
	case err := <-applied:
		t.Fatalf("the reload ended (%v) while every removed tee still waited for its client", err)
	default:
	}
	for _, c := range clients {
		c.Close()
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
}
