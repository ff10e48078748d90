package harness

import (
	"testing"

	"chartee/internal/testaddr"
)

// PickFreeAddr returns a loopback TCP address ("127.0.0.1:PORT") for a
// program that must be told its listen address in advance (a chartee
// config; the daemon cannot be handed a listener).
//
// A port merely found free and released can be handed to anyone's next
// bind(":0") or outgoing connection before the program binds it. So the
// port is reserved instead: a connection to it is made and closed from the
// accepting side first, which leaves that side in TIME_WAIT for 60s. The
// kernel gives a port held by a TIME_WAIT socket to no automatic bind or
// connect, while an explicit bind with SO_REUSEADDR (what Go's net.Listen
// and every server sets) takes it at once (package testaddr).
// TestPickFreeAddrReserved checks both halves.
func PickFreeAddr() (string, error) { return testaddr.Reserve() }

// FreeAddr is PickFreeAddr for a test: failing to find one fails t.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := PickFreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
