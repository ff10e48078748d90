package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestUpgradeClosesWhatCannotBeCarried: a TLS client and an SSH session
// (their keys live in this process) do not refuse an upgrade. At the cut
// they have every byte before it; after the commit they get nothing past
// it, the SSH session gets the notice, and both are closed. A raw client
// on the same tee is carried (not closed), and the SSH listener is handed
// over with the listeners.
func TestUpgradeClosesWhatCannotBeCarried(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeTestCert(t, dir)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	f := newFeeder(t)
	sshAddr := freePort(t)
	cfg := fmt.Sprintf(`access:
  default: operate
  users: [{name: alice, authorized_keys: [%q]}]
ssh:
  listen: %s
  host_key: %s
`, authorized, sshAddr, filepath.Join(dir, "host_key")) + teeYAML("t", f.addr(), indent(fmt.Sprintf(`- {name: secure, type: tcp-listen, listen: "127.0.0.1:0", tls: {cert: %q, key: %q}}
- {name: raw, type: tcp-listen, listen: "127.0.0.1:0"}`, cert, key)))
	d, _, _ := start(t, parse(t, cfg))
	tt, _ := d.Tee("t")
	addrs := map[string]string{}
	for _, b := range tt.Stats().Backends {
		addrs[b.Name] = b.Source
	}
	front := f.conn(t)

	tc, err := tls.Dial("tcp", addrs["secure"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	secure := collect(tc)
	raw := dial(t, addrs["raw"])
	sc, err := ssh.Dial("tcp", sshAddr, &ssh.ClientConfig{User: "alice:t", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sess, err := sc.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	term := &logBuf{}
	sess.Stdout = term
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	sshDone := make(chan error, 1)
	go func() { sshDone <- sess.Wait() }()
	waitFor(t, "three legs", func() bool { return len(tt.Stats().Legs) == 3 })

	before := "line before the cut\n"
	front.Write([]byte(before))
	waitFor(t, "every client to get the line", func() bool {
		return bytes.Contains(secure.bytes(), []byte(before)) && bytes.Contains(raw.bytes(), []byte(before)) &&
			strings.Contains(term.String(), "line before the cut")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fz, err := d.Freeze(ctx)
	if err != nil {
		t.Fatalf("Freeze refused: %v", err)
	}
	if fz.Left() != 2 {
		t.Fatalf("%d sessions left behind, want 2 (TLS, SSH)", fz.Left())
	}
	if _, f, err := d.SSHListener(); err != nil || f == nil {
		t.Fatalf("the SSH listener cannot be handed over: %v", err)
	} else {
		f.Close()
	}
	front.Write([]byte("after the cut\n"))
	fz.CloseLeft("chartee: upgrading to v2, reconnect", 10*time.Second)

	select {
	case <-sshDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the SSH session was not closed")
	}
	out := term.String()
	i, j := strings.Index(out, "line before the cut"), strings.Index(out, "chartee: upgrading to v2, reconnect")
	if i < 0 || j < i || strings.Contains(out, "after the cut") {
		t.Fatalf("SSH session saw %q: want the line, then the notice, nothing past the cut", out)
	}
	waitFor(t, "the TLS client closed", func() bool { return secure.failed() != nil })
	if got := secure.bytes(); string(got) != before {
		t.Fatalf("TLS client got %q, want exactly what was before the cut", got)
	}
	if raw.failed() != nil {
		t.Fatalf("the raw client (carried) was closed: %v", raw.failed())
	}
	fz.Thaw() // here the old process would exit; this test rolls back
	waitFor(t, "the raw client to go on after a rollback", func() bool {
		return bytes.Contains(raw.bytes(), []byte("after the cut\n"))
	})
}

// collect reads c in the background like dial's client.
func collect(c io.ReadCloser) *client {
	cl := &client{done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			cl.mu.Lock()
			cl.buf.Write(b[:n])
			if err != nil {
				cl.err = err
			}
			cl.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return cl
}

// writeTestCert writes a self-signed certificate for 127.0.0.1.
func writeTestCert(t *testing.T, dir string) (cert, key string) {
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
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}
