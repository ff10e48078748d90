package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// Issue 6's security points, each checked from outside the real binary.

// TestSecurityListenersBindOnlyWhereConfigured: every socket chartee
// listens on (TCP) or binds (UDP) is one the config names, on 127.0.0.1 —
// read from the kernel's socket tables for chartee's own fds.
func TestSecurityListenersBindOnlyWhereConfigured(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	peer := newFaultPeer(t, "tcp", "127.0.0.1:0")
	c := harness.NewChartee(t, dir)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	control, metrics := harness.FreeAddr(t), harness.FreeAddr(t)
	c.WriteConfig(t, strings.Replace(faultConfig(c, "      type: tcp-connect\n      address: "+peer.addr,
		fmt.Sprintf(`      - {name: net, type: tcp-listen, listen: "127.0.0.1:0"}
      - {name: dgram, type: udp, listen: "127.0.0.1:0"}
      - {name: local, type: unix-listen, path: %q}
`, filepath.Join(dir, "local.sock")), "metrics:\n  listen: "+metrics),
		"control:\n", fmt.Sprintf("control:\n  listen: %s\n  token_file: %q\n", control, token), 1))
	c.Start(t)
	peer.accept(t)
	want := map[string]bool{control: true, metrics: true, c.Addr(t, "t", "net"): true}
	udpWant := c.Addr(t, "t", "dgram")

	inodes := map[string]bool{}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", c.Proc.Pid(), e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	seen := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", c.Proc.Pid(), table))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			local, state := secDecodeAddr(t, f[1]), f[3]
			switch {
			case strings.HasPrefix(table, "tcp") && state == "0A": // LISTEN
				if !want[local] {
					t.Errorf("chartee listens on %s (%s), which the config does not name (it names %v)", local, table, want)
				}
				seen[local] = true
			case strings.HasPrefix(table, "udp"):
				if local != udpWant {
					t.Errorf("chartee has a UDP socket bound to %s; the config names only %s", local, udpWant)
				}
				seen[local] = true
			}
		}
	}
	for addr := range want {
		if !seen[addr] {
			t.Errorf("no listening socket found for %s: the check would be blind", addr)
		}
	}
	if !seen[udpWant] {
		t.Errorf("no UDP socket found for %s: the check would be blind", udpWant)
	}
}

// secDecodeAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080".
func secDecodeAddr(t *testing.T, s string) string {
	t.Helper()
	hostHex, portHex, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(hostHex)
	port, perr := strconv.ParseUint(portHex, 16, 16)
	if !ok || err != nil || perr != nil || (len(b) != 4 && len(b) != 16) {
		t.Fatalf("cannot decode the socket address %q", s)
	}
	// The kernel prints each 32-bit word in host (little-endian) order.
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.JoinHostPort(net.IP(b).String(), strconv.Itoa(int(port)))
}

// TestSecurityCheckWarnsNonLoopback: `chartee check` warns about each
// listener reachable from the network without TLS (and not about a
// loopback one, nor one with TLS), and opens nothing while checking.
func TestSecurityCheckWarnsNonLoopback(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	pki := secPKI(t, dir)
	open, withTLS, local := "0.0.0.0:"+secPort(t), "0.0.0.0:"+secPort(t), "127.0.0.1:"+secPort(t)
	cfg := filepath.Join(dir, "chartee.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`tees:
  - name: t
    frontend: {type: demo}
    backends:
      - {name: open, type: tcp-listen, listen: %q}
      - {name: withtls, type: tcp-listen, listen: %q, tls: {cert: %q, key: %q}}
      - {name: local, type: tcp-listen, listen: %q}
`, open, withTLS, pki.serverCert, pki.serverKey, local)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(harness.Binary(t), "check", "-c", cfg).CombinedOutput()
	t.Logf("chartee check:\n%s", out)
	if err != nil {
		t.Fatalf("chartee check failed on a valid config: %v", err)
	}
	s := string(out)
	if !strings.Contains(s, open) || !strings.Contains(s, "without TLS") {
		t.Errorf("no warning about %s without TLS", open)
	}
	if strings.Contains(s, withTLS) || strings.Contains(s, local) {
		t.Errorf("a warning about a listener with TLS or on loopback")
	}
	for _, addr := range []string{open, withTLS, local} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+addr[strings.LastIndex(addr, ":")+1:])
		if err != nil {
			t.Errorf("port of %s is taken after check: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// secPort is a free loopback port number.
func secPort(t *testing.T) string {
	addr := harness.FreeAddr(t)
	return addr[strings.LastIndex(addr, ":")+1:]
}

// TestSecurityControlAccess: the control socket is created 0600 (owner
// only), and the TCP control API answers nothing without the exact token
// (none, a wrong one, a prefix of it, a longer one, another scheme).
func TestSecurityControlAccess(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	c := harness.NewChartee(t, dir)
	const token = "9f1c2e-the-real-token"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	control := harness.FreeAddr(t)
	c.WriteConfig(t, fmt.Sprintf(`control:
  socket: %q
  listen: %s
  token_file: %q
tees:
  - name: t
    frontend: {type: demo, heartbeat: 0s}
    backends:
      - {name: rb, type: ringbuf}
`, c.Socket, control, tokenFile))
	c.Start(t)
	fi, err := os.Lstat(c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket %s has mode %v, want a socket with 0600", c.Socket, fi.Mode())
	}
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+control+"/v1/tees", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := (&http.Client{Timeout: timeoutLong}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + token[:len(token)-1],
		"Bearer " + token + "x", "Basic " + token, "bearer-" + token, token} {
		if code, body := get(auth); code != http.StatusUnauthorized || strings.Contains(body, `"tees"`) {
			t.Errorf("Authorization %q: HTTP %d %s, want 401 and no data", auth, code, body)
		}
	}
	if code, body := get("Bearer " + token); code != http.StatusOK || !strings.Contains(body, `"name":"t"`) {
		t.Errorf("the right token: HTTP %d %s", code, body)
	}
}

// secPKIFiles are PEM files the test generates: a CA, a server certificate
// for 127.0.0.1 and a client certificate it signed, and a client
// certificate from another CA.
type secPKIFiles struct {
	ca, serverCert, serverKey string
	client, rogue             tls.Certificate
	pool                      *x509.CertPool
}

func secPKI(t *testing.T, dir string) secPKIFiles {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	issue := func(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	caTmpl := func(name string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	}
	leaf := func(name string, usage x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: name}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pair := func(cert *x509.Certificate, key *ecdsa.PrivateKey) tls.Certificate {
		return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	}
	caKey, rogueCAKey := newKey(), newKey()
	ca := issue(caTmpl("chartee-test CA"), caKey, nil, nil)
	rogueCA := issue(caTmpl("rogue CA"), rogueCAKey, nil, nil)
	serverKey, clientKey, rogueKey := newKey(), newKey(), newKey()
	server := issue(leaf("127.0.0.1", x509.ExtKeyUsageServerAuth), serverKey, ca, caKey)
	client := issue(leaf("operator", x509.ExtKeyUsageClientAuth), clientKey, ca, caKey)
	rogue := issue(leaf("operator", x509.ExtKeyUsageClientAuth), rogueKey, rogueCA, rogueCAKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return secPKIFiles{
		ca:         writePEM("ca.pem", "CERTIFICATE", ca.Raw),
		serverCert: writePEM("server.crt", "CERTIFICATE", server.Raw),
		serverKey:  writePEM("server.key", "PRIVATE KEY", keyDER(serverKey)),
		client:     pair(client, clientKey),
		rogue:      pair(rogue, rogueKey),
		pool:       pool,
	}
}

// TestSecurityTLSLegs: network legs over TLS with certificates the test
// generates. With client_ca, only a client certificate from that CA gets
// the console: no certificate, or one from another CA, gets not a byte.
// Without client_ca any TLS client gets it; a plain-TCP client never sees
// the output in clear.
func TestSecurityTLSLegs(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	pki := secPKI(t, dir)
	c, front := faultTCPFrontend(t, fmt.Sprintf(`      - {name: mtls, type: tcp-listen, listen: "127.0.0.1:0", tls: {cert: %q, key: %q, client_ca: %q}}
      - {name: tls, type: tcp-listen, listen: "127.0.0.1:0", tls: {cert: %q, key: %q}}
`, pki.serverCert, pki.serverKey, pki.ca, pki.serverCert, pki.serverKey), "")
	mtls, plainTLS := c.Addr(t, "t", "mtls"), c.Addr(t, "t", "tls")
	const secret = "console output: the secret\n"

	type result struct {
		got []byte
		err error
	}
	// try connects and reads until it has the output, an error, or stop
	// ends (which closes the connection), and reports what it read.
	try := func(addr string, cert *tls.Certificate, useTLS bool, stop context.Context, ready chan<- struct{}) result {
		var conn net.Conn
		var err error
		if useTLS {
			cfg := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
			if cert != nil {
				// Sent whatever CAs the server asks for: Go's client would
				// otherwise withhold a certificate the server's list rules
				// out, and the rogue case would test no certificate again.
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			conn, err = tls.DialWithDialer(&net.Dialer{Timeout: timeoutLong}, "tcp", addr, cfg)
		} else {
			// A plain client, as a person with telnet would be: it types.
			if conn, err = net.Dial("tcp", addr); err == nil {
				_, err = conn.Write([]byte("hello\r\n"))
			}
		}
		ready <- struct{}{}
		if err != nil {
			return result{err: err}
		}
		defer conn.Close()
		defer context.AfterFunc(stop, func() { conn.Close() })()
		conn.SetReadDeadline(time.Now().Add(timeoutLong))
		var got []byte
		buf := make([]byte, 4096)
		for !strings.Contains(string(got), secret) {
			n, err := conn.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				return result{got, err}
			}
		}
		return result{got, nil}
	}
	// A refused client's connection ends with the reason: the TLS alert
	// chartee sends (TLS 1.3 clients learn of a refused certificate at
	// their first read), or, for a plain-TCP client on a TLS port, the
	// connection closed after a failed handshake.
	cases := []struct {
		name   string
		addr   string
		cert   *tls.Certificate
		useTLS bool
		ok     bool
		reason string
	}{
		{"mtls, client certificate from the CA", mtls, &pki.client, true, true, ""},
		{"mtls, no client certificate", mtls, nil, true, false, "remote error: tls: certificate required"},
		{"mtls, certificate from another CA", mtls, &pki.rogue, true, false, "remote error: tls: unknown certificate authority"},
		{"mtls, plain TCP", mtls, nil, false, false, "EOF"},
		{"tls, no client certificate", plainTLS, nil, true, true, ""},
		{"tls, plain TCP", plainTLS, nil, false, false, "EOF"},
	}
	results := make([]chan result, len(cases))
	ready := make(chan struct{}, len(cases))
	// Every client reads until it has the output or its connection ends;
	// stop only ends them all if the test fails early.
	stop, stopRefused := context.WithCancel(context.Background())
	defer stopRefused()
	for i, tc := range cases {
		results[i] = make(chan result, 1)
		go func() { results[i] <- try(tc.addr, tc.cert, tc.useTLS, stop, ready) }()
	}
	for range cases {
		<-ready
	}
	faultWaitLegs(t, c, "tls", 1)
	waitForState(t, "the mtls client to be a leg", func() (bool, string) {
		b := c.Tee(t, "t").Backend(t, "mtls")
		return b.Legs >= 1, fmt.Sprintf("%d legs", b.Legs)
	})
	faultWriteAll(t, front, []byte(secret))
	// Every client's result: the admitted ones once they have the output;
	// the refused ones when chartee ends their connection, which it does
	// on its own (had it made one a leg instead, that client would read
	// the output, or time out, and fail below). A closed connection can
	// receive nothing more, so no wait bounds this negative check.
	got := make([]result, len(cases))
	for i := range cases {
		got[i] = <-results[i]
	}
	for i, tc := range cases {
		r := got[i]
		switch {
		case tc.ok && (r.err != nil || !strings.Contains(string(r.got), secret)):
			t.Errorf("%s: did not get the output: %v (read %q)", tc.name, r.err, r.got)
		case !tc.ok && strings.Contains(string(r.got), "secret"):
			t.Errorf("%s: got the output: %q", tc.name, r.got)
		case !tc.ok && (r.err == nil || r.err.Error() != tc.reason):
			t.Errorf("%s: refused with %v (read %q), want %q", tc.name, r.err, r.got, tc.reason)
		case !tc.ok && !tc.useTLS && len(r.got) > 0 && r.got[0] != 0x15:
			t.Errorf("%s: read %q: neither nothing nor a TLS alert record", tc.name, r.got)
		}
	}
	if b := c.Tee(t, "t").Backend(t, "mtls"); b.BytesOut > uint64(len(secret)) {
		t.Errorf("mtls sent %d bytes: more than the one admitted client's", b.BytesOut)
	}
}

// TestSecurityInputFalse: a leg without input can never type into the
// frontend — neither a TCP client nor a local pty user — while a leg with
// input can; what the others typed is discarded and counted.
func TestSecurityInputFalse(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	ptyLink := filepath.Join(dir, "ro.pty")
	c, front := faultTCPFrontend(t, fmt.Sprintf(`      - {name: ro, type: tcp-listen, listen: "127.0.0.1:0", input: false}
      - {name: ro-telnet, type: tcp-listen, listen: "127.0.0.1:0", protocol: telnet, input: false}
      - {name: ro-pty, type: pty, link: %q, input: false}
      - {name: rw, type: tcp-listen, listen: "127.0.0.1:0", input: true}
`, ptyLink), "")
	typed := harness.Record(t, "frontend", front)
	ro, _ := faultDialConn(t, "ro", c.Addr(t, "t", "ro"))
	roTelnet, _ := faultDialConn(t, "ro-telnet", c.Addr(t, "t", "ro-telnet"))
	rw, _ := faultDialConn(t, "rw", c.Addr(t, "t", "rw"))
	pty := harness.OpenTTY(t, ptyLink)
	faultWaitLegs(t, c, "ro", 1)
	faultWaitLegs(t, c, "ro-telnet", 1)
	faultWaitLegs(t, c, "rw", 1)
	evil := map[string]io.Writer{"ro": ro, "ro-telnet": roTelnet, "ro-pty": pty}
	for name, w := range evil {
		if _, err := io.WriteString(w, "EVIL from "+name+"\r"); err != nil {
			t.Fatal(err)
		}
	}
	waitForState(t, "what the input-less legs typed to be discarded", func() (bool, string) {
		st := c.Tee(t, "t")
		var state []string
		done := true
		for name := range evil {
			b := st.Backend(t, name)
			state = append(state, fmt.Sprintf("%s discarded %d", name, b.Discarded))
			done = done && b.Discarded >= uint64(len("EVIL from "+name+"\r"))
		}
		return done, strings.Join(state, ", ")
	})
	if _, err := io.WriteString(rw, "GOOD from rw\r"); err != nil {
		t.Fatal(err)
	}
	// The input-less legs' bytes were consumed and counted as discarded
	// before GOOD was typed; were any passed on as well, they would have
	// reached the frontend before GOOD did.
	typed.WaitFor(t, "GOOD from rw\r", 0, timeoutLong)
	if got := string(typed.Bytes()); strings.Contains(got, "EVIL") {
		t.Errorf("an input: false leg typed into the frontend: %q", got)
	}
}

// secPyserial is a pyserial RFC 2217 client: it opens the port at the
// given baud rate, tries to change baud rate and parity, and prints each
// outcome.
const secPyserial = `
import sys, serial
url, baud = sys.argv[1], int(sys.argv[2])
port = serial.serial_for_url(url, baudrate=baud, timeout=5)
print("open", flush=True)
for name, value in (("baudrate", 57600), ("parity", serial.PARITY_EVEN)):
    try:
        setattr(port, name, value)
        print("set", name, "ok", flush=True)
    except Exception as e:
        print("set", name, "refused:", repr(e).replace("\n", " "), flush=True)
port.close()
`

// TestSecurityRFC2217ControlRefused: pyserial's rfc2217:// client on a leg
// without control cannot change the serial port's settings (the pty keeps
// them, as stty -F shows, and so does the tee's line state); the same
// client on a leg with control can, which shows the attempt is real.
func TestSecurityRFC2217ControlRefused(t *testing.T) {
	harness.Begin(t)
	python := harness.RequireProgram(t, "/usr/bin/python3", "python3-serial")
	dir := t.TempDir()
	script := filepath.Join(dir, "client.py")
	if err := os.WriteFile(script, []byte(secPyserial), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "console"), filepath.Join(dir, "console-far")
	harness.StartPtyPair(t, "socat", a, b)
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, faultConfig(c, fmt.Sprintf(`      type: serial
      path: %q
      baud: 115200
      exclusive: false`, a), `      - {name: view, type: tcp-listen, listen: "127.0.0.1:0", protocol: rfc2217}
      - {name: admin, type: tcp-listen, listen: "127.0.0.1:0", protocol: rfc2217, control: true}
`, ""))
	c.Start(t)
	waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "t").Frontend.Up })
	run := func(backend, query string) string {
		cmd := exec.Command(python, script, "rfc2217://"+c.Addr(t, "t", backend)+query, "115200")
		cmd.WaitDelay = time.Second
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeoutLong):
			cmd.Process.Kill()
			<-done
			t.Fatalf("pyserial on %s timed out: %s", backend, out)
		}
		t.Logf("pyserial on %s (%v):\n%s", backend, err, out)
		if !strings.Contains(string(out), "open") {
			t.Fatalf("pyserial did not open the port through %s", backend)
		}
		return string(out)
	}

	// pyserial insists on the server confirming each setting; a refusing
	// server never does, so its negotiation timeout is kept short.
	out := run("view", "?timeout=0.5")
	if !strings.Contains(out, "set baudrate refused") {
		t.Errorf("pyserial was not told its baud rate change was refused")
	}
	line := c.Tee(t, "t").Line
	if line.Baud != 115200 || line.Parity != "none" {
		t.Errorf("a client without control changed the line state to %+v", line)
	}
	if s := harness.Stty(t, a); s.Baud != 115200 {
		t.Errorf("a client without control changed the port to %+v", s)
	}

	run("admin", "")
	waitForState(t, "the client with control to change the baud rate", func() (bool, string) {
		line := c.Tee(t, "t").Line
		return line.Baud == 57600 && line.Parity == "even", fmt.Sprintf("%+v", line)
	})
	if s := harness.Stty(t, a); s.Baud != 57600 {
		t.Errorf("the client with control did not change the port: %+v", s)
	}
}

// TestSecurityNoShell: an exec frontend's command runs without a shell (no
// expansion, substitution, globbing or chaining), and paths in specs are
// used as they are (no ~, $VAR, glob or command substitution).
func TestSecurityNoShell(t *testing.T) {
	harness.Begin(t)
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	args := []string{"$HOME", "~", "*", "`touch " + pwned + "-1`", "$(touch " + pwned + "-2)", ";", "touch", pwned + "-3", "|", "&&"}
	// chartee runs in dir, so a shell would create pwned-4 there.
	capture := filepath.Join(dir, "$(touch pwned-4) `touch pwned-5` ~ $HOME *.log")
	c := harness.NewChartee(t, dir)
	quoted := make([]string, 0, len(args)+1)
	for _, a := range append([]string{"/bin/echo"}, args...) {
		quoted = append(quoted, strconv.Quote(a))
	}
	c.WriteConfig(t, faultConfig(c, fmt.Sprintf(`      type: exec
      command: [%s]
      dir: %q
      pty: false`, strings.Join(quoted, ", "), dir),
		fmt.Sprintf("      - {name: capture, type: file, path: %q}\n", capture), ""))
	c.Start(t)
	want := strings.Join(args, " ") + "\n"
	waitForState(t, "the command's output in the capture at its literal path", func() (bool, string) {
		b, err := os.ReadFile(capture)
		return err == nil && strings.Contains(string(b), want), fmt.Sprintf("%q, %v", b, err)
	})
	matches, _ := filepath.Glob(pwned + "*")
	if len(matches) > 0 {
		t.Errorf("a shell ran: %v exist", matches)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	t.Logf("files: %q", names)
}
