package backends

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/chardev"
)

// netTestPeer is a plain server for connecting types to reach: it hands
// out the connections it accepts.
type netTestPeer struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
}

func netListenPeer(t *testing.T, ln net.Listener) *netTestPeer {
	t.Helper()
	p := &netTestPeer{ln: ln, conns: make(chan net.Conn, 16), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(netTestTimeout))
			if tc, ok := c.(*tls.Conn); ok {
				// Serve the handshake now: the dialer waits for it.
				if err := tc.Handshake(); err != nil {
					_ = c.Close()
					continue
				}
			}
			p.conns <- c
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// stop closes the listener and every connection it accepted.
func (p *netTestPeer) stop() {
	_ = p.ln.Close()
	<-p.done
	for {
		select {
		case c := <-p.conns:
			_ = c.Close()
		default:
			return
		}
	}
}

func (p *netTestPeer) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-p.conns:
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(netTestTimeout):
		t.Fatal("timed out waiting for the device to connect")
		return nil
	}
}

func tcpTestPeer(t *testing.T, addr string) *netTestPeer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return netListenPeer(t, ln)
}

func tcpTestConnect(t *testing.T, edit func(*TCPConnectSpec)) chardev.Chardev {
	t.Helper()
	spec := NewTCPConnectSpec()
	if edit != nil {
		edit(spec)
	}
	dev, err := tcpConnect(context.Background(), spec)
	if err != nil {
		t.Fatalf("tcp-connect: %v", err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	return dev
}

func TestTCPConnectValidate(t *testing.T) {
	cases := []struct {
		name, want string
		edit       func(*TCPConnectSpec)
	}{
		{"missing address", "address: required", func(s *TCPConnectSpec) { s.Address = "" }},
		{"no port", "address", func(s *TCPConnectSpec) { s.Address = "example.com" }},
		{"bad protocol", "protocol", func(s *TCPConnectSpec) { s.Protocol = "http" }},
		{"tls cert without key", "tls: key", func(s *TCPConnectSpec) { s.TLS = &NetClientTLS{Cert: "c.pem"} }},
		{"reconnect max below initial", "reconnect: max", func(s *TCPConnectSpec) {
			s.Reconnect = &NetReconnect{Initial: chardev.Duration(time.Second), Max: chardev.Duration(time.Millisecond)}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := NewTCPConnectSpec()
			spec.Address = "127.0.0.1:5000"
			c.edit(spec)
			err := spec.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
			if _, err := tcpConnect(context.Background(), spec); err == nil || !strings.HasPrefix(err.Error(), "tcp-connect: ") {
				t.Fatalf("Open = %v, want a tcp-connect error", err)
			}
		})
	}
}

func TestTCPConnectRegistry(t *testing.T) {
	peer := tcpTestPeer(t, "127.0.0.1:0")
	f, err := chardev.Lookup("tcp-connect")
	if err != nil {
		t.Fatal(err)
	}
	if f.Open == nil || !f.Input {
		t.Fatal("tcp-connect must be an input single-stream type")
	}
	spec := f.NewSpec().(*TCPConnectSpec)
	spec.Address = peer.ln.Addr().String()
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	srv := peer.next(t)
	netWrite(t, dev, "to the server")
	netReadString(t, srv, "to the server")
	netWrite(t, srv, "to chartee")
	netReadString(t, dev, "to chartee")
	if d := chardev.Describe(dev); d != "tcp-connect "+spec.Address {
		t.Errorf("Describe() = %q", d)
	}
	if _, ok := dev.(chardev.LineController); ok {
		t.Error("a raw connection must not claim line settings")
	}
}

func TestTCPConnectRefused(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	spec := NewTCPConnectSpec()
	spec.Address = addr
	spec.Reconnect = &NetReconnect{}
	_, err = tcpConnect(context.Background(), spec)
	if err == nil || !strings.HasPrefix(err.Error(), "tcp-connect: ") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Open to a closed port = %v, want a tcp-connect connection refused error", err)
	}
}

// TestTCPConnectNoReconnect: without reconnect, the server going away
// fails the device for good.
func TestTCPConnectNoReconnect(t *testing.T) {
	peer := tcpTestPeer(t, "127.0.0.1:0")
	dev := tcpTestConnect(t, func(s *TCPConnectSpec) { s.Address = peer.ln.Addr().String() })
	srv := peer.next(t)
	_ = srv.Close()
	err := netReadError(t, dev)
	if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "tcp-connect") {
		t.Fatalf("Read after the server left = %v, want a tcp-connect error wrapping io.EOF", err)
	}
	if _, err := dev.Write([]byte("x")); err == nil {
		t.Fatal("Write on a failed device succeeded")
	}
}

// TestTCPConnectReconnect: the server restarts on the same port; the
// device redials with backoff, Read and Write wait meanwhile, and bytes
// written during and after the outage arrive on the new connection.
func TestTCPConnectReconnect(t *testing.T) {
	peer := tcpTestPeer(t, "127.0.0.1:0")
	addr := peer.ln.Addr().String()
	dev := tcpTestConnect(t, func(s *TCPConnectSpec) {
		s.Address = addr
		s.Reconnect = &NetReconnect{Initial: chardev.Duration(10 * time.Millisecond), Max: chardev.Duration(100 * time.Millisecond)}
	})
	srv := peer.next(t)
	netWrite(t, dev, "before")
	netReadString(t, srv, "before")

	// A reader is waiting, as the engine's always is.
	readc := netReadOnce(dev)

	// The server goes away.
	peer.stop()
	_ = srv.Close()
	netWaitFor(t, "the device to notice and redial", func() bool {
		return strings.Contains(chardev.Describe(dev), "reconnecting")
	})

	// A write during the outage waits for the new connection.
	wrote := make(chan error, 1)
	go func() {
		_, err := dev.Write([]byte("during"))
		wrote <- err
	}()

	// Same port again; the device's next dial gets through.
	peer2 := tcpTestPeer(t, addr)
	srv2 := peer2.next(t)
	netReadString(t, srv2, "during")
	if err := <-wrote; err != nil {
		t.Fatalf("write during the outage: %v", err)
	}
	netWrite(t, dev, "after")
	netReadString(t, srv2, "after")
	netWrite(t, srv2, "back")
	select {
	case got := <-readc:
		if got != "back" {
			t.Fatalf("the waiting Read got %q, want %q", got, "back")
		}
	case <-time.After(netTestTimeout):
		t.Fatal("the waiting Read never returned")
	}
	if d := chardev.Describe(dev); strings.Contains(d, "reconnecting") {
		t.Fatalf("Describe() = %q after reconnecting", d)
	}
}

// TestTCPConnectCloseWhileReconnecting: Close ends a Read and a Write that
// wait for a connection, and stops the redial loop (goleak checks).
func TestTCPConnectCloseWhileReconnecting(t *testing.T) {
	peer := tcpTestPeer(t, "127.0.0.1:0")
	spec := NewTCPConnectSpec()
	spec.Address = peer.ln.Addr().String()
	spec.Reconnect = &NetReconnect{Initial: chardev.Duration(5 * time.Millisecond), Max: chardev.Duration(20 * time.Millisecond)}
	dev, err := tcpConnect(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	srv := peer.next(t)
	peer.stop()
	_ = srv.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { _, err := dev.Read(make([]byte, 8)); errs <- err })
	wg.Go(func() {
		// The first write may land in the dying connection's buffer;
		// keep writing until one waits and is ended by Close.
		for {
			if _, err := dev.Write([]byte("x")); err != nil {
				errs <- err
				return
			}
		}
	})
	netWaitFor(t, "the device to be reconnecting", func() bool {
		return strings.Contains(chardev.Describe(dev), "reconnecting")
	})
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("after Close: %v, want net.ErrClosed", err)
		}
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestTCPConnectTLS(t *testing.T) {
	pki := netNewPKI(t)
	serverCert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	peer := netListenPeer(t, ln)
	dev := tcpTestConnect(t, func(s *TCPConnectSpec) {
		s.Address = ln.Addr().String()
		s.TLS = &NetClientTLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	})
	srv := peer.next(t)
	netWrite(t, dev, "over tls")
	netReadString(t, srv, "over tls")
	if st := srv.(*tls.Conn).ConnectionState(); len(st.PeerCertificates) != 1 || st.PeerCertificates[0].Subject.CommonName != "client" {
		t.Fatalf("server saw client certificates %v", st.PeerCertificates)
	}
	netWrite(t, srv, "back")
	netReadString(t, dev, "back")

	// A server name that is not in the certificate is refused at Open.
	spec := NewTCPConnectSpec()
	spec.Address = ln.Addr().String()
	spec.TLS = &NetClientTLS{CA: pki.CA, ServerName: "not-this-host", Cert: pki.ClientCert, Key: pki.ClientKey}
	if _, err := tcpConnect(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong server_name: %v, want a certificate error", err)
	}
}

// TestTCPTelnetEndToEnd: a telnet tcp-connect talks to a telnet
// tcp-listen; the banner arrives, and every byte value, IAC included,
// crosses both ways unharmed.
func TestTCPTelnetEndToEnd(t *testing.T) {
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.Protocol = ProtocolTelnet; s.Banner = "telnet banner\r\n" })
	srv := netServe(t, src)
	dev := tcpTestConnect(t, func(s *TCPConnectSpec) { s.Address = src.Addr(); s.Protocol = ProtocolTelnet })
	leg := srv.next(t)
	pump := netStartPump(t, leg)

	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	// Binary mode is negotiated as the connection starts; data sent
	// before both sides have agreed may be CR NUL stuffed (RFC 854). Once
	// the client has read something its greeting is out, and once the
	// leg has read what the client typed after that, the server has the
	// client's answer too.
	if _, err := leg.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	netReadString(t, dev, "telnet banner\r\nhello")
	netWrite(t, dev, "\xff\xff typed \xff\r\n")
	pump.waitFor(t, "\xff\xff typed \xff\r\n")
	if _, err := leg.Write(all); err != nil {
		t.Fatal(err)
	}
	netReadString(t, dev, string(all))
	if _, ok := dev.(chardev.LineController); ok {
		t.Error("plain telnet must not claim line settings")
	}
}

// TestTCPRFC2217EndToEnd: an rfc2217 tcp-connect drives a tcp-listen
// rfc2217 leg: line settings, modem lines and break reach the tee's
// Control when the leg has control, and not when it has not.
func TestTCPRFC2217EndToEnd(t *testing.T) {
	for _, control := range []bool{true, false} {
		t.Run(map[bool]string{true: "control", false: "no control"}[control], func(t *testing.T) {
			src := tcpTestListen(t, func(s *TCPListenSpec) { s.Protocol = ProtocolRFC2217; s.Control = control })
			srv := netServe(t, src)
			dev := tcpTestConnect(t, func(s *TCPConnectSpec) { s.Address = src.Addr(); s.Protocol = ProtocolRFC2217 })
			leg := srv.next(t)
			ctl := &netFakeControl{netControlRecord: netControlRecord{line: chardev.LineSettings{Baud: 115200, DataBits: 8}}}
			leg.(chardev.ControlAware).SetControl(ctl)
			pump := netStartPump(t, leg)

			serial, ok := dev.(*NetSerialConn)
			if !ok {
				t.Fatalf("rfc2217 device is %T, want *NetSerialConn", dev)
			}
			want := chardev.LineSettings{Baud: 9600, DataBits: 7, Parity: chardev.ParityEven, StopBits: chardev.StopBits2}
			err := serial.SetLineSettings(want)
			if control && err != nil {
				t.Fatalf("SetLineSettings: %v", err)
			}
			_ = serial.SetDTR(false)
			_ = serial.Break(10 * time.Millisecond)

			netWrite(t, dev, "data after control")
			pump.waitFor(t, "data after control")
			got := ctl.snapshot()
			if control {
				if len(got.sets) == 0 || got.line.Baud != 9600 || got.line.DataBits != 7 ||
					got.line.Parity != chardev.ParityEven || got.line.StopBits != chardev.StopBits2 {
					t.Fatalf("tee line %v after %d sets, want %v", got.line, len(got.sets), want)
				}
				if len(got.dtr) == 0 || got.dtr[len(got.dtr)-1] {
					t.Fatalf("DTR requests %v, want a final false", got.dtr)
				}
				if got.breaks != 1 {
					t.Fatalf("%d breaks, want 1", got.breaks)
				}
				line, err := serial.LineSettings()
				if err != nil || line.Baud != 9600 {
					t.Fatalf("LineSettings() = %v, %v", line, err)
				}
			} else {
				if len(got.sets) != 0 || len(got.dtr) != 0 || got.breaks != 0 || got.line.Baud != 115200 {
					t.Fatalf("a leg without control changed the tee: line %v sets %v dtr %v breaks %d", got.line, got.sets, got.dtr, got.breaks)
				}
			}
			if _, err := leg.Write([]byte("console output")); err != nil {
				t.Fatal(err)
			}
			netReadString(t, dev, "console output")
		})
	}
}

// TestTCPRFC2217Replay: line settings and modem lines set on an rfc2217
// device are applied again to the connection made after a loss.
func TestTCPRFC2217Replay(t *testing.T) {
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.Protocol = ProtocolRFC2217; s.Control = true })
	srv := netServe(t, src)
	dev := tcpTestConnect(t, func(s *TCPConnectSpec) {
		s.Address = src.Addr()
		s.Protocol = ProtocolRFC2217
		s.Reconnect = &NetReconnect{Initial: chardev.Duration(10 * time.Millisecond), Max: chardev.Duration(50 * time.Millisecond)}
	})
	serial := dev.(*NetSerialConn)
	devPump := netStartPump(t, dev)

	leg := srv.next(t)
	first := &netFakeControl{}
	leg.(chardev.ControlAware).SetControl(first)
	netStartPump(t, leg)
	want := chardev.LineSettings{Baud: 19200, DataBits: 8, Parity: chardev.ParityOdd}
	if err := serial.SetLineSettings(want); err != nil {
		t.Fatal(err)
	}
	if err := serial.SetRTS(false); err != nil {
		t.Fatal(err)
	}

	// The server drops the connection; the device redials and the new
	// leg is told the same settings without anyone asking again.
	_ = leg.Close()
	second := &netFakeControl{}
	leg2 := srv.next(t)
	leg2.(chardev.ControlAware).SetControl(second)
	netStartPump(t, leg2)
	netWaitFor(t, "the settings to be replayed", func() bool {
		r := second.snapshot()
		return r.line.Baud == want.Baud && r.line.Parity == want.Parity && len(r.rts) > 0 && !r.rts[len(r.rts)-1]
	})
	if _, err := leg2.Write([]byte("after replay")); err != nil {
		t.Fatal(err)
	}
	devPump.waitFor(t, "after replay")
}

// TestTCPTelnetBreak: a plain telnet tcp-connect (no RFC 2217) sends a
// break as IAC BREAK, which a telnet console server (QEMU's telnet
// chardev) turns into a break on its serial line.
func TestTCPTelnetBreak(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		var all []byte
		buf := make([]byte, 256)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for !bytes.Contains(all, []byte{0xff, 0xf3}) {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- all
	}()
	dev := tcpTestConnect(t, func(s *TCPConnectSpec) { s.Address = ln.Addr().String(); s.Protocol = ProtocolTelnet })
	if err := chardev.SendBreak(dev, 250*time.Millisecond); err != nil {
		t.Fatalf("break on a telnet connection: %v", err)
	}
	if b := <-got; !bytes.Contains(b, []byte{0xff, 0xf3}) {
		t.Fatalf("the server got %q, no IAC BREAK", b)
	}
	raw := tcpTestConnect(t, func(s *TCPConnectSpec) { s.Address = ln.Addr().String() })
	if err := chardev.SendBreak(raw, time.Millisecond); !chardev.IsUnsupported(err) {
		t.Fatalf("break on a raw connection: %v, want unsupported", err)
	}
}
