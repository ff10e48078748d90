package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"chartee/internal/testaddr"
)

// TestUpgradeClosesSessionsAndCarriesListeners: across a real upgrade
// (two processes), an SSH session and a TLS client are not carried: each
// gets the stream up to the cut and is closed (the SSH session after the
// notice naming the new version), while a raw client stays. Their
// listeners were handed over: both reconnect at once, to the new process.
func TestUpgradeClosesSessionsAndCarriesListeners(t *testing.T) {
	bin := chartee(t)
	dir := shortTempDir(t)
	g := newGuest(t)
	cert, key := writeCert(t, dir)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	sshPub, _ := ssh.NewPublicKey(pub)
	sshAddr := testaddr.Reserved(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`control: {socket: %s}
access:
  default: operate
  users: [{name: alice, authorized_keys: [%q]}]
ssh: {listen: %q, host_key: %q}
tees:
  - name: console
    frontend: {type: tcp-connect, address: %q}
    backends:
      - {name: secure, type: tcp-listen, listen: "127.0.0.1:0", tls: {cert: %q, key: %q}}
      - {name: raw, type: tcp-listen, listen: "127.0.0.1:0"}
`, sock, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), sshAddr, filepath.Join(dir, "hostkey"),
		g.ln.Addr().String(), cert, key))
	p := startProcess(t, bin, nil, "run", "-c", cfg)
	var secureAddr, rawAddr string
	waitFor(t, 15*time.Second, "the listeners", func() bool {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if _, a, ok := strings.Cut(l, "backend secure       listening on "); ok {
				secureAddr = a
			}
			if _, a, ok := strings.Cut(l, "backend raw          listening on "); ok {
				rawAddr = a
			}
		}
		return secureAddr != "" && rawAddr != ""
	})
	raw := newReader(t, rawAddr)
	tlsRead := func() (*tls.Conn, *sessionOut) {
		c, err := tls.Dial("tcp", secureAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, readAll(c)
	}
	sshOpen := func() *sessionOut {
		c, err := ssh.Dial("tcp", sshAddr, &ssh.ClientConfig{User: "alice:console", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out := &sessionOut{done: make(chan struct{})}
		s.Stdout = out
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		go func() { s.Wait(); close(out.done) }()
		return out
	}
	_, sec := tlsRead()
	term := sshOpen()
	waitFor(t, 10*time.Second, "output on every session", func() bool {
		return sec.len() > 90 && strings.Count(term.String(), "\n") > 10
	})
	r := runBinary(t, bin, "ctl", "--socket", sock, "--json", "upgrade", "--binary", bin)
	if r.code != exitOK {
		t.Fatalf("upgrade: exit %d\n%s%s\ndaemon log:\n%s", r.code, r.stdout, r.stderr, p.stderr.String())
	}
	var rep struct {
		NewVersion string            `json:"new_version"`
		NewPID     int               `json:"new_pid"`
		Closed     int               `json:"sessions_closed"`
		Cuts       map[string]uint64 `json:"cuts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	killByPID(t, rep.NewPID)
	if rep.Closed != 2 {
		t.Errorf("%d sessions closed, want 2 (TLS, SSH)", rep.Closed)
	}
	for what, o := range map[string]*sessionOut{"ssh": term, "tls": sec} {
		select {
		case <-o.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("the %s session was not closed by the upgrade", what)
		}
	}
	notice := "chartee: upgrading to " + rep.NewVersion + ", reconnect"
	if out := term.String(); !strings.Contains(out, notice) {
		t.Errorf("the SSH session did not get %q:\n%s", notice, out)
	}
	// The TLS client got the guest's counter with no gap up to the cut,
	// and nothing past it: the cut is at a line end here only by chance,
	// so check its length against the cut instead.
	s := sec.String()
	checkCounter(t, "TLS client", s)
	// Where it started: the first whole line's number, less the part of
	// a line before it (it joined mid-line).
	skip := strings.IndexByte(s, '\n') + 1
	if skip == 9 {
		skip = 0
	}
	first, err := strconv.Atoi(s[skip : skip+8])
	if err != nil {
		t.Fatalf("TLS client's stream %q...: %v", s[:min(len(s), 40)], err)
	}
	if end := uint64(first*9 - skip + len(s)); end != rep.Cuts["console"] {
		t.Errorf("the TLS client's stream ends at offset %d, the cut is at %d", end, rep.Cuts["console"])
	}
	// Their listeners are the new process's: reconnecting works at once.
	_, sec2 := tlsRead()
	term2 := sshOpen()
	waitFor(t, 10*time.Second, "output on the reconnected sessions", func() bool {
		return sec2.len() > 90 && strings.Count(term2.String(), "\n") > 5
	})
	if s, err := raw.snapshot(); err != nil {
		t.Fatalf("the raw client was disconnected: %v", err)
	} else {
		checkCounter(t, "raw client", s)
	}
}

// sessionOut collects what a session prints, until it ends.
type sessionOut struct {
	mu   sync.Mutex
	b    bytes.Buffer
	done chan struct{}
}

func (o *sessionOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *sessionOut) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func (o *sessionOut) len() int { return len(o.String()) }

func readAll(c io.Reader) *sessionOut {
	o := &sessionOut{done: make(chan struct{})}
	go func() { io.Copy(o, c); close(o.done) }()
	return o
}

// writeCert writes a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return cert, key
}
