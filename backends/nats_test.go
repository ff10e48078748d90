package backends

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"chartee/chardev"
	"chartee/chardev/memdev"
	"chartee/internal/testaddr"
	"chartee/tee"
)

const natsTestTimeout = 20 * time.Second

// natsTestServer runs a real NATS server in-process on 127.0.0.1.
func natsTestServer(t *testing.T, edit func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:     "127.0.0.1",
		Port:     -1,
		NoLog:    true,
		NoSigs:   true,
		StoreDir: t.TempDir(),
	}
	if edit != nil {
		edit(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(natsTestTimeout) {
		s.Shutdown()
		t.Fatal("nats server did not start")
	}
	t.Cleanup(func() { natsStop(s) })
	return s
}

func natsStop(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// natsTestClient connects a plain client, as a consumer or an operator
// would.
func natsTestClient(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func natsTestSpec(url, subject string) *NATSSpec {
	spec := NewNATSSpec()
	spec.Servers = []string{url}
	spec.Subject = subject
	spec.Appliance = "appliance-1"
	return spec
}

func natsTestOpen(t *testing.T, spec *NATSSpec) *NATSConn {
	t.Helper()
	dev, err := natsOpen(context.Background(), spec)
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	return dev.(*NATSConn)
}

// natsAttach attaches a leg of tt opened from spec and returns its device
// (the engine owns it and closes it with the leg).
func natsAttach(t *testing.T, ctx context.Context, tt *tee.Tee, name string, opts tee.LegOptions, spec *NATSSpec) *NATSConn {
	t.Helper()
	var dev *NATSConn
	if err := tt.Attach(ctx, name, opts, chardev.OpenFunc(func(ctx context.Context) (chardev.Chardev, error) {
		d, err := natsOpen(ctx, spec)
		if err == nil {
			dev = d.(*NATSConn)
		}
		return d, err
	})); err != nil {
		t.Fatal(err)
	}
	return dev
}

func natsWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(natsTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", natsTestTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNATSValidate(t *testing.T) {
	cases := []struct {
		name, want string
		edit       func(*NATSSpec)
	}{
		{"no servers", "servers: required", func(s *NATSSpec) { s.Servers = nil }},
		{"bad scheme", "scheme \"http\"", func(s *NATSSpec) { s.Servers = []string{"http://127.0.0.1:4222"} }},
		{"bad port", "bad port", func(s *NATSSpec) { s.Servers = []string{"nats://127.0.0.1:99999"} }},
		{"wildcard subject", "wildcards", func(s *NATSSpec) { s.Subject = "chartee.*.x" }},
		{"empty token", "empty token", func(s *NATSSpec) { s.Subject = "chartee..x" }},
		{"space in subject", "spaces", func(s *NATSSpec) { s.Subject = "chartee.a b" }},
		{"dotted appliance", "appliance", func(s *NATSSpec) { s.Appliance = "a.b" }},
		{"jetstream without stream", "jetstream: stream: required", func(s *NATSSpec) { s.JetStream = &NATSJetStream{} }},
		{"bad stream name", "jetstream: stream \"A.B\"", func(s *NATSSpec) { s.JetStream = &NATSJetStream{Stream: "A.B"} }},
		{"tls cert without key", "tls: key", func(s *NATSSpec) { s.TLS = &NetClientTLS{Cert: "c.pem"} }},
		{"negative ack timeout", "ack_timeout", func(s *NATSSpec) {
			s.JetStream = &NATSJetStream{Stream: "S", AckTimeout: chardev.Duration(-time.Second)}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := natsTestSpec("nats://127.0.0.1:4222", "chartee.x.y")
			c.edit(spec)
			err := spec.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
			if _, err := natsOpen(context.Background(), spec); err == nil || !strings.HasPrefix(err.Error(), "nats: ") {
				t.Fatalf("Open = %v, want a nats error", err)
			}
		})
	}
	ok := natsTestSpec("127.0.0.1:4222", "chartee.{appliance}.ttyS0")
	if err := ok.Validate(); err != nil {
		t.Fatalf("a bare host:port and {appliance}: %v", err)
	}
	if subj, _ := ok.subject(); subj != "chartee.appliance-1.ttyS0" {
		t.Fatalf("subject = %q", subj)
	}
	ok.Appliance = ""
	if subj, _ := ok.subject(); subj != "chartee."+NATSDefaultAppliance()+".ttyS0" || strings.Contains(NATSDefaultAppliance(), ".") {
		t.Fatalf("default appliance subject = %q", subj)
	}

	// Without a subject the default is chartee.<appliance>.<tee>: judged
	// only once the tee is known (an API body is decoded before), and
	// refused at Open outside a tee.
	def := natsTestSpec("127.0.0.1:4222", "")
	if err := def.Validate(); err != nil {
		t.Fatalf("no subject before SetTee: Validate() = %v, want nil (judged later)", err)
	}
	if _, err := natsOpen(context.Background(), def); err == nil || !strings.Contains(err.Error(), "subject: required outside a tee") {
		t.Fatalf("Open without subject and tee = %v, want subject: required outside a tee", err)
	}
	def.SetTee("console0")
	if err := def.Validate(); err != nil {
		t.Fatalf("default subject: %v", err)
	}
	if subj, _ := def.subject(); subj != "chartee.appliance-1.console0" {
		t.Fatalf("default subject = %q, want chartee.appliance-1.console0", subj)
	}
}

// TestNATSRegistry: the type is registered as a capture-first single
// stream, and a missing creds file is reported at Open.
func TestNATSRegistry(t *testing.T) {
	f, err := chardev.Lookup("nats")
	if err != nil {
		t.Fatal(err)
	}
	if f.Open == nil || f.Listen != nil || f.Input {
		t.Fatal("nats must be a single-stream type without input by default")
	}
	spec := f.NewSpec().(*NATSSpec)
	spec.Servers = []string{"nats://127.0.0.1:1"}
	spec.Subject = "chartee.a.b"
	spec.Creds = t.TempDir() + "/missing.creds"
	if _, err := f.Open(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "creds") {
		t.Fatalf("missing creds: %v", err)
	}
}

// natsCollect subscribes to subj and keeps every message.
type natsCollector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func natsCollect(t *testing.T, nc *nats.Conn, subj string) *natsCollector {
	t.Helper()
	c := &natsCollector{}
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return c
}

func (c *natsCollector) data() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b []byte
	for _, m := range c.msgs {
		b = append(b, m.Data...)
	}
	return b
}

func (c *natsCollector) snapshot() []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*nats.Msg(nil), c.msgs...)
}

// natsCheckHeaders checks that msgs carry contiguous offsets of one
// session and the appliance.
func natsCheckHeaders(t *testing.T, msgs []*nats.Msg, session, appliance string) {
	t.Helper()
	var off uint64
	for i, m := range msgs {
		if got := m.Header.Get(NATSHeaderOffset); got != strconv.FormatUint(off, 10) {
			t.Fatalf("message %d: %s %q, want %d", i, NATSHeaderOffset, got, off)
		}
		if got := m.Header.Get(NATSHeaderSession); got != session {
			t.Fatalf("message %d: %s %q, want %q", i, NATSHeaderSession, got, session)
		}
		if got := m.Header.Get(NATSHeaderAppliance); got != appliance {
			t.Fatalf("message %d: %s %q, want %q", i, NATSHeaderAppliance, got, appliance)
		}
		off += uint64(len(m.Data))
	}
}

// TestNATSCoreOutputAndInput: through the real engine, a frontend's output
// arrives on <subject>.out in order with offset, session and appliance
// headers, and what an operator publishes on <subject>.in reaches the
// frontend.
func TestNATSCoreOutputAndInput(t *testing.T) {
	srv := natsTestServer(t, nil)
	nc := natsTestClient(t, srv.ClientURL())
	out := natsCollect(t, nc, "chartee.appliance-1.ttyS0.out")

	front := memdev.New("front")
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	dev := natsAttach(t, context.Background(), tt, "fleet", tee.LegOptions{Input: true},
		natsTestSpec(srv.ClientURL(), "chartee.{appliance}.ttyS0"))
	var want []byte
	for i := range 50 {
		line := fmt.Appendf(nil, "line %d of console output\r\n", i)
		want = append(want, line...)
		front.Feed(line)
	}
	natsWait(t, "the output on NATS", func() bool { return len(out.data()) >= len(want) })
	if got := out.data(); !bytes.Equal(got, want) {
		t.Fatalf("output on NATS differs: %s", natsDiff(got, want))
	}
	natsCheckHeaders(t, out.snapshot(), dev.Session(), "appliance-1")

	// An operator types; the frontend gets it.
	natsSynced(t, dev)
	for _, s := range []string{"ls -l\r", "", "exit\r"} {
		if err := nc.Publish("chartee.appliance-1.ttyS0.in", []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if !front.WaitWritten(len("ls -l\rexit\r"), natsTestTimeout) {
		t.Fatalf("frontend got %q", front.Written())
	}
	if got := string(front.Written()); got != "ls -l\rexit\r" {
		t.Fatalf("frontend got %q", got)
	}
	if d := chardev.Describe(dev); !strings.Contains(d, "chartee.appliance-1.ttyS0") || strings.Contains(d, "disconnected") {
		t.Fatalf("Describe() = %q", d)
	}
}

// TestNATSInputFalse: a leg without input reads what is published on
// <subject>.in, and the engine throws it away: the frontend gets nothing.
func TestNATSInputFalse(t *testing.T) {
	srv := natsTestServer(t, nil)
	nc := natsTestClient(t, srv.ClientURL())
	front := memdev.New("front")
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	spec := natsTestSpec(srv.ClientURL(), "chartee.ro.ttyS0")
	dev := natsAttach(t, context.Background(), tt, "watch", tee.LegOptions{}, spec)
	natsSynced(t, dev)
	if err := nc.Publish("chartee.ro.ttyS0.in", []byte("rm -rf /\r")); err != nil {
		t.Fatal(err)
	}
	natsWait(t, "the engine to discard the input", func() bool {
		for _, b := range tt.Stats().Backends {
			if b.Name == "watch" && b.Discarded >= uint64(len("rm -rf /\r")) {
				return true
			}
		}
		return false
	})
	if got := front.Written(); len(got) != 0 {
		t.Fatalf("a leg without input typed %q", got)
	}
}

// TestNATSWriteWaitsForReconnect: with core NATS, a Write while the server
// is down waits, and goes out once the server is back on the same port;
// Close ends a Write that still waits.
func TestNATSWriteWaitsForReconnect(t *testing.T) {
	srv := natsTestServer(t, nil)
	port := srv.Addr().(*net.TCPAddr).Port
	url := srv.ClientURL()
	dev := natsTestOpen(t, natsTestSpec(url, "chartee.r.ttyS0"))
	if _, err := dev.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	natsStop(srv)
	natsWait(t, "the device to notice", func() bool { return strings.Contains(dev.Describe(), "disconnected") })
	wrote := make(chan error, 1)
	go func() {
		_, err := dev.Write([]byte("during"))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("Write returned %v while the server was down", err)
	case <-time.After(100 * time.Millisecond):
	}
	srv2 := natsTestServer(t, func(o *server.Options) { o.Port = port })
	nc := natsTestClient(t, srv2.ClientURL())
	out := natsCollect(t, nc, "chartee.r.ttyS0.out")
	if err := <-wrote; err != nil {
		t.Fatalf("Write after the server came back: %v", err)
	}
	// "during" may have gone out before the collector subscribed; what
	// follows must arrive with the offset continuing the count.
	if _, err := dev.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	natsWait(t, "the output after the restart", func() bool { return bytes.HasSuffix(out.data(), []byte("after")) })
	msgs := out.snapshot()
	if last := msgs[len(msgs)-1]; last.Header.Get(NATSHeaderOffset) != strconv.Itoa(len("beforeduring")) {
		t.Fatalf("offset after the restart %q, want %d", last.Header.Get(NATSHeaderOffset), len("beforeduring"))
	}

	// The server goes again; a waiting Write is ended by Close.
	natsStop(srv2)
	natsWait(t, "the device to notice", func() bool { return strings.Contains(dev.Describe(), "disconnected") })
	go func() {
		_, err := dev.Write([]byte("lost"))
		wrote <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write ended by Close: %v, want net.ErrClosed", err)
	}
	if _, err := dev.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
}

// TestNATSOpenWithoutServer: Open succeeds while no server is up (an
// appliance boots without NATS), and the device says so.
func TestNATSOpenWithoutServer(t *testing.T) {
	addr := natsReservePort(t) // nothing listens there, nor can for 60s
	dev := natsTestOpen(t, natsTestSpec("nats://"+addr, "chartee.x.y"))
	if d := dev.Describe(); !strings.Contains(d, "disconnected") {
		t.Fatalf("Describe() = %q, want disconnected", d)
	}
	readErr := make(chan error, 1)
	go func() { _, err := dev.Read(make([]byte, 8)); readErr <- err }()
	_ = dev.Close()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read ended by Close: %v", err)
	}
}

// TestNATSLargeWrite: a Write larger than one message is split, offsets
// continuing, and a server with a small max_payload is respected.
func TestNATSLargeWrite(t *testing.T) {
	srv := natsTestServer(t, func(o *server.Options) { o.MaxPayload = 4096 })
	nc := natsTestClient(t, srv.ClientURL())
	out := natsCollect(t, nc, "chartee.big.tty.out")
	dev := natsTestOpen(t, natsTestSpec(srv.ClientURL(), "chartee.big.tty"))
	natsWait(t, "the connection", func() bool { return dev.nc.IsConnected() })
	big := make([]byte, 50000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if n, err := dev.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	natsWait(t, "all of it", func() bool { return len(out.data()) >= len(big) })
	if !bytes.Equal(out.data(), big) {
		t.Fatal("split output differs")
	}
	msgs := out.snapshot()
	if len(msgs) < len(big)/4096 {
		t.Fatalf("%d messages for %d bytes with max_payload 4096", len(msgs), len(big))
	}
	natsCheckHeaders(t, msgs, dev.Session(), "appliance-1")
}

// TestNATSJetStreamSingle: with jetstream every Write is stored with its
// Nats-Msg-Id, and a stream that does not exist is reported at Open.
func TestNATSJetStreamSingle(t *testing.T) {
	srv := natsTestServer(t, func(o *server.Options) { o.JetStream = true })
	nc := natsTestClient(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsTestTimeout)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CONSOLES", Subjects: []string{"chartee.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	spec := natsTestSpec(srv.ClientURL(), "chartee.js.tty")
	spec.JetStream = &NATSJetStream{Stream: "MISSING"}
	if _, err := natsOpen(ctx, spec); err == nil || !strings.Contains(err.Error(), `stream "MISSING" not found`) {
		t.Fatalf("missing stream: %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	spec.JetStream.Stream = "OTHER"
	if _, err := natsOpen(ctx, spec); err == nil || !strings.Contains(err.Error(), "chartee.js.tty.out is stored by stream \"CONSOLES\", not \"OTHER\"") {
		t.Fatalf("wrong stream: %v", err)
	}
	spec.Subject = "elsewhere.tty"
	if _, err := natsOpen(ctx, spec); err == nil || !strings.Contains(err.Error(), "does not store elsewhere.tty.out (its subjects: other.>)") {
		t.Fatalf("a subject no stream stores: %v", err)
	}
	spec.Subject = "chartee.js.tty"
	spec.JetStream.Stream = "CONSOLES"
	dev := natsTestOpen(t, spec)
	var want []byte
	for i := range 20 {
		p := fmt.Appendf(nil, "stored %d\n", i)
		want = append(want, p...)
		if _, err := dev.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	got, msgs := natsReadStream(t, js, "CONSOLES", "chartee.js.tty.out", 20)
	if !bytes.Equal(got, want) {
		t.Fatalf("stream holds %s", natsDiff(got, want))
	}
	natsCheckHeaders(t, msgs, dev.Session(), "appliance-1")
	if id := msgs[3].Header.Get(jetstream.MsgIDHeader); id != dev.Session()+"-"+msgs[3].Header.Get(NATSHeaderOffset) {
		t.Fatalf("Nats-Msg-Id %q", id)
	}
}

// natsReadStream reads the stored messages on subj with an ordered
// consumer, until it has n of them.
func natsReadStream(t *testing.T, js jetstream.JetStream, stream, subj string, n int) ([]byte, []*nats.Msg) {
	t.Helper()
	var data []byte
	var msgs []*nats.Msg
	next := uint64(1)
	for len(msgs) < n {
		var m *jetstream.RawStreamMsg
		natsWait(t, fmt.Sprintf("message %d of %d from the stream", len(msgs)+1, n), func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return false
			}
			m, err = s.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
			return err == nil
		})
		data = append(data, m.Data...)
		msgs = append(msgs, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
		next = m.Sequence + 1
	}
	return data, msgs
}

// natsSynced waits until dev is connected and its input subscription is
// known to the server.
func natsSynced(t *testing.T, dev *NATSConn) {
	t.Helper()
	natsWait(t, "the device to connect", func() bool { return dev.nc.IsConnected() })
	if err := dev.nc.FlushTimeout(natsTestTimeout); err != nil {
		t.Fatal(err)
	}
}

func natsDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-40)
	return fmt.Sprintf("lengths %d and %d, first difference at byte %d: %q vs %q",
		len(a), len(b), i, a[lo:min(len(a), i+40)], b[lo:min(len(b), i+40)])
}

// natsCluster starts three JetStream servers routed to each other on
// 127.0.0.1. Every server must be told the others' route ports before it
// starts (JetStream refuses a clustered server without configured routes),
// so the ports are reserved in advance with natsReservePort.
func natsCluster(t *testing.T) []*server.Server {
	t.Helper()
	var routes []*url.URL
	for range 3 {
		routes = append(routes, &url.URL{Scheme: "nats", Host: natsReservePort(t)})
	}
	servers := make([]*server.Server, 3)
	for i := range servers {
		port := routes[i].Port()
		servers[i] = natsTestServer(t, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("n%d", i+1)
			o.JetStream = true
			o.Cluster = server.ClusterOpts{Name: "chartee-test", Host: "127.0.0.1"}
			fmt.Sscan(port, &o.Cluster.Port)
			o.Routes = routes
		})
	}
	return servers
}

// natsFreezeProxy forwards TCP connections to a NATS server until frozen;
// from then on nothing passes either way, and sawPublish is closed once a
// client has sent a (H)PUB into the frozen proxy.
type natsFreezeProxy struct {
	ln         net.Listener
	target     string
	sawPublish chan struct{}
	frozen     atomic.Bool
	sawOnce    sync.Once
	mu         sync.Mutex
	conns      []net.Conn
	wg         sync.WaitGroup
}

func newNATSFreezeProxy(t *testing.T, target string) *natsFreezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &natsFreezeProxy{ln: ln, target: target, sawPublish: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *natsFreezeProxy) addr() string { return p.ln.Addr().String() }

func (p *natsFreezeProxy) freeze() { p.frozen.Store(true) }

func (p *natsFreezeProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, true)
		go p.pipe(c, s, false)
	}
}

// pipe copies from src to dst until frozen; fromClient marks the
// direction publishes travel.
func (p *natsFreezeProxy) pipe(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.frozen.Load() {
			if fromClient && (bytes.Contains(buf[:n], []byte("HPUB ")) || bytes.Contains(buf[:n], []byte("PUB "))) {
				p.sawOnce.Do(func() { close(p.sawPublish) })
			}
		} else if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops the proxy and closes every proxied connection.
func (p *natsFreezeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// natsReservePort reserves a loopback port (package testaddr says how and why).
func natsReservePort(t *testing.T) string { return testaddr.Reserved(t) }

// TestNATSJetStreamClusterFailover is the acceptance test: a
// three-node cluster, an R3 stream, a frontend writing continuously, a
// nats leg with on_overflow: block connected to the stream leader, and
// that node killed mid-stream. The stream read back from JetStream equals
// the frontend's output byte for byte: no gap, no duplicate.
func TestNATSJetStreamClusterFailover(t *testing.T) {
	servers := natsCluster(t)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	admin := natsTestClient(t, strings.Join(urls, ","))
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*natsTestTimeout)
	defer cancel()
	natsWait(t, "the JetStream cluster to elect a leader and take the stream", func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := js.CreateStream(c, jetstream.StreamConfig{
			Name: "CONSOLES", Subjects: []string{"chartee.>"}, Replicas: 3, Storage: jetstream.FileStorage,
		})
		return err == nil
	})
	var leader *server.Server
	natsWait(t, "a stream leader", func() bool {
		for _, s := range servers {
			if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "CONSOLES") {
				leader = s
				return true
			}
		}
		return false
	})

	front := memdev.New("front")
	tt := rcNewTee(t, tee.Options{Frontend: rcOnce(front)})
	// The leg reaches the leader through a proxy the test controls, so
	// the kill can be made to hit a publish in flight.
	proxy := newNATSFreezeProxy(t, leader.Addr().String())
	spec := natsTestSpec("nats://"+proxy.addr(), "chartee.{appliance}.ttyS0")
	spec.JetStream = &NATSJetStream{Stream: "CONSOLES", AckTimeout: chardev.Duration(time.Second)}
	dev := natsAttach(t, ctx, tt, "capture", tee.LegOptions{Overflow: tee.Block, Queue: 16 << 10}, spec)

	// The frontend writes continuously; the leader is killed once a
	// third of it has been fed, at a moment the leg has output queued (its
	// writer is busy publishing). The kill is made to hit a publish in
	// flight: the proxy freezes (nothing more passes either way), the
	// test waits until the leg has sent a publish into it — one whose ack
	// can never come, whether it was sent before the freeze or after —
	// and only then are the leader and the proxied connection killed. That
	// publish must be retried on a surviving node.
	legQueued := func() int64 {
		for _, b := range tt.Stats().Backends {
			if b.Name == "capture" {
				return b.QueueBytes
			}
		}
		return 0
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	const total = 300 << 10
	killed := false
	for len(want) < total || !killed {
		line := make([]byte, 16+rng.IntN(600))
		for i := range line {
			line[i] = byte('a' + rng.IntN(26))
		}
		line = fmt.Appendf(line, " @%d\r\n", len(want))
		want = append(want, line...)
		front.Feed(line)
		if !front.WaitFed(natsTestTimeout) {
			t.Fatal("the frontend's output is not being read")
		}
		if !killed && len(want) > total/3 {
			if q := legQueued(); q > 0 {
				killed = true
				proxy.freeze()
				select {
				case <-proxy.sawPublish:
				case <-time.After(natsTestTimeout):
					t.Fatal("the leg sent no publish within its ack timeout of the freeze")
				}
				t.Logf("killing stream leader %s at %d bytes, %d queued for the leg, a publish in flight", leader.Name(), len(want), q)
				natsStop(leader)
				proxy.close()
			} else if len(want) > 2*total {
				t.Fatalf("in %d bytes the leg never had output queued: no publish in flight to kill", len(want))
			}
		}
	}
	natsWait(t, "the leg to publish everything", func() bool {
		for _, b := range tt.Stats().Backends {
			if b.Name == "capture" {
				return b.BytesOut >= uint64(len(want))
			}
		}
		return false
	})

	// Read the stream back from a surviving node.
	var alive []string
	for _, s := range servers {
		if s != leader {
			alive = append(alive, s.ClientURL())
		}
	}
	reader := natsTestClient(t, strings.Join(alive, ","))
	rjs, err := jetstream.New(reader)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	natsWait(t, "the stream's new leader to answer", func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		s, err := rjs.Stream(c, "CONSOLES")
		if err != nil {
			return false
		}
		info, err = s.Info(c)
		return err == nil
	})
	got, msgs := natsReadStream(t, rjs, "CONSOLES", "chartee.appliance-1.ttyS0.out", int(info.State.Msgs))
	if !bytes.Equal(got, want) {
		t.Fatalf("the stream differs from the frontend's output: %s", natsDiff(got, want))
	}
	natsCheckHeaders(t, msgs, dev.Session(), "appliance-1")
	// The publish the kill interrupted got no ack: it was sent again
	// (and stored once: the stream above is byte-exact).
	if dev.Retries() == 0 {
		t.Fatal("no publish was retried, yet the stream leader was killed with one in flight")
	}
	t.Logf("%d bytes in %d messages survived the failover; %d publishes were retried", len(got), len(msgs), dev.Retries())
}

// FuzzNATSSpec: whatever the servers and subject, Validate never panics,
// and an accepted subject can be published to: non-empty tokens, no
// wildcard, no space.
func FuzzNATSSpec(f *testing.F) {
	f.Add("nats://127.0.0.1:4222", "chartee.{appliance}.ttyS0", "box")
	f.Add("127.0.0.1:4222", "a.b.c", "")
	f.Add("tls://[::1]:4222", "chartee.*.x", "a.b")
	f.Add("http://x", "..", " ")
	f.Fuzz(func(t *testing.T, server, subject, appliance string) {
		spec := natsTestSpec(server, subject)
		spec.Appliance = appliance
		if spec.Validate() != nil {
			return
		}
		subj, err := spec.subject()
		if err != nil {
			t.Fatalf("Validate accepted %q but subject() = %v", subject, err)
		}
		for tok := range strings.SplitSeq(subj, ".") {
			if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
				t.Fatalf("accepted subject %q has token %q", subj, tok)
			}
		}
		if _, err := natsServerURL(server); err != nil {
			t.Fatalf("Validate accepted server %q: %v", server, err)
		}
	})
}

// TestNATSTLS: the tls section verifies the server with the given CA and
// offers the client certificate a server that requires one asks for; a
// device without the certificate never gets in, and says why.
func TestNATSTLS(t *testing.T) {
	pki := netNewPKI(t)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := natsTestServer(t, func(o *server.Options) {
		o.TLS, o.TLSVerify = true, true
		o.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientCAs:    pki.pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		}
	})
	url := fmt.Sprintf("tls://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)
	nc, err := nats.Connect(url, nats.Secure(pki.clientConfig(t, true)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	out := natsCollect(t, nc, "chartee.tls.tty.out")

	spec := natsTestSpec(url, "chartee.tls.tty")
	spec.TLS = &NetClientTLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	dev := natsTestOpen(t, spec)
	if _, err := dev.Write([]byte("over tls")); err != nil {
		t.Fatal(err)
	}
	natsWait(t, "the output over TLS", func() bool { return string(out.data()) == "over tls" })

	spec.TLS = &NetClientTLS{CA: pki.CA}
	bad := natsTestOpen(t, spec)
	natsWait(t, "the refusal to show", func() bool {
		d := bad.Describe()
		return strings.Contains(d, "disconnected: ") && !strings.HasSuffix(d, "disconnected)")
	})
	t.Logf("without a client certificate: %s", bad.Describe())
}
