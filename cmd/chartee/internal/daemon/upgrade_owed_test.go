package daemon

import (
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeCarriesWhatAStalledClientOwes: a raw client with on_overflow:
// block that stopped reading does not fail the upgrade. When the drain
// timeout expires its write is cut, what it still owes goes into the
// state, and the new process writes exactly that first, then the stream
// from the cut: the client, reading again, gets every line once, in order.
// The upgrade event counts the bytes carried.
func TestUpgradeCarriesWhatAStalledClientOwes(t *testing.T) {
	f := newFeeder(t)
	cfg := strings.Replace(teeYAML("t", f.addr(), indent(`- {name: raw, type: tcp-listen, listen: "127.0.0.1:0", on_overflow: block, queue: 64KiB}`)),
		"drain_timeout: 2s", "drain_timeout: 50ms", 1)
	d, _, _ := start(t, parse(t, cfg))
	tt, _ := d.Tee("t")
	var addr string
	for _, b := range tt.Stats().Backends {
		if b.Name == "raw" {
			addr = b.Source
		}
	}
	// A small receive buffer from the start (set before connecting, so
	// the window is scaled for it): the client stalls after a few KiB.
	dialer := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	client, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitFor(t, "the client's leg", func() bool { return len(tt.Stats().Legs) == 1 })
	front := f.conn(t)
	const lines = 1000000 // 9 MB: more than the socket buffers hold
	out := make([]byte, 0, lines*lineLen)
	for i := range lines {
		out = fmt.Appendf(out, "%08d\n", i)
	}
	fed := make(chan error, 1)
	go func() { _, err := front.Write(out); fed <- err }()
	// Stalled: bytes queued, and the client's socket taking no more
	// (nothing written for 100 looks in a row).
	var last uint64
	still := 0
	waitFor(t, "the leg to stall", func() bool {
		l := tt.Stats().Legs[0]
		if l.BytesOut != last || l.QueueBytes == 0 {
			last, still = l.BytesOut, 0
			return false
		}
		still++
		return still >= 100
	})

	nd := handOver(t, d, parse(t, cfg))
	// The old tee stays frozen at the cut: its offset is the cut, its
	// leg's next offset the first byte the client did not get.
	cut, owedFrom := tt.Offset(), tt.Stats().Legs[0].NextOffset
	if owedFrom >= cut {
		t.Fatalf("the client owed nothing at the cut (%d of %d): the test did not stall it", owedFrom, cut)
	}
	got := make([]byte, 0, lines*lineLen)
	buf := make([]byte, 64<<10)
	client.SetReadDeadline(time.Now().Add(60 * time.Second))
	for len(got) < lines*lineLen {
		n, err := client.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil && err != io.EOF {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
	}
	if err := <-fed; err != nil {
		t.Fatalf("the feeder: %v", err)
	}
	checkLines(t, got, 0, lines)
	nt, _ := nd.Tee("t")
	if st := nt.Stats(); len(st.Legs) != 1 || st.Legs[0].Name != "raw#1" || st.Legs[0].FirstOffset != owedFrom {
		t.Fatalf("legs after the upgrade: %+v; want raw#1 starting with the %d bytes owed from %d", st.Legs, cut-owedFrom, owedFrom)
	}
}
