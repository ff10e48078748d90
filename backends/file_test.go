package backends

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"chartee/backends/capture"
	"chartee/chardev"
)

// fileTestClock is a capture.Clock that moves one second per call.
type fileTestClock struct{ t time.Time }

func (c *fileTestClock) now() time.Time {
	t := c.t
	c.t = c.t.Add(time.Second)
	return t
}

var fileT0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func fileSpecFor(path string, mutate func(*FileSpec)) FileSpec {
	s := NewFileSpec()
	s.Path = path
	if mutate != nil {
		mutate(s)
	}
	return *s
}

func fileMustOpen(t *testing.T, spec FileSpec) *File {
	t.Helper()
	f, err := NewFile(spec)
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fileMustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fileMustWrite(t *testing.T, f *File, s string) {
	t.Helper()
	n, err := f.Write([]byte(s))
	if err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func TestFileRegistered(t *testing.T) {
	fac, err := chardev.Lookup("file")
	if err != nil {
		t.Fatal(err)
	}
	if fac.Input || fac.Open == nil {
		t.Fatalf("factory Input=%v Open set=%v", fac.Input, fac.Open != nil)
	}
	spec, ok := fac.NewSpec().(*FileSpec)
	if !ok {
		t.Fatalf("NewSpec is %T", fac.NewSpec())
	}
	if spec.Format != FileRaw || spec.Direction != FileOut || !spec.Append || spec.Rotate.Keep != 5 || spec.Width != 80 || spec.Height != 24 {
		t.Fatalf("defaults %+v", spec)
	}
	spec.Path = filepath.Join(t.TempDir(), "cap.log")
	dev, err := fac.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := dev.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := chardev.Describe(dev); got != "file "+spec.Path+" (raw, out)" {
		t.Fatalf("Describe = %q", got)
	}
	if _, err := fac.Open(context.Background(), NewRingbufSpec()); err == nil || !strings.HasPrefix(err.Error(), "file: spec is") {
		t.Fatalf("Open with a foreign spec: %v", err)
	}
}

func TestFileSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*FileSpec)
		want   string
	}{
		{func(s *FileSpec) { s.Path = "" }, "file: path: required"},
		{func(s *FileSpec) { s.Format = "json" }, `file: format "json"`},
		{func(s *FileSpec) { s.Direction = "sideways" }, `file: direction "sideways"`},
		{func(s *FileSpec) { s.Rotate.MaxSize = -1 }, "file: rotate.max_size"},
		{func(s *FileSpec) { s.Rotate.Keep = -1 }, "file: rotate.keep"},
		{func(s *FileSpec) { s.Rotate.Compress = true }, "file: rotate.compress: needs rotate.max_size"},
		{func(s *FileSpec) { s.Width = -1 }, "file: width"},
		{func(s *FileSpec) { s.Height = -1 }, "file: height"},
	} {
		spec := fileSpecFor("x.log", tc.mutate)
		err := spec.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want prefix %q", spec, err, tc.want)
		}
		if _, err := NewFile(spec); err == nil {
			t.Errorf("NewFile(%+v) accepted an invalid spec", spec)
		}
	}
	zero := FileSpec{Path: "x.log"}
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero spec with a path: %v", err)
	}
}

func TestFileZeroSpecTruncatesAndWritesRaw(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.log")
	os.WriteFile(path, []byte("old"), 0o600)
	f := fileMustOpen(t, FileSpec{Path: path})
	fileMustWrite(t, f, "new")
	if got := fileMustRead(t, path); got != "new" {
		t.Fatalf("file %q", got)
	}
}

// TestFileDirections checks which of Write and RecordInput each direction
// records, for a raw capture.
func TestFileDirections(t *testing.T) {
	for dir, want := range map[FileDirection]string{FileOut: "o1o2", FileIn: "i1", FileBoth: "o1i1o2"} {
		t.Run(string(dir), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cap.log")
			f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) { s.Direction = dir }))
			fileMustWrite(t, f, "o1")
			if err := f.RecordInput([]byte("i1")); err != nil {
				t.Fatal(err)
			}
			fileMustWrite(t, f, "o2")
			if got := fileMustRead(t, path); got != want {
				t.Fatalf("file %q, want %q", got, want)
			}
			// The engine gives input only to a capture that records it.
			if got := chardev.RecordsInput(f); got != (dir != FileOut) {
				t.Fatalf("RecordsInput %v for direction %s", got, dir)
			}
		})
	}
}

// TestFileWritesReachTheOSAtOnce reads the file through another descriptor
// right after each Write: nothing waits in a user-space buffer that a
// kill -9 would lose.
func TestFileWritesReachTheOSAtOnce(t *testing.T) {
	for _, format := range []FileFormat{FileRaw, FileTimestamped, FileAsciicast} {
		t.Run(string(format), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cap")
			f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) { s.Format = format }))
			for i := range 3 {
				line := fmt.Sprintf("line %d\r\n", i)
				fileMustWrite(t, f, line)
				if got := fileMustRead(t, path); !strings.Contains(got, fmt.Sprintf("line %d", i)) {
					t.Fatalf("after write %d the file holds %q", i, got)
				}
			}
		})
	}
}

func TestFileAppendOrTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.log")
	os.WriteFile(path, []byte("old|"), 0o600)

	f := fileMustOpen(t, fileSpecFor(path, nil))
	fileMustWrite(t, f, "appended")
	f.Close()
	if got := fileMustRead(t, path); got != "old|appended" {
		t.Fatalf("append: file %q", got)
	}

	f = fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) { s.Append = false }))
	// The truncation waits for the first write, so that a start that
	// fails after the open loses nothing (see TestFileDiscardUndoesTheOpen).
	if got := fileMustRead(t, path); got != "old|appended" {
		t.Fatalf("append: false truncated before the first write: %q", got)
	}
	fileMustWrite(t, f, "fresh")
	if got := fileMustRead(t, path); got != "fresh" {
		t.Fatalf("truncate: file %q", got)
	}
}

func TestFileFullDiskFailsTheWrite(t *testing.T) {
	f := fileMustOpen(t, fileSpecFor("/dev/full", func(s *FileSpec) { s.Direction = FileBoth }))
	n, err := f.Write([]byte("hello"))
	if n != 0 || err == nil || err.Error() != "file: write /dev/full: no space left on device" {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %v does not wrap ENOSPC", err)
	}
	if err := f.RecordInput([]byte("typed")); err == nil || err.Error() != "file: write /dev/full: no space left on device" {
		t.Fatalf("RecordInput = %v", err)
	}

	// An asciicast header cannot be written either: the open fails.
	_, err = NewFile(fileSpecFor("/dev/full", func(s *FileSpec) { s.Format = FileAsciicast }))
	if err == nil || err.Error() != "file: write /dev/full: no space left on device" {
		t.Fatalf("asciicast on /dev/full: %v", err)
	}
	// Rotating a device would rename it: refused.
	_, err = NewFile(fileSpecFor("/dev/full", func(s *FileSpec) { s.Rotate.MaxSize = chardev.Size(1 << 20) }))
	if err == nil || !strings.Contains(err.Error(), "file: rotate: /dev/full is not a regular file") {
		t.Fatalf("rotate on /dev/full: %v", err)
	}
}

func TestFileOpenErrorNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "cap.log")
	_, err := NewFile(fileSpecFor(path, nil))
	if err == nil || !strings.HasPrefix(err.Error(), "file: open "+path+": no such file or directory (the directory ") {
		t.Fatalf("NewFile = %v", err)
	}
}

func TestFileReadBlocksUntilClose(t *testing.T) {
	f := fileMustOpen(t, fileSpecFor(filepath.Join(t.TempDir(), "cap.log"), nil))
	readErr := make(chan error, 1)
	go func() {
		_, err := f.Read(make([]byte, 10))
		readErr <- err
	}()
	fileMustWrite(t, f, "output does not make Read return")
	select {
	case err := <-readErr:
		t.Fatalf("Read returned before Close: %v", err)
	default:
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v, want os.ErrClosed", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
	if err := f.RecordInput([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("RecordInput after Close = %v", err)
	}
	if err := f.Reopen(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Reopen after Close = %v", err)
	}
}

// fileTestFIFO is a capture to a FIFO, and the FIFO's reader (opened
// first, non-blocking, so that the capture's open does not wait).
func fileTestFIFO(t *testing.T) (*File, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	reader, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	return fileMustOpen(t, fileSpecFor(path, nil)), reader
}

// TestFileCloseUnblocksWriteToFIFO captures to a FIFO whose reader never
// reads: the Write blocks once the pipe is full, and Close must free it.
func TestFileCloseUnblocksWriteToFIFO(t *testing.T) {
	f, reader := fileTestFIFO(t)

	writeErr := make(chan error, 1)
	go func() {
		_, err := f.Write(make([]byte, 4<<20)) // far more than a pipe holds
		writeErr <- err
	}()
	// Close only once the pipe is full, so the Write is surely blocked.
	capacity, err := unix.FcntlInt(reader.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		queued, err := unix.IoctlGetInt(int(reader.Fd()), unix.TIOCINQ) // FIONREAD
		if err != nil {
			t.Fatal(err)
		}
		if queued >= capacity {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipe holds %d of %d bytes after a minute", queued, capacity)
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-writeErr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked Write returned %v, want the deadline Close set", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Write still blocked a minute after Close")
	}
}

func TestFileReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cap.log")
	f := fileMustOpen(t, fileSpecFor(path, nil))
	fileMustWrite(t, f, "before|")
	if err := os.Rename(path, path+".rotated"); err != nil {
		t.Fatal(err)
	}
	fileMustWrite(t, f, "still old|") // until Reopen, the renamed file gets it
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	fileMustWrite(t, f, "after")
	if got := fileMustRead(t, path+".rotated"); got != "before|still old|" {
		t.Fatalf("renamed file %q", got)
	}
	if got := fileMustRead(t, path); got != "after" {
		t.Fatalf("new file %q", got)
	}
}

func TestFileReopenFailureIsReported(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	path := filepath.Join(sub, "cap.log")
	f := fileMustOpen(t, fileSpecFor(path, nil))
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil || !strings.HasPrefix(err.Error(), "file: open "+path) {
		t.Fatalf("Reopen into a removed directory = %v", err)
	}
	if _, err := f.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), "no open file") {
		t.Fatalf("Write after a failed Reopen = %v", err)
	}
}

// fileRotationChunks writes n numbered 30-byte chunks and returns them.
func fileRotationChunks(t *testing.T, f *File, n int) []string {
	var chunks []string
	for i := range n {
		c := fmt.Sprintf("chunk %02d %s\n", i, strings.Repeat("x", 20))
		fileMustWrite(t, f, c)
		chunks = append(chunks, c)
	}
	return chunks
}

func TestFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.log")
	f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) {
		s.Rotate = FileRotate{MaxSize: 100, Keep: 2}
	}))
	chunks := fileRotationChunks(t, f, 10) // 4 chunks (120 bytes) per file

	// Rotation runs once a file reaches 100 bytes, after its 4th chunk:
	// the files hold chunks 0-3, 4-7 and 8-9.
	want := map[string]string{
		path:        strings.Join(chunks[8:], ""),
		path + ".1": strings.Join(chunks[4:8], ""),
		path + ".2": strings.Join(chunks[0:4], ""),
	}
	for name, content := range want {
		if got := fileMustRead(t, name); got != content {
			t.Fatalf("%s holds %q, want %q", filepath.Base(name), got, content)
		}
	}
	fileRotationChunks(t, f, 2) // fills PATH: rotates again, dropping the oldest
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("keep 2 left a third backup: %v", err)
	}
	if got := fileMustRead(t, path+".2"); got != want[path+".1"] {
		t.Fatalf("PATH.2 after the second rotation holds %q", got)
	}
	if got := fileMustRead(t, path); got != "" {
		t.Fatalf("new PATH holds %q", got)
	}
}

func TestFileRotationKeepZeroStartsAfresh(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cap.log")
	f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) {
		s.Rotate = FileRotate{MaxSize: 100, Keep: 0}
	}))
	chunks := fileRotationChunks(t, f, 6)
	if got := fileMustRead(t, path); got != strings.Join(chunks[4:], "") {
		t.Fatalf("file %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("keep 0 left %d files", len(entries))
	}
}

func TestFileRotationCompresses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.log")
	f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) {
		s.Rotate = FileRotate{MaxSize: 100, Keep: 3, Compress: true}
	}))
	chunks := fileRotationChunks(t, f, 9)
	for name, content := range map[string]string{
		path + ".1.gz": strings.Join(chunks[4:8], ""),
		path + ".2.gz": strings.Join(chunks[0:4], ""),
	} {
		raw, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(zr)
		raw.Close()
		if err != nil || string(got) != content {
			t.Fatalf("%s holds %q (%v), want %q", filepath.Base(name), got, err, content)
		}
	}
	for _, plain := range []string{path + ".1", path + ".2"} {
		if _, err := os.Stat(plain); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left next to its .gz: %v", plain, err)
		}
	}
	if got := fileMustRead(t, path); got != chunks[8] {
		t.Fatalf("current file %q", got)
	}
}

func TestFileAppendToFullFileRotatesFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.log")
	os.WriteFile(path, bytes.Repeat([]byte("o"), 200), 0o600)
	f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) {
		s.Rotate = FileRotate{MaxSize: 100, Keep: 1}
	}))
	fileMustWrite(t, f, "new")
	if got := fileMustRead(t, path); got != "new" {
		t.Fatalf("file %q", got)
	}
	if got := fileMustRead(t, path+".1"); len(got) != 200 {
		t.Fatalf("backup holds %d bytes", len(got))
	}
}

// TestFileRotatedAsciicastFilesPlayAlone checks that every rotated
// asciicast file starts with its own header and that the files together
// hold the whole stream.
func TestFileRotatedAsciicastFilesPlayAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.cast")
	f := fileMustOpen(t, fileSpecFor(path, func(s *FileSpec) {
		s.Format = FileAsciicast
		s.Rotate = FileRotate{MaxSize: 200, Keep: 5}
	}))
	chunks := fileRotationChunks(t, f, 10)
	f.Close()
	names := []string{path}
	for i := 1; ; i++ {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, i)); err != nil {
			break
		}
		names = append([]string{fmt.Sprintf("%s.%d", path, i)}, names...)
	}
	if len(names) < 3 {
		t.Fatalf("only %d files: rotation did not happen", len(names))
	}
	var stream []byte
	for _, name := range names {
		raw, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		_, events, err := capture.ParseAsciicast(raw)
		raw.Close()
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(name), err)
		}
		stream = append(stream, capture.Stream(events, capture.CodeOutput)...)
	}
	if string(stream) != strings.Join(chunks, "") {
		t.Fatalf("stream across files %q", stream)
	}
}

func TestFileAsciicastAppendKeepsOneHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.cast")
	spec := fileSpecFor(path, func(s *FileSpec) { s.Format = FileAsciicast; s.Direction = FileBoth })

	first, err := fileOpen(spec, (&fileTestClock{t: fileT0}).now)
	if err != nil {
		t.Fatal(err)
	}
	fileMustWrite(t, first, "caf\xc3") // é split across writes and sessions
	if err := first.RecordInput([]byte("q")); err != nil {
		t.Fatal(err)
	}
	first.Close()

	second, err := fileOpen(spec, (&fileTestClock{t: fileT0.Add(100 * time.Second)}).now)
	if err != nil {
		t.Fatal(err)
	}
	fileMustWrite(t, second, "bye\n")
	second.Close()

	content := fileMustRead(t, path)
	if n := strings.Count(content, `"version"`); n != 1 {
		t.Fatalf("%d headers:\n%s", n, content)
	}
	h, events, err := capture.ParseAsciicast(strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if h.Timestamp != fileT0.Unix() || h.Width != 80 || h.Height != 24 {
		t.Fatalf("header %+v", h)
	}
	// Session one: header at 0s, "caf" at 1s, "q" at 2s, the held \xc3
	// flushed at close as U+FFFD (3s). Session two: "bye" 100s after the
	// header.
	want := []capture.Event{
		{Time: 1, Code: "o", Data: "caf"},
		{Time: 2, Code: "i", Data: "q"},
		{Time: 3, Code: "o", Data: "\ufffd"},
		{Time: 100, Code: "o", Data: "bye\n"},
	}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("events\n%v\nwant\n%v", events, want)
	}
}

func TestFileAsciicastRefusesToAppendToOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(path, []byte("just some text\n"), 0o600)
	_, err := NewFile(fileSpecFor(path, func(s *FileSpec) { s.Format = FileAsciicast }))
	if err == nil || !strings.Contains(err.Error(), "not a JSON object") || !strings.Contains(err.Error(), "append: false") {
		t.Fatalf("NewFile = %v", err)
	}
	if got := fileMustRead(t, path); got != "just some text\n" {
		t.Fatalf("the file was changed: %q", got)
	}
}

func TestFileTimestampedBothRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.log")
	spec := fileSpecFor(path, func(s *FileSpec) { s.Format = FileTimestamped; s.Direction = FileBoth })
	f, err := fileOpen(spec, (&fileTestClock{t: fileT0}).now)
	if err != nil {
		t.Fatal(err)
	}
	fileMustWrite(t, f, "login: ")
	f.RecordInput([]byte("root\r"))
	fileMustWrite(t, f, "root\r\nPass")
	f.Close()

	// A second session appends to the file, which ends mid-line.
	f, err = fileOpen(spec, (&fileTestClock{t: fileT0.Add(time.Hour)}).now)
	if err != nil {
		t.Fatal(err)
	}
	fileMustWrite(t, f, "word: ")
	f.Close()

	content := fileMustRead(t, path)
	want := "2026-11-25T10:00:00.000Z > login: \n" +
		"2026-11-25T10:00:01.000Z+< root\r\n" +
		"2026-11-25T10:00:02.000Z+> root\r\n" +
		"2026-11-25T10:00:02.000Z > Pass\n" +
		"2026-11-25T11:00:00.000Z+> word: "
	if content != want {
		t.Fatalf("file\n%q\nwant\n%q", content, want)
	}
	lines, err := capture.ParseTimestamped([]byte(content), true)
	if err != nil {
		t.Fatal(err)
	}
	var out, in []byte
	for _, l := range lines {
		if l.Dir == capture.Input {
			in = append(in, l.Data...)
		} else {
			out = append(out, l.Data...)
		}
	}
	if string(out) != "login: root\r\nPassword: " || string(in) != "root\r" {
		t.Fatalf("parsed out %q in %q", out, in)
	}
}
