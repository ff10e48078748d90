package backends

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"chartee/chardev"
)

// fileMustWriteBuffers writes bufs with one WriteBuffers and checks that
// all of them were taken.
func fileMustWriteBuffers(t *testing.T, f *File, bufs ...string) {
	t.Helper()
	var bs [][]byte
	total := 0
	for _, b := range bufs {
		bs = append(bs, []byte(b))
		total += len(b)
	}
	n, err := f.WriteBuffers(bs)
	if err != nil || n != int64(total) {
		t.Fatalf("WriteBuffers(%q) = %d, %v", bufs, n, err)
	}
}

// TestFileWriteBuffersRaw: a raw capture writes a batch whole, in order,
// and at once (read back through another descriptor), truncating a file
// it was to overwrite at that first write.
func TestFileWriteBuffersRaw(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.raw")
	if err := os.WriteFile(path, []byte("old contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) { s.Append = false }))
	fileMustWriteBuffers(t, f, "login: ", "", "root\r\n", "Password: ")
	if got := fileMustRead(t, path); got != "login: root\r\nPassword: " {
		t.Fatalf("file holds %q", got)
	}
	fileMustWrite(t, f, "|")
	fileMustWriteBuffers(t, f, "a", "b")
	if got := fileMustRead(t, path); got != "login: root\r\nPassword: |ab" {
		t.Fatalf("file holds %q", got)
	}
}

// TestFileWriteBuffersRotates: a batch that fills the file rotates it,
// like a Write does.
func TestFileWriteBuffersRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.raw")
	f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) { s.Rotate = FileRotate{MaxSize: 100, Keep: 1} }))
	batch := []string{strings.Repeat("a", 20), strings.Repeat("b", 20), strings.Repeat("c", 20)}
	fileMustWriteBuffers(t, f, batch...) // 60 bytes
	fileMustWriteBuffers(t, f, batch...) // 120: rotated after this batch
	fileMustWriteBuffers(t, f, "next")
	if got, want := fileMustRead(t, path+".1"), strings.Repeat(strings.Join(batch, ""), 2); got != want {
		t.Fatalf("PATH.1 holds %q, want %q", got, want)
	}
	if got := fileMustRead(t, path); got != "next" {
		t.Fatalf("PATH holds %q after the rotation", got)
	}
}

// TestFileWriteBuffersEncodesOtherFormats: a timestamped capture encodes
// a batch as the same Writes would, and a direction:in capture takes and
// drops it.
func TestFileWriteBuffersEncodesOtherFormats(t *testing.T) {
	dir := t.TempDir()
	open := func(name string, mutate func(*FileSpec)) *File {
		f, err := fileOpen(fileSpecFor(filepath.Join(dir, name), mutate), (&fileTestClock{t: fileT0}).now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	stamped := func(s *FileSpec) { s.Format = FileTimestamped }
	byBatch, byWrite := open("batch", stamped), open("writes", stamped)
	fileMustWriteBuffers(t, byBatch, "line 1\r\nli", "ne 2\r\n")
	fileMustWrite(t, byWrite, "line 1\r\nli")
	fileMustWrite(t, byWrite, "ne 2\r\n")
	got, want := fileMustRead(t, filepath.Join(dir, "batch")), fileMustRead(t, filepath.Join(dir, "writes"))
	if got != want || !strings.Contains(got, "line 2") {
		t.Fatalf("timestamped batch wrote %q, Writes %q", got, want)
	}
	in := open("in", func(s *FileSpec) { s.Direction = FileIn })
	fileMustWriteBuffers(t, in, "output", "dropped")
	if got := fileMustRead(t, filepath.Join(dir, "in")); got != "" {
		t.Fatalf("a direction:in capture recorded output: %q", got)
	}
}

// TestFileWriteBuffersToASlowFIFO: a FIFO takes a batch far larger than
// the pipe in parts as its reader drains it; the reader gets it whole.
func TestFileWriteBuffersToASlowFIFO(t *testing.T) {
	f, reader := fileTestFIFO(t)
	var bufs [][]byte
	var want []byte
	for i := range 8 {
		b := bytes.Repeat([]byte{byte('a' + i)}, 100_000+i)
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := f.WriteBuffers(bufs)
		done <- result{n, err}
	}()
	got, err := io.ReadAll(io.LimitReader(reader, int64(len(want))))
	if err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.n != int64(len(want)) {
		t.Fatalf("WriteBuffers = %d, %v; want %d", r.n, r.err, len(want))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the FIFO's reader got %d bytes, not the batch of %d", len(got), len(want))
	}
}

// TestFileWriteBuffersErrors: a full disk fails the batch naming the
// file and the cause; after Close the capture refuses it.
func TestFileWriteBuffersErrors(t *testing.T) {
	full := fileMustOpen(t, fileSpecFor("/dev/full", nil))
	n, err := full.WriteBuffers([][]byte{[]byte("a"), []byte("b")})
	if n != 0 || err == nil || err.Error() != "file: write /dev/full: no space left on device" || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteBuffers to /dev/full = %d, %v", n, err)
	}
	f := fileMustOpen(t, fileSpecFor(filepath.Join(t.TempDir(), "cap"), nil))
	f.Close()
	if _, err := f.WriteBuffers([][]byte{[]byte("late")}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("WriteBuffers after Close = %v", err)
	}
}

func TestSkipWritten(t *testing.T) {
	bufs := func() [][]byte { return [][]byte{[]byte("abc"), []byte(""), []byte("de"), []byte("f")} }
	for m, want := range map[int]string{0: "abc|de|f", 1: "bc|de|f", 3: "de|f", 4: "e|f", 5: "f", 6: ""} {
		var parts []string
		for _, b := range skipWritten(bufs(), m) {
			if len(b) > 0 {
				parts = append(parts, string(b))
			}
		}
		if got := strings.Join(parts, "|"); got != want {
			t.Errorf("skipWritten(%d) leaves %q, want %q", m, got, want)
		}
	}
}

// TestNetClientWriteBuffers: a client gets a batch whole and in order,
// through its protocol layer where it has one (telnet escapes the byte
// 0xff, so every byte value but a bare CR comes through as it was).
func TestNetClientWriteBuffers(t *testing.T) {
	for _, proto := range []string{ProtocolRaw, ProtocolTelnet} {
		t.Run(proto, func(t *testing.T) {
			var bufs [][]byte // WriteBuffers may consume them, as net.Buffers does
			var want []byte
			for i := range 4 {
				b := make([]byte, 256)
				for j := range b {
					b[j] = byte(j + i)
					if b[j] == '\r' { // NVT sends a bare CR as CR NUL
						b[j] = 'r'
					}
				}
				bufs = append(bufs, b)
				want = append(want, b...)
			}
			src := tcpTestListen(t, func(s *TCPListenSpec) { s.Protocol = proto })
			srv := netServe(t, src)
			client := tcpTestClient(t, src, proto)
			leg := srv.next(t)
			bw, ok := leg.(chardev.BuffersWriter)
			if !ok {
				t.Fatalf("%T does not write batches", leg)
			}
			n, err := bw.WriteBuffers(bufs)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("WriteBuffers = %d, %v", n, err)
			}
			netReadString(t, client, string(want))
		})
	}
}
