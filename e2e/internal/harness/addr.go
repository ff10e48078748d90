package harness

import (
	"net"
	"testing"
)

// PickFreeAddr returns a loopback TCP address ("127.0.0.1:PORT") that was
// free a moment ago: for a program that must be told its listen address
// in advance.
func PickFreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// FreeAddr is PickFreeAddr for a test: failing to find one fails t.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := PickFreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
