package backends

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/chardev"
)

// tcpTestListen builds a tcp-listen source on a free loopback port.
func tcpTestListen(t *testing.T, edit func(*TCPListenSpec)) *NetSource {
	t.Helper()
	spec := NewTCPListenSpec()
	spec.Listen = "127.0.0.1:0"
	if edit != nil {
		edit(spec)
	}
	src, err := tcpListen(context.Background(), spec)
	if err != nil {
		t.Fatalf("tcp-listen: %v", err)
	}
	return src.(*NetSource)
}

func TestTCPListenValidate(t *testing.T) {
	cases := []struct {
		name, want string
		edit       func(*TCPListenSpec)
	}{
		{"missing listen", "listen: required", func(s *TCPListenSpec) { s.Listen = "" }},
		{"empty host", "give a host", func(s *TCPListenSpec) { s.Listen = ":2000" }},
		{"no port", "listen", func(s *TCPListenSpec) { s.Listen = "127.0.0.1" }},
		{"bad CIDR", "allow", func(s *TCPListenSpec) { s.Allow = []string{"10.0.0.0/40"} }},
		{"bad protocol", "protocol", func(s *TCPListenSpec) { s.Protocol = "ssh" }},
		{"bad on_full", "on_full", func(s *TCPListenSpec) { s.OnFull = "drop" }},
		{"negative max_clients", "max_clients", func(s *TCPListenSpec) { s.MaxClients = -1 }},
		{"tls cert without key", "tls: key", func(s *TCPListenSpec) { s.TLS = &NetServerTLS{Cert: "c.pem"} }},
		{"tls without cert", "tls: cert", func(s *TCPListenSpec) { s.TLS = &NetServerTLS{} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := NewTCPListenSpec()
			spec.Listen = "127.0.0.1:2000"
			c.edit(spec)
			err := spec.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
			// Listen refuses it the same way, prefixed with the type.
			if _, err := tcpListen(context.Background(), spec); err == nil || !strings.HasPrefix(err.Error(), "tcp-listen: ") {
				t.Fatalf("Listen = %v, want a tcp-listen error", err)
			}
		})
	}
	ok := NewTCPListenSpec()
	ok.Listen = "0.0.0.0:2000" // every address, said explicitly, is fine
	ok.Allow = []string{"10.0.0.0/8", "::1"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
}

// TestTCPListenRegistry goes the engine's way: Lookup, NewSpec, Listen,
// Accept; the client is greeted with the banner, bytes go both ways, and
// the device names its peer.
func TestTCPListenRegistry(t *testing.T) {
	f, err := chardev.Lookup("tcp-listen")
	if err != nil {
		t.Fatal(err)
	}
	if f.Listen == nil || !f.Input {
		t.Fatal("tcp-listen must be an input source")
	}
	spec := f.NewSpec().(*TCPListenSpec)
	if spec.Protocol != ProtocolRaw || spec.OnFull != OnFullReject {
		t.Fatalf("defaults: %+v", spec)
	}
	spec.Listen = "127.0.0.1:0"
	spec.Banner = "welcome to the console\r\n"
	src, err := f.Listen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	srv := netServe(t, src)
	if !strings.HasPrefix(src.Addr(), "127.0.0.1:") || strings.HasSuffix(src.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound port", src.Addr())
	}

	client := netDial(t, "tcp", src.Addr())
	dev := srv.next(t)
	netWrite(t, dev, "from the frontend")
	netReadString(t, client, spec.Banner+"from the frontend")
	netWrite(t, client, "typed")
	netReadString(t, dev, "typed")

	if p := dev.(chardev.Peer).Peer(); p != client.LocalAddr().String() {
		t.Errorf("Peer() = %q, want %q", p, client.LocalAddr())
	}
	if d := chardev.Describe(dev); !strings.Contains(d, "tcp-listen") || !strings.Contains(d, client.LocalAddr().String()) {
		t.Errorf("Describe() = %q", d)
	}
	// The client hanging up is io.EOF for the leg.
	_ = client.Close()
	if err := netReadError(t, dev); !errors.Is(err, io.EOF) {
		t.Errorf("Read after hang-up = %v, want io.EOF", err)
	}
}

func TestTCPListenAddressInUse(t *testing.T) {
	src := tcpTestListen(t, nil)
	defer src.Close()
	spec := NewTCPListenSpec()
	spec.Listen = src.Addr()
	_, err := tcpListen(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.HasPrefix(err.Error(), "tcp-listen: ") {
		t.Fatalf("second Listen on %s = %v, want address already in use", src.Addr(), err)
	}
}

func TestTCPListenMaxClientsReject(t *testing.T) {
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.MaxClients = 2 })
	srv := netServe(t, src)
	c1 := netDial(t, "tcp", src.Addr())
	d1 := srv.next(t)
	c2 := netDial(t, "tcp", src.Addr())
	d2 := srv.next(t)

	c3 := netDial(t, "tcp", src.Addr())
	refused, err := io.ReadAll(c3)
	if err != nil || string(refused) != netRejectLine {
		t.Fatalf("third client read %q, %v; want the notice then EOF", refused, err)
	}
	srv.none(t)
	if st := src.Stats(); st.RefusedFull != 1 || st.Clients != 2 || st.Accepted != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The admitted clients were not disturbed.
	netWrite(t, c1, "one")
	netReadString(t, d1, "one")
	netWrite(t, d2, "two")
	netReadString(t, c2, "two")

	// Once the engine closes a leg there is room again.
	_ = d1.Close()
	c4 := netDial(t, "tcp", src.Addr())
	d4 := srv.next(t)
	netWrite(t, c4, "four")
	netReadString(t, d4, "four")
}

func TestTCPListenMaxClientsKickOldest(t *testing.T) {
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.MaxClients = 2; s.OnFull = OnFullKickOldest })
	srv := netServe(t, src)
	c1 := netDial(t, "tcp", src.Addr())
	d1 := srv.next(t)
	netDial(t, "tcp", src.Addr())
	srv.next(t)
	c3 := netDial(t, "tcp", src.Addr())
	d3 := srv.next(t)

	// The oldest leg's Read fails with the reason, so the engine drops it,
	// and its client is disconnected.
	err := netReadError(t, d1)
	if err == nil || !strings.Contains(err.Error(), "kick-oldest") {
		t.Fatalf("oldest client's Read = %v, want a kick-oldest error", err)
	}
	if _, err := io.ReadAll(c1); err != nil {
		t.Fatalf("oldest client: %v, want EOF", err)
	}
	netWrite(t, c3, "newest")
	netReadString(t, d3, "newest")
	if st := src.Stats(); st.Kicked != 1 || st.Clients != 2 || st.Accepted != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPListenAllow(t *testing.T) {
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.Allow = []string{"10.0.0.0/8", "::1/128"} })
	srv := netServe(t, src)
	c := netDial(t, "tcp", src.Addr())
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("client outside the allow list read %q, %v; want an immediate close", b, err)
	}
	netWaitFor(t, "the refusal to be counted", func() bool { return src.Stats().RefusedAllow == 1 })
	srv.none(t)

	// A bare address admits that host.
	open := tcpTestListen(t, func(s *TCPListenSpec) { s.Allow = []string{"127.0.0.1"} })
	srv2 := netServe(t, open)
	c2 := netDial(t, "tcp", open.Addr())
	d2 := srv2.next(t)
	netWrite(t, c2, "allowed")
	netReadString(t, d2, "allowed")
}

func TestTCPListenIdleTimeout(t *testing.T) {
	const idle = time.Second
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.IdleTimeout = chardev.Duration(idle) })
	srv := netServe(t, src)

	quiet := netDial(t, "tcp", src.Addr())
	quietDev := srv.next(t)
	quietErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := quietDev.Read(buf); err != nil {
				quietErr <- err
				return
			}
		}
	}()
	start := time.Now()

	// A client that keeps talking, in either direction, stays.
	busy := netDial(t, "tcp", src.Addr())
	busyDev := srv.next(t)
	for i := range 10 {
		if i%2 == 0 {
			netWrite(t, busy, "k")
			netReadString(t, busyDev, "k")
		} else {
			netWrite(t, busyDev, "o")
			netReadString(t, busy, "o")
		}
		time.Sleep(idle / 5) // pacing the traffic, not synchronisation
	}
	netWrite(t, busy, "still here")
	netReadString(t, busyDev, "still here")

	// The quiet one was closed after the timeout: its leg fails with the
	// reason and the client sees the connection end.
	var err error
	select {
	case err = <-quietErr:
	case <-time.After(netTestTimeout):
		t.Fatal("quiet client never closed")
	}
	if err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("quiet client's Read = %v, want an idle error", err)
	}
	if el := time.Since(start); el < idle/2 {
		t.Fatalf("closed after %s, before the %s timeout", el, idle)
	}
	if _, err := io.ReadAll(quiet); err != nil {
		t.Fatalf("quiet client: %v, want EOF", err)
	}
	if st := src.Stats(); st.IdleClosed != 1 {
		t.Fatalf("stats %+v, want one idle close", st)
	}
}

// TestTCPListenCloseKeepsClients: closing the source stops new clients
// but the accepted ones keep working.
func TestTCPListenCloseKeepsClients(t *testing.T) {
	src := tcpTestListen(t, nil)
	srv := netServe(t, src)
	c := netDial(t, "tcp", src.Addr())
	dev := srv.next(t)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	<-srv.done // the accept loop ended with net.ErrClosed (checked by netServe)
	if _, err := src.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", src.Addr(), netTestTimeout); err == nil {
		t.Fatal("dial after Close succeeded")
	}
	netWrite(t, c, "still")
	netReadString(t, dev, "still")
	netWrite(t, dev, "here")
	netReadString(t, c, "here")
}

// TestTCPListenDeviceClose: Close from another goroutine ends a blocked
// Read, and is idempotent.
func TestTCPListenDeviceClose(t *testing.T) {
	src := tcpTestListen(t, nil)
	srv := netServe(t, src)
	netDial(t, "tcp", src.Addr())
	dev := srv.next(t)
	errc := make(chan error, 1)
	go func() {
		_, err := dev.Read(make([]byte, 10))
		errc <- err
	}()
	// Make sure the Read is underway before closing.
	netWaitFor(t, "the reader to block", func() bool {
		buf := make([]byte, 1<<16)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*NetClient).Read")
	})
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Read after Close returned no error")
		}
	case <-time.After(netTestTimeout):
		t.Fatal("Read did not return after Close")
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	netWaitFor(t, "the client to be forgotten", func() bool { return src.Stats().Clients == 0 })
}

func TestTCPListenTLS(t *testing.T) {
	pki := netNewPKI(t)
	src := tcpTestListen(t, func(s *TCPListenSpec) {
		s.TLS = &NetServerTLS{Cert: pki.ServerCert, Key: pki.ServerKey, ClientCA: pki.CA}
		s.Banner = "tls banner\n"
	})
	srv := netServe(t, src)

	// The server side handshakes on the leg's first Read or Write, as
	// the engine's reader starts it, so the clients handshake meanwhile.
	handshake := func(c *tls.Conn) <-chan error {
		errc := make(chan error, 1)
		go func() { errc <- c.Handshake() }()
		return errc
	}
	good := tls.Client(netDial(t, "tcp", src.Addr()), pki.clientConfig(t, true))
	goodHS := handshake(good)
	dev := srv.next(t)
	netWrite(t, dev, "secret")
	if err := <-goodHS; err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	netReadString(t, good, "tls banner\nsecret")
	netWrite(t, good, "typed")
	netReadString(t, dev, "typed")
	if st := good.ConnectionState(); !st.HandshakeComplete || st.PeerCertificates[0].Subject.CommonName != "server" {
		t.Fatalf("connection state: %+v", st)
	}

	// Without a client certificate the handshake is refused: the leg
	// fails on its first Read and the client gets an error.
	bad := tls.Client(netDial(t, "tcp", src.Addr()), pki.clientConfig(t, false))
	badHS := handshake(bad)
	badDev := srv.next(t)
	if err := netReadError(t, badDev); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Fatalf("leg of the refused client: Read = %v, want a tls handshake error", err)
	}
	err := <-badHS
	if err == nil {
		// TLS 1.3: the server's verdict arrives after the client's side
		// of the handshake completes, on the first read.
		_, err = bad.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatal("client without a certificate was served")
	}
	netWaitFor(t, "the refused client to be forgotten", func() bool { return src.Stats().Clients == 1 })
}

// TestTCPListenFlood: hundreds of connections beyond max_clients are each
// refused, and when they are gone no file descriptor or goroutine is left
// behind.
func TestTCPListenFlood(t *testing.T) {
	const attempts = 400
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.MaxClients = 2 })
	srv := netServe(t, src)
	keep1 := netDial(t, "tcp", src.Addr())
	d1 := srv.next(t)
	netDial(t, "tcp", src.Addr())
	srv.next(t)

	fdsBefore := netFDCount(t)
	goroutinesBefore := runtime.NumGoroutine()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for range work {
				c, err := net.DialTimeout("tcp", src.Addr(), netTestTimeout)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				_ = c.SetDeadline(time.Now().Add(netTestTimeout))
				b, err := io.ReadAll(c)
				_ = c.Close()
				if err != nil || string(b) != netRejectLine {
					mu.Lock()
					failures = append(failures, "read "+string(b)+" "+errString(err))
					mu.Unlock()
				}
			}
		})
	}
	for i := range attempts {
		work <- i
	}
	close(work)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d refusals were not clean, first: %s", len(failures), attempts, failures[0])
	}
	srv.none(t)
	if st := src.Stats(); st.RefusedFull != attempts || st.Clients != 2 {
		t.Fatalf("stats %+v, want %d refused and 2 clients", st, attempts)
	}
	netWaitFor(t, "file descriptors to return to the baseline", func() bool { return netFDCount(t) <= fdsBefore })
	netWaitFor(t, "goroutines to return to the baseline", func() bool { return runtime.NumGoroutine() <= goroutinesBefore })

	// The admitted clients never noticed.
	netWrite(t, keep1, "after the flood")
	netReadString(t, d1, "after the flood")
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestTCPListenTLSFull: a TLS client beyond max_clients is closed without
// the plain-text notice, which would be noise inside TLS.
func TestTCPListenTLSFull(t *testing.T) {
	pki := netNewPKI(t)
	src := tcpTestListen(t, func(s *TCPListenSpec) {
		s.TLS = &NetServerTLS{Cert: pki.ServerCert, Key: pki.ServerKey}
		s.MaxClients = 1
	})
	srv := netServe(t, src)
	first := tls.Client(netDial(t, "tcp", src.Addr()), pki.clientConfig(t, false))
	hs := make(chan error, 1)
	go func() { hs <- first.Handshake() }()
	dev := srv.next(t)
	netWrite(t, dev, "hello") // the server side handshakes on first use
	if err := <-hs; err != nil {
		t.Fatalf("first client: %v", err)
	}
	netReadString(t, first, "hello")

	c := netDial(t, "tcp", src.Addr())
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("second TLS client read %q, %v; want a silent close", b, err)
	}
	if st := src.Stats(); st.RefusedFull != 1 || st.Clients != 1 {
		t.Fatalf("stats %+v, want 1 refused and the first client kept", st)
	}
}

// TestTCPListenTLSPendingHandshakeYields: a connection that never starts
// its TLS handshake does not keep the only slot for the handshake timeout:
// when the listener is full it gives way to the next client, whatever
// on_full says.
func TestTCPListenTLSPendingHandshakeYields(t *testing.T) {
	pki := netNewPKI(t)
	src := tcpTestListen(t, func(s *TCPListenSpec) {
		s.TLS = &NetServerTLS{Cert: pki.ServerCert, Key: pki.ServerKey}
		s.MaxClients = 1
	})
	srv := netServe(t, src)
	silent := netDial(t, "tcp", src.Addr()) // plain TCP, never handshakes
	squatter := srv.next(t)

	good := tls.Client(netDial(t, "tcp", src.Addr()), pki.clientConfig(t, false))
	hs := make(chan error, 1)
	go func() { hs <- good.Handshake() }()
	dev := srv.next(t)
	netWrite(t, dev, "served")
	if err := <-hs; err != nil {
		t.Fatalf("client after the silent one: %v", err)
	}
	netReadString(t, good, "served")
	if err := netReadError(t, squatter); err == nil || !strings.Contains(err.Error(), "handshake was still pending") {
		t.Fatalf("the silent client's leg: Read = %v, want it closed for its pending handshake", err)
	}
	if b, _ := io.ReadAll(silent); len(b) != 0 {
		t.Fatalf("the silent client read %q", b)
	}
	if st := src.Stats(); st.Clients != 1 || st.RefusedFull != 0 {
		t.Fatalf("stats %+v, want 1 client and none refused", st)
	}
}

// TestTCPListenEscape: with an escape key, a client's commands are
// answered to that client through the tee's Control, and the key typed
// twice is passed on as data.
// tcpTestClient connects to src as a client of protocol proto would: a
// telnet client device for telnet, a plain connection for raw.
func tcpTestClient(t *testing.T, src *NetSource, proto string) io.ReadWriter {
	t.Helper()
	if proto == ProtocolTelnet {
		return tcpTestConnect(t, func(s *TCPConnectSpec) { s.Address = src.Addr(); s.Protocol = ProtocolTelnet })
	}
	return netDial(t, "tcp", src.Addr())
}

func TestTCPListenEscape(t *testing.T) {
	for _, proto := range []string{ProtocolRaw, ProtocolTelnet} {
		t.Run(proto, func(t *testing.T) {
			src := tcpTestListen(t, func(s *TCPListenSpec) { s.Escape = "^]"; s.Protocol = proto })
			srv := netServe(t, src)
			client := tcpTestClient(t, src, proto)
			leg := srv.next(t)
			ctl := &netFakeControl{}
			leg.(chardev.ControlAware).SetControl(ctl)
			pump := netStartPump(t, leg)
			// Let telnet's option negotiation finish before any CR is
			// sent (see TestTCPTelnetEndToEnd).
			if _, err := leg.Write([]byte("ready")); err != nil {
				t.Fatal(err)
			}
			netReadString(t, client, "ready")

			netWrite(t, client, "a\x1d\x1db\x1dsc")
			pump.waitFor(t, "a\x1db")
			netReadString(t, client, "\r\n[chartee] fake tee\r\n")
			pump.waitFor(t, "a\x1dbc")
			netWrite(t, client, "\x1db")
			netWaitFor(t, "the break", func() bool { return ctl.snapshot().breaks == 1 })
		})
	}
	spec := NewTCPListenSpec()
	spec.Listen = "127.0.0.1:1"
	spec.Escape = "x"
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "escape") {
		t.Fatalf("escape \"x\": %v, want an escape error", err)
	}
}
