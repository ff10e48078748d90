package backends

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"chartee/chardev"
)

func unixTestListen(t *testing.T, path string, edit func(*UnixListenSpec)) *NetSource {
	t.Helper()
	spec := NewUnixListenSpec()
	spec.Path = path
	if edit != nil {
		edit(spec)
	}
	src, err := unixListen(context.Background(), spec)
	if err != nil {
		t.Fatalf("unix-listen: %v", err)
	}
	return src.(*NetSource)
}

func TestUnixListenValidate(t *testing.T) {
	cases := []struct {
		name, want string
		edit       func(*UnixListenSpec)
	}{
		{"missing path", "path: required", func(s *UnixListenSpec) { s.Path = "" }},
		{"mode not octal", "mode", func(s *UnixListenSpec) { s.Mode = "rw-rw----" }},
		{"mode too large", "mode", func(s *UnixListenSpec) { s.Mode = "1777" }},
		{"mode with 8", "mode", func(s *UnixListenSpec) { s.Mode = "0680" }},
		{"bad protocol", "protocol", func(s *UnixListenSpec) { s.Protocol = "ssh" }},
		{"tls cert without key", "tls: key", func(s *UnixListenSpec) { s.TLS = &NetServerTLS{Cert: "c"} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := NewUnixListenSpec()
			spec.Path = "/run/x.sock"
			c.edit(spec)
			err := spec.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestUnixListenRegistry: through the registry; bytes both ways; the
// client is named by its process; Close removes the socket file and
// leaves the client working.
func TestUnixListenRegistry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.sock")
	f, err := chardev.Lookup("unix-listen")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*UnixListenSpec)
	spec.Path = path
	spec.Banner = "hello\n"
	src, err := f.Listen(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	srv := netServe(t, src)
	if src.Addr() != path {
		t.Fatalf("Addr() = %q, want %q", src.Addr(), path)
	}
	c := netDial(t, "unix", path)
	dev := srv.next(t)
	netWrite(t, dev, "out")
	netReadString(t, c, "hello\nout")
	netWrite(t, c, "in")
	netReadString(t, dev, "in")
	want := fmt.Sprintf("pid %d uid %d #1", os.Getpid(), os.Getuid())
	if p := dev.(chardev.Peer).Peer(); p != want {
		t.Errorf("Peer() = %q, want %q", p, want)
	}

	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file after Close: %v, want it removed", err)
	}
	netWrite(t, c, "still")
	netReadString(t, dev, "still")
}

func TestUnixListenMode(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []string{"0600", "0660", "0777"} {
		path := filepath.Join(dir, mode+".sock")
		src := unixTestListen(t, path, func(s *UnixListenSpec) { s.Mode = mode })
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%04o", fi.Mode().Perm()); got != mode {
			t.Errorf("mode %s: socket file has %s", mode, got)
		}
		if fi.Mode().Type() != fs.ModeSocket {
			t.Errorf("mode %s: %s is not a socket", mode, fi.Mode())
		}
		_ = src.Close()
	}
}

func TestUnixListenStaleSocket(t *testing.T) {
	dir := t.TempDir()

	// A socket file left by a server that died: removed, and listened on.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
	if _, err := os.Lstat(stale); err != nil {
		t.Fatalf("setting up the stale socket: %v", err)
	}
	src := unixTestListen(t, stale, nil)
	srv := netServe(t, src)
	c := netDial(t, "unix", stale)
	dev := srv.next(t)
	netWrite(t, c, "fresh")
	netReadString(t, dev, "fresh")

	// A socket someone still listens on: refused, and left in place.
	spec := NewUnixListenSpec()
	spec.Path = stale
	if _, err := unixListen(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "listening") {
		t.Fatalf("Listen on a live socket = %v, want an in-use error", err)
	}
	netWrite(t, c, "undisturbed")
	netReadString(t, dev, "undisturbed")

	// A file that is not a socket is never removed.
	regular := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(regular, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec.Path = regular
	if _, err := unixListen(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen on a regular file = %v, want a not-a-socket error", err)
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "keep me" {
		t.Fatalf("regular file after the refused Listen: %q, %v", b, err)
	}
}

func TestUnixListenMaxClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "one.sock")
	src := unixTestListen(t, path, func(s *UnixListenSpec) { s.MaxClients = 1 })
	srv := netServe(t, src)
	netDial(t, "unix", path)
	srv.next(t)
	c2 := netDial(t, "unix", path)
	buf := make([]byte, 64)
	n, _ := c2.Read(buf)
	if string(buf[:n]) != netRejectLine {
		t.Fatalf("second client read %q, want the notice", buf[:n])
	}
	srv.none(t)
}
