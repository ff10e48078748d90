package backends

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chartee/chardev"
)

func unixTestPeer(t *testing.T, path string) *netTestPeer {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return netListenPeer(t, ln)
}

func TestUnixConnectValidate(t *testing.T) {
	spec := NewUnixConnectSpec()
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "path: required") {
		t.Fatalf("missing path: %v", err)
	}
	spec.Path = "/run/qemu.sock"
	spec.Protocol = "ssh"
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("bad protocol: %v", err)
	}
	spec.Protocol = ProtocolRaw
	spec.TLS = &NetClientTLS{CA: "ca.pem"}
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "server_name") {
		t.Fatalf("tls without server_name: %v", err)
	}
	spec.TLS = &NetClientTLS{ServerName: "x", Cert: "c.pem"}
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "tls: key") {
		t.Fatalf("tls cert without key: %v", err)
	}
	spec.TLS = nil
	if _, err := unixConnect(context.Background(), spec); err == nil || !strings.HasPrefix(err.Error(), "unix-connect: ") {
		t.Fatalf("Open with nothing listening: %v", err)
	}
}

// TestUnixConnectReconnect is the QEMU case: chartee attached to a chardev
// socket server that restarts (the guest rebooted with a new QEMU).
func TestUnixConnectReconnect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qemu.sock")
	peer := unixTestPeer(t, path)
	f, err := chardev.Lookup("unix-connect")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*UnixConnectSpec)
	spec.Path = path
	spec.Reconnect = &NetReconnect{Initial: chardev.Duration(10 * time.Millisecond), Max: chardev.Duration(50 * time.Millisecond)}
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	srv := peer.next(t)
	netWrite(t, srv, "boot log")
	netReadString(t, dev, "boot log")
	if d := chardev.Describe(dev); d != "unix-connect "+path {
		t.Errorf("Describe() = %q", d)
	}

	// The engine always has a Read waiting; it is what sees the loss.
	readc := netReadOnce(dev)
	peer.stop()
	_ = srv.Close()
	netWaitFor(t, "the device to notice the loss", func() bool {
		return strings.Contains(chardev.Describe(dev), "reconnecting")
	})
	peer2 := unixTestPeer(t, path)
	srv2 := peer2.next(t)
	netWrite(t, dev, "typed after restart")
	netReadString(t, srv2, "typed after restart")
	netWrite(t, srv2, "second boot")
	select {
	case got := <-readc:
		if got != "second boot" {
			t.Fatalf("the waiting Read got %q", got)
		}
	case <-time.After(netTestTimeout):
		t.Fatal("the waiting Read never returned")
	}
}
