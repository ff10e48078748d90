package harness

import (
	"net"
	"testing"
)

// TestPickFreeAddrReserved: while a port from PickFreeAddr waits for its
// program, no automatic bind(":0") gets it — the range is swept more than
// twice (a port merely released is handed out again within it, several
// times) — and an explicit listen on it still succeeds.
func TestPickFreeAddrReserved(t *testing.T) {
	addr := FreeAddr(t)
	const sweeps = 40000 // Linux's default ephemeral range has 28,232 ports
	for range sweeps {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().String()
		ln.Close()
		if got == addr {
			t.Fatalf("bind(\":0\") was given the reserved %s", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on the reserved %s: %v", addr, err)
	}
	ln.Close()
}
