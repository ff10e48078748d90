package backends

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"chartee/chardev"
)

func udpTestListen(t *testing.T, edit func(*UDPSpec)) chardev.Source {
	t.Helper()
	spec := NewUDPSpec()
	spec.Listen = "127.0.0.1:0"
	if edit != nil {
		edit(spec)
	}
	src, err := udpListen(context.Background(), spec)
	if err != nil {
		t.Fatalf("udp: %v", err)
	}
	return src
}

// udpTestPeer is a UDP socket on loopback playing a remote peer.
func udpTestPeer(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(netTestTimeout))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func udpSend(t *testing.T, c *net.UDPConn, to string, msg string) {
	t.Helper()
	addr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo([]byte(msg), addr); err != nil {
		t.Fatal(err)
	}
}

// udpRecv reads one datagram.
func udpRecv(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("udp read: %v", err)
	}
	return string(buf[:n])
}

func TestUDPValidate(t *testing.T) {
	cases := []struct {
		name, want string
		edit       func(*UDPSpec)
	}{
		{"neither listen nor remote", "listen or remote", func(s *UDPSpec) {}},
		{"empty listen host", "give a host", func(s *UDPSpec) { s.Listen = ":5000" }},
		{"bad remote", "remote", func(s *UDPSpec) { s.Remote = "nohost" }},
		{"datagram too large", "max_datagram", func(s *UDPSpec) { s.Listen = "127.0.0.1:1"; s.MaxDatagram = 70000 }},
		{"bad CIDR", "allow", func(s *UDPSpec) { s.Listen = "127.0.0.1:1"; s.Allow = []string{"1.2.3.4/99"} }},
		{"bad on_full", "on_full", func(s *UDPSpec) { s.Listen = "127.0.0.1:1"; s.OnFull = "x" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := NewUDPSpec()
			c.edit(spec)
			if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
			if _, err := udpListen(context.Background(), spec); err == nil || !strings.HasPrefix(err.Error(), "udp: ") {
				t.Fatalf("Listen = %v, want a udp error", err)
			}
		})
	}
}

// TestUDPListenPeers: every remote peer is a leg of its own, and what a
// leg writes goes back to that peer only, in datagrams of at most
// max_datagram bytes.
func TestUDPListenPeers(t *testing.T) {
	f, err := chardev.Lookup("udp")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*UDPSpec)
	if spec.MaxDatagram != udpDefaultMaxDatagram {
		t.Fatalf("default max_datagram %s", spec.MaxDatagram)
	}
	spec.Listen = "127.0.0.1:0"
	spec.MaxDatagram = 1000
	src, err := f.Listen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	srv := netServe(t, src)

	a, b := udpTestPeer(t), udpTestPeer(t)
	udpSend(t, a, src.Addr(), "from a")
	devA := srv.next(t)
	udpSend(t, b, src.Addr(), "from b")
	devB := srv.next(t)
	netReadString(t, devA, "from a")
	netReadString(t, devB, "from b")
	if p := devA.(chardev.Peer).Peer(); p != a.LocalAddr().String() {
		t.Errorf("Peer() = %q, want %q", p, a.LocalAddr())
	}
	if d := chardev.Describe(devB); !strings.HasPrefix(d, "udp ") || !strings.Contains(d, b.LocalAddr().String()) {
		t.Errorf("Describe() = %q", d)
	}
	// A second datagram from a known peer goes to its leg, and a short
	// Read gets the rest of a datagram on the next Read.
	udpSend(t, a, src.Addr(), "0123456789")
	netReadString(t, devA, "0123")
	netReadString(t, devA, "456789")
	srv.none(t)

	long := strings.Repeat("x", 2500)
	netWrite(t, devB, long)
	for _, want := range []int{1000, 1000, 500} {
		if got := udpRecv(t, b); len(got) != want {
			t.Fatalf("datagram of %d bytes, want %d", len(got), want)
		}
	}
	netWrite(t, devA, "to a")
	if got := udpRecv(t, a); got != "to a" {
		t.Fatalf("peer a got %q", got)
	}

	// Close of the source keeps the legs.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	netWrite(t, devA, "still")
	if got := udpRecv(t, a); got != "still" {
		t.Fatalf("after source Close peer a got %q", got)
	}
	udpSend(t, a, src.Addr(), "also still")
	netReadString(t, devA, "also still")
}

// TestUDPListenIdleAndAllow: a quiet peer's leg ends after idle_timeout,
// and it comes back as a new leg when it speaks again; a peer outside the
// allow list never becomes a leg.
func TestUDPListenIdleAndAllow(t *testing.T) {
	src := udpTestListen(t, func(s *UDPSpec) { s.IdleTimeout = chardev.Duration(300 * time.Millisecond) })
	srv := netServe(t, src)
	p := udpTestPeer(t)
	udpSend(t, p, src.Addr(), "hi")
	dev := srv.next(t)
	netReadString(t, dev, "hi")
	if err := netReadError(t, dev); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("quiet peer: Read = %v, want an idle error", err)
	}
	_ = dev.Close()
	udpSend(t, p, src.Addr(), "back")
	again := srv.next(t)
	netReadString(t, again, "back")

	walled := udpTestListen(t, func(s *UDPSpec) { s.Allow = []string{"10.0.0.0/8"} })
	wsrv := netServe(t, walled)
	udpSend(t, p, walled.Addr(), "let me in")
	ns := walled.(*NetSource)
	netWaitFor(t, "the refusal to be counted", func() bool { return ns.Stats().RefusedAllow >= 1 })
	wsrv.none(t)
}

// TestUDPRemote: with remote, the one device talks to that peer; Accept
// yields it once and then waits for Close.
func TestUDPRemote(t *testing.T) {
	peer := udpTestPeer(t)
	spec := NewUDPSpec()
	spec.Remote = peer.LocalAddr().String()
	spec.Listen = "127.0.0.1:0"
	if !spec.SingleStream() {
		t.Fatal("a spec with remote is a single stream")
	}
	src, err := udpListen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	srv := netServe(t, src)
	dev := srv.next(t)
	netWrite(t, dev, "hello peer")
	buf := make([]byte, 100)
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello peer" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	if _, err := peer.WriteTo([]byte("hello chartee"), from); err != nil {
		t.Fatal(err)
	}
	netReadString(t, dev, "hello chartee")

	// A stranger's datagrams are not for this device.
	stranger := udpTestPeer(t)
	if _, err := stranger.WriteTo([]byte("spam"), from); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteTo([]byte("real"), from); err != nil {
		t.Fatal(err)
	}
	netReadString(t, dev, "real")
	srv.none(t)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	netWrite(t, dev, "still mine")
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "still mine" {
		t.Fatalf("after source Close peer read %q, %v", buf[:n], err)
	}
}

// TestUDPRemoteNotListening: a peer that is not up yet (ICMP port
// unreachable) does not fail the device.
func TestUDPRemoteNotListening(t *testing.T) {
	gone := udpTestPeer(t)
	addr := gone.LocalAddr().String()
	_ = gone.Close()
	spec := NewUDPSpec()
	spec.Remote = addr
	dev, err := OpenUDP(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	for range 5 {
		if _, err := dev.Write([]byte("anyone?")); err != nil {
			t.Fatalf("Write to a closed port: %v", err)
		}
	}
	errc := make(chan error, 1)
	go func() {
		_, err := dev.Read(make([]byte, 10))
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Read returned %v before Close", err)
	case <-time.After(100 * time.Millisecond): // proving a negative: Read keeps waiting
	}
	_ = dev.Close()
	if err := <-errc; err == nil {
		t.Fatalf("Read after Close = %v, want an error", err)
	}
}
