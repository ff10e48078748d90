package backends

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"pgregory.net/rapid"

	"chartee/chardev"
)

// netTestTimeout bounds every wait in these tests: long, so a loaded
// machine under -race does not fail them, and finite, so a bug does not
// hang the suite.
const netTestTimeout = 15 * time.Second

// netWaitFor polls cond until it holds or the test times out.
func netWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(netTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// netTestServer runs a source's accept loop the way the engine does and
// hands out the accepted devices; cleanup closes the source, waits for the
// loop and closes every device.
type netTestServer struct {
	src  chardev.Source
	devs chan chardev.Chardev
	done chan struct{}

	mu  sync.Mutex
	all []chardev.Chardev
}

func netServe(t *testing.T, src chardev.Source) *netTestServer {
	t.Helper()
	s := &netTestServer{src: src, devs: make(chan chardev.Chardev, 4096), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			dev, err := src.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept: %v, want an error wrapping net.ErrClosed", err)
				}
				return
			}
			s.mu.Lock()
			s.all = append(s.all, dev)
			s.mu.Unlock()
			s.devs <- dev
		}
	}()
	t.Cleanup(func() {
		_ = src.Close()
		<-s.done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, d := range s.all {
			_ = d.Close()
		}
	})
	return s
}

// next returns the next accepted device.
func (s *netTestServer) next(t *testing.T) chardev.Chardev {
	t.Helper()
	select {
	case d := <-s.devs:
		return d
	case <-time.After(netTestTimeout):
		t.Fatal("timed out waiting for Accept")
		return nil
	}
}

// none checks that no device was accepted.
func (s *netTestServer) none(t *testing.T) {
	t.Helper()
	select {
	case d := <-s.devs:
		t.Fatalf("unexpected device accepted: %s", chardev.Describe(d))
	default:
	}
}

// netReadString reads exactly len(want) bytes from r and compares. It
// reads in a goroutine so devices without deadlines work too.
func netReadString(t *testing.T, r io.Reader, want string) {
	t.Helper()
	buf := make([]byte, len(want))
	errc := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(r, buf)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("read: %v (got %q, want %q)", err, buf, want)
		}
	case <-time.After(netTestTimeout):
		t.Fatalf("timed out reading %q", want)
	}
	if string(buf) != want {
		t.Fatalf("read %q, want %q", buf, want)
	}
}

// netReadError reads from r until it fails and returns the error.
func netReadError(t *testing.T, r io.Reader) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := r.Read(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(netTestTimeout):
		t.Fatal("timed out waiting for a read error")
		return nil
	}
}

func netWrite(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// netDial connects to a TCP or unix address with a read deadline set.
func netDial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, netTestTimeout)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(netTestTimeout))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// netTestPKI is a throwaway CA with a server certificate for 127.0.0.1
// and a client certificate, as PEM files.
type netTestPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	pool                                             *x509.CertPool
}

func netNewPKI(t *testing.T) *netTestPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := netNewKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "chartee test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &netTestPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.CA = netWritePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key := netNewKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return netWritePEM(t, dir, name+".pem", "CERTIFICATE", der),
			netWritePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p.ServerCert, p.ServerKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.ClientCert, p.ClientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

func netNewKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func netWritePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientConfig is a TLS client config trusting the test CA, with the
// client certificate when withCert.
func (p *netTestPKI) clientConfig(t *testing.T, withCert bool) *tls.Config {
	t.Helper()
	conf := &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1"}
	if withCert {
		cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf
}

// netFDCount counts this process's open file descriptors.
func netFDCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestNetParseAllow(t *testing.T) {
	list, err := netParseAllow([]string{"10.0.0.0/8", "192.168.1.7", "::1/128", " 172.16.0.0/12 "})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}, true}, // v4-mapped
		{&net.TCPAddr{IP: net.ParseIP("11.1.2.3"), Port: 1}, false},
		{&net.UDPAddr{IP: net.ParseIP("192.168.1.7"), Port: 1}, true},
		{&net.UDPAddr{IP: net.ParseIP("192.168.1.8"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("172.31.255.255"), Port: 1}, true},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, true}, // no IP: the file mode guards it
	}
	for _, c := range cases {
		if got := list.allows(c.addr); got != c.want {
			t.Errorf("allows(%v) = %v, want %v", c.addr, got, c.want)
		}
	}
	if !netAllowList(nil).allows(&net.TCPAddr{IP: net.ParseIP("8.8.8.8")}) {
		t.Error("an empty list must allow everyone")
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "", "10.0.0/8"} {
		if _, err := netParseAllow([]string{bad}); err == nil || !strings.Contains(err.Error(), "allow") {
			t.Errorf("netParseAllow(%q) = %v, want an error naming allow", bad, err)
		}
	}
}

// TestNetAllowListMatchesNetip checks the allow list against netip's own
// prefix arithmetic for random prefixes and addresses.
func TestNetAllowListMatchesNetip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var a4 [4]byte
		copy(a4[:], rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "net"))
		bits := rapid.IntRange(0, 32).Draw(t, "bits")
		prefix := netip.PrefixFrom(netip.AddrFrom4(a4), bits)
		var b4 [4]byte
		copy(b4[:], rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "addr"))
		addr := netip.AddrFrom4(b4)

		list, err := netParseAllow([]string{prefix.String()})
		if err != nil {
			t.Fatalf("netParseAllow(%s): %v", prefix, err)
		}
		tcp := net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 9))
		if got, want := list.allows(tcp), prefix.Masked().Contains(addr); got != want {
			t.Fatalf("allow %s, client %s: got %v, want %v", prefix, addr, got, want)
		}
		mapped := net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(addr.As16()), 9))
		if got, want := list.allows(mapped), prefix.Masked().Contains(addr); got != want {
			t.Fatalf("allow %s, v4-mapped client %s: got %v, want %v", prefix, mapped, got, want)
		}
	})
}

// FuzzNetParseAllow: any input either parses to prefixes that contain the
// network they name, or is refused with an error naming the key; it never
// panics.
func FuzzNetParseAllow(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::1", "fe80::/10", "1.2.3.4", "1.2.3.4/40", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := netParseAllow([]string{s})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "allow ") {
				t.Fatalf("error %q does not name the key", err)
			}
			return
		}
		if len(list) != 1 {
			t.Fatalf("one entry gave %d prefixes", len(list))
		}
		p := list[0]
		ap := netip.AddrPortFrom(p.Addr(), 1)
		if !list.allows(net.TCPAddrFromAddrPort(ap)) {
			t.Fatalf("%q: its own network address %s is not allowed", s, p.Addr())
		}
	})
}

// FuzzNetCheckListenAddr: never panics, and whatever it accepts has a host
// and a port.
func FuzzNetCheckListenAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:2000", ":2000", "[::1]:23", "0.0.0.0:1", "host", "[::]:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := netCheckListenAddr("listen", s); err != nil {
			if !strings.HasPrefix(err.Error(), "listen") {
				t.Fatalf("error %q does not name the key", err)
			}
			return
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			t.Fatalf("accepted %q: host %q port %q err %v", s, host, port, err)
		}
	})
}

// TestNetBackoff checks the reconnect waits: never above the cap, never
// below three quarters of the step, doubling until the cap, and back to
// the start after reset.
func TestNetBackoff(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		initial := time.Duration(rapid.Int64Range(1, int64(time.Second)).Draw(t, "initial"))
		capd := initial * time.Duration(rapid.Int64Range(1, 100).Draw(t, "capMult"))
		b := (&NetReconnect{Initial: chardev.Duration(initial), Max: chardev.Duration(capd)}).backoff()
		step := initial
		for i := range rapid.IntRange(1, 40).Draw(t, "steps") {
			d := b.Next()
			if d > step || d < step-step/4 {
				t.Fatalf("wait %d = %s, want within [%s, %s]", i, d, step-step/4, step)
			}
			if d > capd {
				t.Fatalf("wait %d = %s above the cap %s", i, d, capd)
			}
			step = min(2*step, capd)
		}
		b.Reset()
		if d := b.Next(); d > initial {
			t.Fatalf("after reset wait = %s, want at most %s", d, initial)
		}
	})
	// Defaults for an empty section.
	b := (&NetReconnect{}).backoff()
	if b.Initial != netDefaultReconnectInitial || b.Max != netDefaultReconnectMax || !b.Jitter {
		t.Errorf("defaults: %+v", b)
	}
}

func TestNetTLSValidate(t *testing.T) {
	if err := (&NetServerTLS{Cert: "c.pem"}).Validate(); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("server cert without key: %v", err)
	}
	if err := (&NetServerTLS{Key: "k.pem"}).Validate(); err == nil || !strings.Contains(err.Error(), "cert") {
		t.Errorf("server key without cert: %v", err)
	}
	if err := (&NetClientTLS{Cert: "c.pem"}).Validate(); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("client cert without key: %v", err)
	}
	if err := (&NetClientTLS{Key: "k.pem"}).Validate(); err == nil || !strings.Contains(err.Error(), "cert") {
		t.Errorf("client key without cert: %v", err)
	}
	if err := (&NetClientTLS{}).Validate(); err != nil {
		t.Errorf("empty client section: %v", err)
	}
	// Files that are not there are reported when the config is built.
	if _, err := (&NetServerTLS{Cert: "/nonexistent/c.pem", Key: "/nonexistent/k.pem"}).config(); err == nil {
		t.Error("missing server cert files: no error")
	}
	if _, err := (&NetClientTLS{CA: "/nonexistent/ca.pem"}).config("x"); err == nil {
		t.Error("missing CA file: no error")
	}
	p := netNewPKI(t)
	if _, err := (&NetServerTLS{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.ServerKey}).config(); err == nil ||
		!strings.Contains(err.Error(), "client_ca") {
		t.Errorf("client_ca without a certificate in it: %v", err)
	}
	conf, err := (&NetServerTLS{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.CA}).config()
	if err != nil {
		t.Fatal(err)
	}
	if conf.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("client_ca set: ClientAuth = %v, want RequireAndVerifyClientCert", conf.ClientAuth)
	}
	cconf, err := (&NetClientTLS{CA: p.CA, Cert: p.ClientCert, Key: p.ClientKey}).config("10.9.8.7")
	if err != nil {
		t.Fatal(err)
	}
	if cconf.ServerName != "10.9.8.7" || len(cconf.Certificates) != 1 || cconf.RootCAs == nil {
		t.Errorf("client config: server name %q, %d certs", cconf.ServerName, len(cconf.Certificates))
	}
}

// netFakeControl is the engine's Control as a protocol leg sees it,
// recording what the leg asked for.
type netFakeControl struct {
	mu sync.Mutex
	netControlRecord
}

// netControlRecord is what a netFakeControl saw.
type netControlRecord struct {
	line   chardev.LineSettings
	sets   []chardev.LineSettings
	dtr    []bool
	rts    []bool
	breaks int
}

func (c *netFakeControl) SetLineSettings(l chardev.LineSettings) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sets = append(c.sets, l)
	if l.Baud == 0 {
		l.Baud = c.line.Baud
	}
	if l.DataBits == 0 {
		l.DataBits = c.line.DataBits
	}
	c.line = l
	return nil
}

func (c *netFakeControl) LineSettings() chardev.LineSettings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.line
}

func (c *netFakeControl) SetModemLines(dtr, rts *bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dtr != nil {
		c.dtr = append(c.dtr, *dtr)
	}
	if rts != nil {
		c.rts = append(c.rts, *rts)
	}
	return nil
}

func (c *netFakeControl) ModemStatus() (chardev.ModemStatus, error) {
	return chardev.ModemStatus{DTR: true, RTS: true, CTS: true, DSR: true, DCD: true}, nil
}

func (c *netFakeControl) Break(time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.breaks++
	return nil
}

func (c *netFakeControl) PurgeInput()          {}
func (c *netFakeControl) TakeWriteLock() error { return nil }
func (c *netFakeControl) ReleaseWriteLock()    {}
func (c *netFakeControl) Status() string       { return "fake tee" }
func (c *netFakeControl) snapshot() netControlRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.netControlRecord
	r.sets, r.dtr, r.rts = slices.Clone(r.sets), slices.Clone(r.dtr), slices.Clone(r.rts)
	return r
}

// netPump reads a device until it fails, as the engine's leg reader does,
// and hands out what it read.
type netPump struct {
	mu   sync.Mutex
	got  []byte
	done chan struct{}
}

func netStartPump(t *testing.T, dev chardev.Chardev) *netPump {
	t.Helper()
	p := &netPump{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 1024)
		for {
			n, err := dev.Read(buf)
			p.mu.Lock()
			p.got = append(p.got, buf[:n]...)
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = dev.Close()
		<-p.done
	})
	return p
}

func (p *netPump) waitFor(t *testing.T, want string) {
	t.Helper()
	netWaitFor(t, "the leg to read "+strconv.Quote(want), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return strings.Contains(string(p.got), want)
	})
}

// TestNetSpecDecode: the shared sections embedded in the specs decode from
// YAML and JSON under their snake_case keys, next to the type's own.
func TestNetSpecDecode(t *testing.T) {
	const doc = `
listen: 127.0.0.1:2000
allow: [10.0.0.0/8]
max_clients: 4
on_full: kick-oldest
protocol: rfc2217
control: true
banner: "hi\n"
idle_timeout: 90s
tls: {cert: s.pem, key: s-key.pem, client_ca: ca.pem}
`
	var fromYAML TCPListenSpec
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&fromYAML); err != nil {
		t.Fatal(err)
	}
	want := TCPListenSpec{
		Listen: "127.0.0.1:2000",
		Allow:  []string{"10.0.0.0/8"},
		NetServeOptions: NetServeOptions{
			MaxClients: 4, OnFull: OnFullKickOldest, Protocol: ProtocolRFC2217, Control: true,
			Banner: "hi\n", IdleTimeout: chardev.Duration(90 * time.Second),
			TLS: &NetServerTLS{Cert: "s.pem", Key: "s-key.pem", ClientCA: "ca.pem"},
		},
	}
	if !reflect.DeepEqual(fromYAML, want) {
		t.Fatalf("YAML decoded\n%+v\nwant\n%+v", fromYAML, want)
	}
	var fromJSON TCPListenSpec
	js := `{"listen":"127.0.0.1:2000","allow":["10.0.0.0/8"],"max_clients":4,"on_full":"kick-oldest",
		"protocol":"rfc2217","control":true,"banner":"hi\n","idle_timeout":"90s",
		"tls":{"cert":"s.pem","key":"s-key.pem","client_ca":"ca.pem"}}`
	if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, want) {
		t.Fatalf("JSON decoded\n%+v\nwant\n%+v", fromJSON, want)
	}

	var conn UnixConnectSpec
	if err := yaml.Unmarshal([]byte("path: /run/q.sock\nprotocol: telnet\nreconnect: {initial: 100ms, max: 5s}\nconnect_timeout: 3s\n"), &conn); err != nil {
		t.Fatal(err)
	}
	if conn.Path != "/run/q.sock" || conn.Protocol != ProtocolTelnet || conn.Reconnect == nil ||
		conn.Reconnect.Max != chardev.Duration(5*time.Second) || conn.ConnectTimeout != chardev.Duration(3*time.Second) {
		t.Fatalf("unix-connect decoded %+v", conn)
	}
	var u UDPSpec
	if err := yaml.Unmarshal([]byte("listen: 127.0.0.1:5000\nmax_datagram: 1KiB\n"), &u); err != nil {
		t.Fatal(err)
	}
	if u.MaxDatagram != 1024 {
		t.Fatalf("udp max_datagram %d", u.MaxDatagram)
	}
}

// netReadOnce starts one Read of dev, as the engine always has one
// waiting, and delivers what it got, or "error: ..." when it failed.
func netReadOnce(dev io.Reader) <-chan string {
	readc := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := dev.Read(buf)
		if err != nil {
			readc <- "error: " + err.Error()
			return
		}
		readc <- string(buf[:n])
	}()
	return readc
}
