package backends

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

// ptyTestClient opens the pty through its link the way minicom would.
func ptyTestClient(t *testing.T, path string) *os.File {
	t.Helper()
	c, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ptyTestTermios reads f's termios without f.Fd(), which would switch f to
// blocking mode and defeat read deadlines.
func ptyTestTermios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	var term *unix.Termios
	err := tty.Control(f, func(fd int) error {
		var err error
		term, err = unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return term
}

func TestPtyClientsComeAndGo(t *testing.T) {
	link := filepath.Join(t.TempDir(), "console")
	f, err := chardev.Lookup("pty")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*PtySpec)
	spec.Link, spec.Mode = link, "0600"
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	p := dev.(*Pty)
	defer p.Close()

	target, err := os.Readlink(link)
	if err != nil || target != p.Name() {
		t.Fatalf("link -> %q (%v), want %s", target, err, p.Name())
	}
	if d := p.Describe(); !strings.Contains(d, link) || !strings.Contains(d, p.Name()) {
		t.Errorf("Describe() = %q", d)
	}
	st, err := os.Stat(p.Name())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("slave mode %v, want 0600", st.Mode().Perm())
	}

	client := ptyTestClient(t, link)
	term := ptyTestTermios(t, client)
	if term.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 || term.Oflag&unix.OPOST != 0 {
		t.Errorf("slave not raw: lflag %#x oflag %#x", term.Lflag, term.Oflag)
	}
	if _, err := client.Write([]byte("typed\r")); err != nil {
		t.Fatal(err)
	}
	serialReadUntil(t, p, "typed\r")
	if _, err := p.Write([]byte("shown\n")); err != nil {
		t.Fatal(err)
	}
	serialMasterReadUntil(t, client, "shown\n")

	// The program detaches; the leg stays, and what is written meanwhile
	// waits for the next program.
	client.Close()
	if _, err := p.Write([]byte("while away\n")); err != nil {
		t.Fatalf("Write with no client attached: %v", err)
	}
	client2 := ptyTestClient(t, link)
	serialMasterReadUntil(t, client2, "while away\n")
	if _, err := client2.Write([]byte("back again")); err != nil {
		t.Fatal(err)
	}
	// Had the master seen a hangup, this Read would fail with EIO.
	serialReadUntil(t, p, "back again")

	serialAssertCloseUnblocksRead(t, p)
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link still there after Close: %v", err)
	}
}

// An existing link (left by a crashed run) is replaced; a link someone
// else took over is not removed on Close.
func TestPtyLinkReplacedAndLeftIfTakenOver(t *testing.T) {
	link := filepath.Join(t.TempDir(), "console")
	if err := os.Symlink("/dev/pts/stale", link); err != nil {
		t.Fatal(err)
	}
	p, err := OpenPty(context.Background(), &PtySpec{Link: link})
	if err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(link); target != p.Name() {
		t.Errorf("link -> %q, want %s", target, p.Name())
	}
	p2, err := OpenPty(context.Background(), &PtySpec{Link: link})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(link); target != p2.Name() {
		t.Errorf("after closing the old pty, link -> %q, want %s", target, p2.Name())
	}
	entries, _ := os.ReadDir(filepath.Dir(link))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want just the link (no temporary names left)", len(entries))
	}
}

func TestPtyLineSettings(t *testing.T) {
	p, err := OpenPty(context.Background(), &PtySpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := chardev.LineSettings{Baud: 9600, DataBits: 8, StopBits: chardev.StopBits2}
	if err := p.SetLineSettings(want); err != nil {
		t.Fatal(err)
	}
	if got, err := p.LineSettings(); err != nil || got != want {
		t.Errorf("LineSettings() = %v, %v; want %v", got, err, want)
	}
	// An attached program changing the termios is what gets reported.
	client := ptyTestClient(t, p.Name())
	term := ptyTestTermios(t, client)
	if term.Cflag&unix.CBAUD != unix.B9600 {
		t.Errorf("client sees cflag %#x, want B9600", term.Cflag)
	}
	term.Cflag = term.Cflag&^unix.CBAUD | unix.B38400
	if err := tty.Control(client, func(fd int) error { return unix.IoctlSetTermios(fd, unix.TCSETS, term) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.LineSettings(); got.Baud != 38400 {
		t.Errorf("after the client set 38400: %v", got)
	}
	if _, ok := chardev.Chardev(p).(chardev.ModemController); ok {
		t.Error("a pty claims modem lines")
	}
	if err := chardev.SetModemLines(p, nil, nil); !chardev.IsUnsupported(err) {
		t.Errorf("modem lines: %v, want unsupported", err)
	}
}

func TestPtySpecValidate(t *testing.T) {
	for _, mode := range []string{"999", "rw-r--r--", "01777"} {
		err := (&PtySpec{Mode: mode}).Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "pty: mode:") {
			t.Errorf("mode %q: %v, want an error naming mode", mode, err)
		}
	}
	if err := (&PtySpec{Link: "/"}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "pty: link:") {
		t.Errorf("link /: %v, want an error naming link", err)
	}
	if err := (&PtySpec{Link: "/run/x", Mode: "0660"}).Validate(); err != nil {
		t.Error(err)
	}
	_, err := OpenPty(context.Background(), &PtySpec{Link: filepath.Join(t.TempDir(), "no", "such", "dir", "x")})
	if err == nil || !strings.HasPrefix(err.Error(), "pty: link:") {
		t.Errorf("link in a missing directory: %v", err)
	}
}
