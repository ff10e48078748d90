// Package testaddr reserves loopback TCP ports for tests whose program
// must be told its listen address in advance (a chartee config, a
// nats-server cluster route), so it cannot be handed a listener.
//
// A port merely found free and released can be handed to anyone's next
// bind(":0") or outgoing connection before the program binds it. So the
// port is reserved instead: a connection to it is made and closed from the
// accepting side first, which leaves that side in TIME_WAIT for 60s. The
// kernel gives a port held by a TIME_WAIT socket to no automatic bind or
// connect, while an explicit bind with SO_REUSEADDR (what Go's net.Listen
// and every server sets) takes it at once. The e2e harness's
// TestPickFreeAddrReserved checks both halves.
package testaddr

import (
	"io"
	"net"
	"testing"
)

// Reserve returns a reserved loopback address ("127.0.0.1:PORT").
func Reserve() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	addr := ln.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		return "", err
	}
	ln.Close()
	s.Close() // the active close: TIME_WAIT is on addr's side
	// The FIN has arrived once the client reads EOF; its own close then
	// moves the accepted side from FIN_WAIT_2 to TIME_WAIT.
	_, _ = io.Copy(io.Discard, c)
	return addr, nil
}

// Reserved is Reserve for a test: failing to reserve fails t.
func Reserved(t testing.TB) string {
	t.Helper()
	addr, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
