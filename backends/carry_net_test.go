package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"chartee/backends/telnet"
	"chartee/chardev"
)

// These tests hand live telnet and RFC 2217 connections over real
// loopback sockets from one set of devices to a new one, as a chartee
// upgrade does between two processes, and check the peer sees nothing:
// no new negotiation, no second banner, no lost or doubled byte.

// cutReader reads a device as the engine's leg reader does, and parks
// when the device is frozen, until told to resume.
type cutReader struct {
	mu     sync.Mutex
	got    []byte
	err    error
	frozen chan struct{}
	resume chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

func startCutReader(t *testing.T, dev chardev.Chardev) *cutReader {
	t.Helper()
	r := &cutReader{frozen: make(chan struct{}), resume: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 1024)
		for {
			n, err := dev.Read(buf)
			r.mu.Lock()
			r.got = append(r.got, buf[:n]...)
			if err != nil && !errors.Is(err, chardev.ErrFrozen) {
				r.err = err
			}
			r.mu.Unlock()
			if errors.Is(err, chardev.ErrFrozen) {
				select {
				case r.frozen <- struct{}{}:
				case <-r.stop:
					return
				}
				select {
				case <-r.resume:
					continue
				case <-r.stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(r.stop)
		_ = dev.Close()
		<-r.done
	})
	return r
}

func (r *cutReader) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.got)
}

func (r *cutReader) waitFor(t *testing.T, want string) {
	t.Helper()
	netWaitFor(t, "the device to read "+quoteBytes(want), func() bool { return r.text() == want })
}

func quoteBytes(s string) string { b, _ := json.Marshal(s); return string(b) }

// cutWhen freezes dev and carries it until ok accepts what was carried
// (the cut fell where the test wants it); other cuts are rolled back.
func cutWhen(t *testing.T, dev chardev.Chardev, r *cutReader, ok func(chardev.Carried) bool) chardev.Carried {
	t.Helper()
	deadline := time.Now().Add(netTestTimeout)
	for {
		if err := chardev.Freeze(dev); err != nil {
			t.Fatalf("freeze: %v", err)
		}
		select {
		case <-r.frozen:
		case <-time.After(netTestTimeout):
			t.Fatal("the reader did not stop at the cut")
		}
		c, err := dev.(chardev.Carrier).Carry()
		if err != nil {
			t.Fatalf("carry: %v", err)
		}
		if ok(c) {
			return c
		}
		for _, f := range c.Files {
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cut never fell where wanted; last state %s", c.State)
		}
		chardev.Thaw(dev)
		r.resume <- struct{}{}
		time.Sleep(time.Millisecond)
	}
}

// acceptOne accepts one client, without an accept loop left running
// (Freeze would stop it).
func acceptOne(t *testing.T, src chardev.Source) chardev.Chardev {
	t.Helper()
	t.Cleanup(func() { src.Close() })
	dev, err := src.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

// recPeer is the far end of a connection, recording what it receives.
type recPeer struct {
	conn net.Conn
	mu   sync.Mutex
	got  []byte
	done chan struct{}
}

func startRecPeer(t *testing.T, conn net.Conn) *recPeer {
	p := &recPeer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			p.mu.Lock()
			p.got = append(p.got, buf[:n]...)
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-p.done })
	return p
}

func (p *recPeer) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.got)
}

func (p *recPeer) waitFor(t *testing.T, what string, cond func([]byte) bool) {
	t.Helper()
	netWaitFor(t, what, func() bool { return cond(p.bytes()) })
}

func (p *recPeer) send(t *testing.T, b ...[]byte) {
	t.Helper()
	if _, err := p.conn.Write(bytes.Join(b, nil)); err != nil {
		t.Fatal(err)
	}
}

func iac(b ...byte) []byte { return append([]byte{telnet.IAC}, b...) }

// hasNegotiation reports IAC WILL/WONT/DO/DONT in b (IAC IAC skipped).
func hasNegotiation(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == telnet.IAC {
			if b[i+1] >= telnet.WILL && b[i+1] <= telnet.DONT {
				return true
			}
			i++
		}
	}
	return false
}

func clientCarry(t *testing.T, c chardev.Carried) netClientCarry {
	t.Helper()
	cc, err := parseNetClientState(c.State)
	if err != nil {
		t.Fatalf("state %s: %v", c.State, err)
	}
	return cc
}

// handOver carries src and adopts the client carried in c into a new
// source built from spec, closing the old devices as an exiting process
// would: the sockets stay open through the new process's duplicates.
func handOver(t *testing.T, spec *TCPListenSpec, src *NetSource, old chardev.Chardev, c chardev.Carried) (*NetSource, chardev.Chardev) {
	t.Helper()
	if err := src.Freeze(); err != nil {
		t.Fatal(err)
	}
	sc, err := src.Carry()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := tcpInheritListen(spec, sc)
	if err != nil {
		t.Fatal(err)
	}
	src2 := ns.(*NetSource)
	t.Cleanup(func() { src2.Close() })
	dev, err := src2.Adopt(c)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	src.Close()
	return src2, dev
}

// TestCarryTelnetClient: a telnet client with the escape key is carried
// three times, the cuts falling after a typed escape key, inside a
// subnegotiation and after a lone IAC; it reads on exactly, and it sees
// no option request and no banner again.
func TestCarryTelnetClient(t *testing.T) {
	spec := NewTCPListenSpec()
	spec.Listen, spec.Protocol, spec.Banner = "127.0.0.1:0", ProtocolTelnet, "welcome\r\n"
	src, err := tcpListen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	peer := startRecPeer(t, netDial(t, "tcp", src.Addr()))
	dev := acceptOne(t, src)
	r := startCutReader(t, dev)
	peer.waitFor(t, "the greeting", func(b []byte) bool { return bytes.HasSuffix(b, []byte("welcome\r\n")) })
	// Answer like telnet(1) in character mode, then type.
	peer.send(t, iac(telnet.DO, telnet.OptEcho), iac(telnet.DO, telnet.OptSGA), iac(telnet.WILL, telnet.OptSGA),
		iac(telnet.DO, telnet.OptBinary), iac(telnet.WILL, telnet.OptBinary), []byte("hello"))
	r.waitFor(t, "hello")
	greeting := len(peer.bytes())

	// Cut 1: the escape key typed, its command key not yet.
	peer.send(t, []byte("one\x05"))
	c := cutWhen(t, dev, r, func(c chardev.Carried) bool {
		cc := clientCarry(t, c)
		return cc.escape != nil && cc.escape.Armed
	})
	cc := clientCarry(t, c)
	if cc.telnet == nil || !cc.telnet.Greeted || len(cc.telnet.Negotiation.Options) == 0 {
		t.Fatalf("carried telnet state %+v", cc.telnet)
	}
	src2, dev2 := handOver(t, spec, src.(*NetSource), dev, c)
	r2 := startCutReader(t, dev2)
	peer.send(t, []byte("?"))
	peer.waitFor(t, "the escape help", func(b []byte) bool { return bytes.Contains(b, []byte("[chartee] escape commands")) })

	// Cut 2: inside a subnegotiation of an option chartee refused.
	peer.send(t, []byte("two"), iac(telnet.SB, 24), []byte("ab"))
	c = cutWhen(t, dev2, r2, func(c chardev.Carried) bool { return clientCarry(t, c).telnet.Decoder.At == "sb" })
	src3, dev3 := handOver(t, spec, src2, dev2, c)
	r3 := startCutReader(t, dev3)
	peer.send(t, []byte("c"), iac(telnet.SE), []byte("three"))
	// Cut 3: after a lone IAC, which the next byte makes data.
	peer.send(t, []byte("four\xff"))
	c = cutWhen(t, dev3, r3, func(c chardev.Carried) bool { return clientCarry(t, c).telnet.Decoder.At == "iac" })
	_, dev4 := handOver(t, spec, src3, dev3, c)
	r4 := startCutReader(t, dev4)
	peer.send(t, []byte("\xfffive"))

	r4.waitFor(t, "\xfffive")
	got := r.text() + r2.text() + r3.text() + r4.text()
	if want := "helloone" + "twothree" + "four" + "\xfffive"; got != want {
		t.Fatalf("the devices read %q, want %q", got, want)
	}
	if _, err := dev4.Write([]byte("out\xff\r\n")); err != nil {
		t.Fatal(err)
	}
	peer.waitFor(t, "output", func(b []byte) bool { return bytes.HasSuffix(b, []byte("out\xff\xff\r\n")) })
	after := peer.bytes()[greeting:]
	if hasNegotiation(after) || bytes.Contains(after, []byte("welcome")) {
		t.Fatalf("after the greeting the client got %q: negotiation or banner again", after)
	}
	if k := dev4.(chardev.Escaper).EscapeKey(); k != "^E" {
		t.Errorf("escape key %q", k)
	}
}

// TestCarryRFC2217Client: an RFC 2217 client's COM-PORT-OPTION state
// (signature, masks, told line, suspended flow) survives the handover,
// a cut inside a SET-DATASIZE request completes in the new device, and
// the client gets nothing but the answer to it.
func TestCarryRFC2217Client(t *testing.T) {
	spec := NewTCPListenSpec()
	spec.Listen, spec.Protocol, spec.Control = "127.0.0.1:0", ProtocolRFC2217, true
	src, err := tcpListen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	peer := startRecPeer(t, netDial(t, "tcp", src.Addr()))
	dev := acceptOne(t, src)
	ctl := &netFakeControl{netControlRecord: netControlRecord{line: chardev.LineSettings{Baud: 9600, DataBits: 8}}}
	dev.(chardev.ControlAware).SetControl(ctl)
	r := startCutReader(t, dev)
	com := func(code byte, v ...byte) []byte {
		return telnet.AppendSubnegotiation(nil, telnet.OptComPort, append([]byte{code}, v...))
	}
	peer.send(t, iac(telnet.WILL, telnet.OptComPort), iac(telnet.DO, telnet.OptBinary), iac(telnet.WILL, telnet.OptBinary),
		com(telnet.ComSignature, []byte("pyserial")...), com(telnet.ComSetLineStateMask, 0x12),
		com(telnet.ComSetModemStateMask, 0x30), com(telnet.ComSetBaudRate, 0, 0, 0x4b, 0),
		com(telnet.ComFlowSuspend), []byte("data"))
	r.waitFor(t, "data")
	peer.waitFor(t, "the answers", func(b []byte) bool {
		return bytes.HasSuffix(b, com(telnet.ComSetBaudRate+telnet.ServerOffset, 0, 0, 0x4b, 0))
	})
	before := len(peer.bytes())
	peer.send(t, iac(telnet.SB, telnet.OptComPort, telnet.ComSetDataSize))
	c := cutWhen(t, dev, r, func(c chardev.Carried) bool { return clientCarry(t, c).telnet.Decoder.At == "sb" })
	st := clientCarry(t, c).telnet
	if st.PeerSignature != "pyserial" || st.LineMask != 0x12 || st.ModemMask != 0x30 || !st.Suspended ||
		st.Told.Baud != 19200 || st.LastModem < 0 {
		t.Fatalf("carried COM-PORT state %+v", st)
	}
	_, dev2 := handOver(t, spec, src.(*NetSource), dev, c)
	dev2.(chardev.ControlAware).SetControl(ctl)
	r2 := startCutReader(t, dev2)
	peer.send(t, []byte{7}, iac(telnet.SE))
	answer := com(telnet.ComSetDataSize+telnet.ServerOffset, 7)
	peer.waitFor(t, "the SET-DATASIZE answer", func(b []byte) bool { return bytes.HasSuffix(b, answer) })
	if after := peer.bytes()[before:]; !bytes.Equal(after, answer) {
		t.Fatalf("after the cut the client got %q, want only %q", after, answer)
	}
	// What the new device would carry on is what the old one carried.
	c2 := cutWhen(t, dev2, r2, func(chardev.Carried) bool { return true })
	st2 := clientCarry(t, c2).telnet
	for _, f := range c2.Files {
		f.Close()
	}
	st.Decoder, st2.Decoder, st.BreakHeld, st2.BreakHeld = telnet.DecoderState{}, telnet.DecoderState{}, nil, nil
	st.Told.DataSize = 7
	if a, b := mustJSON(t, st), mustJSON(t, st2); a != b {
		t.Fatalf("state after the handover\n%s\nwant\n%s", b, a)
	}
	if got := ctl.snapshot().sets; len(got) != 2 || got[1].DataBits != 7 {
		t.Errorf("line changes %+v, want the baud rate then the data size", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// recConn records what the far end of a connection receives.
type recConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got = append(c.got, p[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *recConn) received() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.got)
}

// portServer is an RFC 2217 port server (package telnet's own server
// side, as ser2net would be) for one connection, recording what chartee
// sends it and what it reads as data.
type portServer struct {
	ln   net.Listener
	ctl  *netFakeControl
	raw  net.Conn
	rec  *recConn
	srv  *telnet.ServerConn
	data *cutReader
}

func startPortServer(t *testing.T, network, addr string) *portServer {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &portServer{ln: ln, ctl: &netFakeControl{netControlRecord: netControlRecord{line: chardev.LineSettings{Baud: 9600, DataBits: 8}}}}
}

// accept takes chartee's connection; there must be exactly one.
func (p *portServer) accept(t *testing.T, rfc2217 bool) {
	t.Helper()
	c, err := p.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p.raw, p.rec = c, &recConn{Conn: c}
	p.srv = telnet.NewServer(p.rec, telnet.Config{RFC2217: rfc2217, Control: true})
	p.srv.SetControl(p.ctl)
	p.data = startCutReader(t, p.srv)
}

// TestCarryTelnetConnections: tcp-connect speaking rfc2217 and
// unix-connect speaking telnet are carried with a cut after a lone IAC
// from the server; the new device reads on exactly, knows the line
// settings without asking, sends nothing when the engine replays them,
// and the server sees no new negotiation and no reconnection.
func TestCarryTelnetConnections(t *testing.T) {
	for _, tc := range []struct {
		typ, protocol string
	}{
		{"tcp-connect", ProtocolRFC2217},
		{"unix-connect", ProtocolTelnet},
	} {
		t.Run(tc.typ+"/"+tc.protocol, func(t *testing.T) {
			rfc2217 := tc.protocol == ProtocolRFC2217
			var (
				ps      *portServer
				spec    chardev.Spec
				open    func(context.Context, chardev.Spec) (chardev.Chardev, error)
				inherit func(chardev.Spec, chardev.Carried) (chardev.Chardev, error)
			)
			if tc.typ == "tcp-connect" {
				ps = startPortServer(t, "tcp", "127.0.0.1:0")
				s := NewTCPConnectSpec()
				s.Address, s.Protocol = ps.ln.Addr().String(), tc.protocol
				spec, open, inherit = s, tcpConnect, tcpInherit
			} else {
				ps = startPortServer(t, "unix", t.TempDir()+"/port.sock")
				s := NewUnixConnectSpec()
				s.Path, s.Protocol = ps.ln.Addr().String(), tc.protocol
				spec, open, inherit = s, unixConnect, unixInherit
			}
			dev, err := open(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			ps.accept(t, rfc2217)
			r := startCutReader(t, dev)
			line := chardev.LineSettings{Baud: 19200, DataBits: 7, Parity: chardev.ParityEven, StopBits: chardev.StopBits1}
			on, off := true, false
			if rfc2217 {
				if err := chardev.SetLineSettings(dev, line); err != nil {
					t.Fatal(err)
				}
				if err := chardev.SetModemLines(dev, &on, &off); err != nil {
					t.Fatal(err)
				}
			}
			// The server's data, then a lone IAC: the cut falls after it.
			if _, err := ps.srv.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
			r.waitFor(t, "abc")
			if _, err := ps.raw.Write([]byte("d\xff")); err != nil {
				t.Fatal(err)
			}
			c := cutWhen(t, dev, r, func(c chardev.Carried) bool {
				cc, err := parseNetConnState(c.State)
				if err != nil {
					t.Fatalf("state %s: %v", c.State, err)
				}
				return cc.telnet != nil && cc.telnet.Decoder.At == "iac"
			})
			mark := len(ps.rec.received())
			dev2, err := inherit(spec, c)
			if err != nil {
				t.Fatal(err)
			}
			dev.Close() // as the old process exits
			r2 := startCutReader(t, dev2)
			if _, err := ps.raw.Write([]byte("\xffef")); err != nil {
				t.Fatal(err)
			}
			r2.waitFor(t, "\xffef")
			if got := r.text() + r2.text(); got != "abcd\xffef" {
				t.Fatalf("read %q across the handover", got)
			}
			if rfc2217 {
				got, err := dev2.(chardev.LineController).LineSettings()
				if err != nil || got != line {
					t.Fatalf("line after the handover %v, %v; want %v", got, err, line)
				}
				// The engine replays its line state: already in force.
				if err := chardev.SetLineSettings(dev2, line); err != nil {
					t.Fatal(err)
				}
				if err := chardev.SetModemLines(dev2, &on, &off); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := dev2.Write([]byte("typed\xff")); err != nil {
				t.Fatal(err)
			}
			ps.data.waitFor(t, "typed\xff")
			if after := ps.rec.received()[mark:]; !bytes.Equal(after, []byte("typed\xff\xff")) {
				t.Fatalf("after the handover the server got %q, want only the typed data", after)
			}
			if rfc2217 {
				// A real change still goes out, and is answered.
				line.Baud = 38400
				if err := chardev.SetLineSettings(dev2, line); err != nil {
					t.Fatal(err)
				}
				if got := ps.ctl.LineSettings(); got.Baud != 38400 {
					t.Fatalf("server line %v after a change", got)
				}
			}
			// One connection throughout: nothing waits in the backlog.
			ps.ln.(interface{ SetDeadline(time.Time) error }).SetDeadline(time.Now())
			if extra, err := ps.ln.Accept(); err == nil {
				extra.Close()
				t.Fatal("chartee connected again")
			}
		})
	}
}

// TestCarryStalledTelnetClient: a telnet client that stopped reading in
// the middle of a large write has the write cut (FreezeWrite), wherever
// that falls in an escape; carried to a new device that writes the rest,
// it reads exactly the data, as if nothing happened.
func TestCarryStalledTelnetClient(t *testing.T) {
	spec := NewTCPListenSpec()
	spec.Listen, spec.Protocol = "127.0.0.1:0", ProtocolTelnet
	src, err := tcpListen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	// Small socket buffers, set before the connection exists (shrunk
	// after, they stall it), so a write blocks soon.
	small := func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}
	rc, err := src.(*NetSource).ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := small("", "", rc); err != nil {
		t.Fatal(err)
	}
	peerConn, err := (&net.Dialer{Control: small}).Dial("tcp", src.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer peerConn.Close()
	peerConn.SetDeadline(time.Now().Add(netTestTimeout))
	dev := acceptOne(t, src)
	r := startCutReader(t, dev)
	// An NVT stream (the peer agrees to nothing): IAC doubled, a bare CR
	// sent as CR NUL.
	payload := bytes.Repeat([]byte("ab\xff\r\xffc\r\n\x00"), 1<<17)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := dev.Write(payload)
		done <- result{n, err}
	}()
	// The peer reads a little, then stops: the write blocks.
	first := make([]byte, 1000)
	if _, err := io.ReadFull(peerConn, first); err != nil {
		t.Fatal(err)
	}
	if err := dev.(chardev.WriteFreezer).FreezeWrite(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if !errors.Is(res.err, chardev.ErrFrozen) || res.n >= len(payload) {
		t.Fatalf("cut write: %d of %d bytes, %v; want a cut with ErrFrozen", res.n, len(payload), res.err)
	}
	c := cutWhen(t, dev, r, func(chardev.Carried) bool { return true })
	t.Logf("cut after %d of %d bytes, %d owed on the wire", res.n, len(payload), len(clientCarry(t, c).telnet.OwedWire))
	_, dev2 := handOver(t, spec, src.(*NetSource), dev, c)
	startCutReader(t, dev2)
	// The peer reads everything now, decoding as telnet.
	got := make(chan []byte, 1)
	go func() {
		var d telnet.Decoder
		var data []byte
		for in := first; len(in) > 0; {
			data, in, _ = d.Decode(data, in)
		}
		buf := make([]byte, 64<<10)
		for len(data) < len(payload) {
			n, err := peerConn.Read(buf)
			for in := buf[:n]; len(in) > 0; {
				data, in, _ = d.Decode(data, in)
			}
			if err != nil {
				t.Logf("the client's read: %v", err)
				break
			}
		}
		got <- data
	}()
	// The engine in the new process writes what the old one had not.
	if n, err := dev2.Write(payload[res.n:]); err != nil || n != len(payload)-res.n {
		t.Fatalf("rest: %d, %v", n, err)
	}
	select {
	case data := <-got:
		if !bytes.Equal(data, payload) {
			i := 0
			for i < len(data) && i < len(payload) && data[i] == payload[i] {
				i++
			}
			t.Fatalf("the client read %d bytes, first difference at %d (cut at %d)", len(data), i, res.n)
		}
	case <-time.After(netTestTimeout):
		t.Fatal("the client did not get the rest")
	}
}
