package backends

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chartee/chardev"
)

// ptyReadExactly reads n bytes from f within a generous deadline.
func ptyReadExactly(t *testing.T, f *os.File, n int) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, buf)
	}
	return string(buf)
}

// TestPtyCarry: a pty carried to a new process keeps its program on the
// slave attached through the link: output before and after the cut
// arrives exactly once, what the program types while frozen reaches the
// new process, the link still points at the same slave, and the program
// never reads a hangup (the old process's descriptors close as at its
// exit, the new one's are open by then).
func TestPtyCarry(t *testing.T) {
	link := filepath.Join(t.TempDir(), "console")
	spec := &PtySpec{Link: link}
	old, err := OpenPty(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	client := ptyTestClient(t, link)
	if _, err := old.Write([]byte("before the cut\n")); err != nil {
		t.Fatal(err)
	}
	if got := ptyReadExactly(t, client, 15); got != "before the cut\n" {
		t.Fatalf("client read %q", got)
	}
	if err := old.Freeze(); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Read(make([]byte, 16)); !errors.Is(err, chardev.ErrFrozen) {
		t.Fatalf("Read on a frozen pty: %v, want ErrFrozen", err)
	}
	client.Write([]byte("typed while frozen\n"))
	c, err := old.Carry()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ptyInherit(spec, c)
	if err != nil {
		t.Fatal(err)
	}
	np := dev.(*Pty)
	defer np.Close()
	if np.Name() != old.Name() {
		t.Fatalf("inherited pty %s, was %s", np.Name(), old.Name())
	}
	np.Thaw() // the commit
	// The old process exits: its descriptors close, nothing else.
	old.master.Close()
	old.slave.Close()
	if target, err := os.Readlink(link); err != nil || target != np.Name() {
		t.Fatalf("link -> %q (%v), want %s", target, err, np.Name())
	}
	buf := make([]byte, 64)
	var typed []byte
	for len(typed) < 19 {
		n, err := np.Read(buf)
		if err != nil {
			t.Fatalf("new process read: %v", err)
		}
		typed = append(typed, buf[:n]...)
	}
	if string(typed) != "typed while frozen\n" {
		t.Fatalf("the new process read %q", typed)
	}
	if _, err := np.Write([]byte("after the cut\n")); err != nil {
		t.Fatal(err)
	}
	if got := ptyReadExactly(t, client, 14); got != "after the cut\n" {
		t.Fatalf("client read %q after the handover", got)
	}
	np.Close()
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the link outlived the pty's close: %v", err)
	}
}

// TestPtyInheritedDiscardKeepsLink: a new process that drops an
// inherited pty before the commit (a failed upgrade) leaves the link and
// the pty to the old process, which goes on; a carried pty whose link
// the new config changes is refused.
func TestPtyInheritedDiscardKeepsLink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "console")
	spec := &PtySpec{Link: link}
	old, err := OpenPty(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	client := ptyTestClient(t, link)
	old.Freeze()
	c, err := old.Carry()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ptyInherit(spec, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := chardev.Discard(dev); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != old.Name() {
		t.Fatalf("after the discard the link -> %q (%v), want %s", target, err, old.Name())
	}
	c, err = old.Carry()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ptyInherit(&PtySpec{Link: link + "2"}, c); err == nil || !strings.Contains(err.Error(), "the new config wants") {
		t.Fatalf("inherit with another link: %v", err)
	}
	old.Thaw() // rollback
	old.Write([]byte("still here\n"))
	if got := ptyReadExactly(t, client, 11); got != "still here\n" {
		t.Fatalf("client read %q", got)
	}
}

// FuzzPtyCarryState: any carried pty state is decoded or refused with an
// error, never a panic.
func FuzzPtyCarryState(f *testing.F) {
	f.Add([]byte(`{"slave":"/dev/pts/3","link":"/run/console"}`))
	f.Add([]byte(`{"slave":""}`))
	f.Add([]byte(`{"slave":"/dev/pts/3","extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodePtyState(data)
		if err == nil && st.Slave == "" {
			t.Fatal("accepted a state without a slave")
		}
	})
}

// TestPtyFreezeWrite: a Write blocked because nobody reads the slave is
// cut short by FreezeWrite, saying how much it wrote; the new process
// writes the rest, and a program that attaches later reads every byte
// once, in order.
func TestPtyFreezeWrite(t *testing.T) {
	old, err := OpenPty(context.Background(), &PtySpec{})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	done := make(chan struct{})
	var n int
	var werr error
	go func() {
		defer close(done)
		n, werr = old.Write(big)
	}()
	old.Freeze()
	if err := old.FreezeWrite(); err != nil {
		t.Fatal(err)
	}
	<-done
	if !errors.Is(werr, chardev.ErrFrozen) || n >= len(big) {
		t.Fatalf("cut write: %d bytes, %v; want fewer than %d and ErrFrozen", n, werr, len(big))
	}
	c, err := old.Carry()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ptyInherit(&PtySpec{}, c)
	if err != nil {
		t.Fatal(err)
	}
	np := dev.(*Pty)
	defer np.Close()
	np.Thaw()
	old.master.Close()
	old.slave.Close()
	client := ptyTestClient(t, np.Name())
	wdone := make(chan error, 1)
	go func() {
		_, err := np.Write(big[n:])
		wdone <- err
	}()
	if got := ptyReadExactly(t, client, len(big)); got != string(big) {
		t.Fatal("the program read a different stream than was written across the cut")
	}
	if err := <-wdone; err != nil {
		t.Fatal(err)
	}
}
