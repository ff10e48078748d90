package rawio

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipe returns both ends of a pipe (non-blocking, served by the poller)
// and an FD for each.
func pipe(t *testing.T) (r, w *os.File, rf, wf *FD) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	wc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return r, w, New(rc), New(wc)
}

// TestReadWaitsThenReads: a Read with nothing to read waits (through the
// poller) for what is written later, and reads it.
func TestReadWaitsThenReads(t *testing.T) {
	_, _, rf, wf := pipe(t)
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 16)
		n, err := rf.Read(buf)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	time.Sleep(10 * time.Millisecond) // let the reader wait (not needed for correctness)
	if n, err := wf.TryWrite([]byte("key")); n != 3 || err != nil {
		t.Fatalf("TryWrite: %d, %v", n, err)
	}
	select {
	case s := <-got:
		if s != "key" {
			t.Fatalf("read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read never returned")
	}
}

// TestReadEOF: the other end closed, Read reports io.EOF.
func TestReadEOF(t *testing.T) {
	_, w, rf, _ := pipe(t)
	w.Close()
	if n, err := rf.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read: %d, %v; want 0, io.EOF", n, err)
	}
}

// TestTryWriteNeverWaits: into a full pipe TryWrite takes part or
// nothing, at once, without an error.
func TestTryWriteNeverWaits(t *testing.T) {
	_, _, _, wf := pipe(t)
	p := make([]byte, 4096)
	total := 0
	for i := 0; ; i++ {
		n, err := wf.TryWrite(p)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n == 0 {
			break
		}
		if i > 1<<14 {
			t.Fatal("pipe never filled")
		}
	}
	if total == 0 {
		t.Fatal("nothing written to an empty pipe")
	}
}

// TestTryWriteBrokenPipe: a write no reader will ever read fails.
func TestTryWriteBrokenPipe(t *testing.T) {
	r, _, _, wf := pipe(t)
	r.Close()
	if _, err := wf.TryWrite([]byte("x")); err == nil {
		t.Fatal("TryWrite to a pipe without a reader succeeded")
	}
}

// TestReadDeadlineAndClose: a read deadline ends a waiting Read with
// os.ErrDeadlineExceeded, and Close ends one with an error too.
func TestReadDeadlineAndClose(t *testing.T) {
	r, _, rf, _ := pipe(t)
	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := rf.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	r.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := rf.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read on a closed descriptor: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
}

// TestNoAllocations: a read and a write allocate nothing.
func TestNoAllocations(t *testing.T) {
	_, _, rf, wf := pipe(t)
	p, buf := []byte("k"), make([]byte, 8)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := wf.TryWrite(p); err != nil {
			t.Fatal(err)
		}
		if _, err := rf.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per read and write", allocs)
	}
}
