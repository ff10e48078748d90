package tee

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/backends"
	"chartee/chardev"
	"chartee/chardev/memdev"
)

// TestDetachedCaptureFileIsComplete: a real asciicast capture holds back
// an incomplete UTF-8 sequence until its Close flushes it; once Detach
// returns, the file has it.
func TestDetachedCaptureFileIsComplete(t *testing.T) {
	h := newHarness(t, Options{})
	spec := backends.NewFileSpec()
	spec.Path = filepath.Join(t.TempDir(), "cap.cast")
	spec.Format = backends.FileAsciicast
	f, err := backends.NewFile(*spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, f)); err != nil {
		t.Fatal(err)
	}
	out := []byte("ok \xe2\x82") // the start of a euro sign
	h.emit(out)
	eventually(t, "capture written", func() bool { ls, _ := legStats(h.tee, "cap"); return ls.BytesOut == uint64(len(out)) })
	if err := h.tee.Detach("cap"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(spec.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("\uFFFD")) && !bytes.Contains(data, []byte(`\ufffd`)) {
		t.Fatalf("capture after Detach lacks the flushed tail:\n%s", data)
	}
}

// echoFront is a frontend that echoes what is written to it, and whose
// Write returns only after the echo is there to read, as on a fast pty.
type echoFront struct{ *memdev.Device }

func (e echoFront) Write(p []byte) (int, error) {
	e.Feed(p)
	time.Sleep(2 * time.Millisecond)
	return e.Device.Write(p)
}

// dirLog is a capture of both directions: it logs output (Write) and
// input (RecordInput) in the order the engine gives them.
type dirLog struct {
	mu     sync.Mutex
	log    []string // "o" or "i" followed by the bytes
	done   chan struct{}
	closed sync.Once
}

func newDirLog() *dirLog { return &dirLog{done: make(chan struct{})} }

func (d *dirLog) Read([]byte) (int, error) { <-d.done; return 0, memdev.ErrClosed }
func (d *dirLog) Close() error             { d.closed.Do(func() { close(d.done) }); return nil }
func (d *dirLog) Write(p []byte) (int, error) {
	d.add("o", p)
	return len(p), nil
}
func (d *dirLog) RecordInput(p []byte) error { d.add("i", p); return nil }

func (d *dirLog) add(dir string, p []byte) {
	d.mu.Lock()
	d.log = append(d.log, dir+string(p))
	d.mu.Unlock()
}

func (d *dirLog) entries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.log)
}

// direction returns every byte logged in one direction, in order.
func (d *dirLog) direction(dir string) string {
	var b strings.Builder
	for _, e := range d.entries() {
		if e[:1] == dir {
			b.WriteString(e[1:])
		}
	}
	return b.String()
}

var _ chardev.InputRecorder = (*dirLog)(nil)

// checkKeysRecordedBeforeEcho types keys one at a time into a tee whose
// frontend echoes them, with a capture of both directions: each key must
// be recorded as input before its echo as output, and once.
func checkKeysRecordedBeforeEcho(t *testing.T, front chardev.Chardev) {
	t.Helper()
	h := newHarness(t, Options{Frontend: memdev.Opener(nil, front)})
	rec := newDirLog()
	if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, rec)); err != nil {
		t.Fatal(err)
	}
	typist := h.attach("kbd", LegOptions{Input: true})
	keys := "abcdefghijklmnop"
	for i := range len(keys) {
		typist.Feed([]byte{keys[i]})
		eventually(t, "the echo captured", func() bool { return strings.Count(rec.direction("o"), keys[i:i+1]) == 1 })
	}
	log := rec.entries()
	for i := range len(keys) {
		k := keys[i : i+1]
		in := slices.IndexFunc(log, func(e string) bool { return e[0] == 'i' && strings.Contains(e[1:], k) })
		out := slices.IndexFunc(log, func(e string) bool { return e[0] == 'o' && strings.Contains(e[1:], k) })
		if in < 0 || in > out {
			t.Fatalf("key %q: input at %d, echo at %d in %q", k, in, out, log)
		}
	}
	if got := rec.direction("i"); got != keys {
		t.Fatalf("input recorded %q, want %q", got, keys)
	}
}

// TestCaptureRecordsInputBeforeItsEcho: in a capture of both directions a
// typed key comes before the echo it caused, even from a frontend that
// echoes before its Write returns.
func TestCaptureRecordsInputBeforeItsEcho(t *testing.T) {
	front := echoFront{memdev.New("front")}
	checkKeysRecordedBeforeEcho(t, front)
}

// TestInputRecordedOnceWhenItsWriteFails: input is recorded when it is
// sent; a chunk the frontend took only part of before failing is finished
// on the next device without being recorded again.
func TestInputRecordedOnceWhenItsWriteFails(t *testing.T) {
	first, second := memdev.New("first"), memdev.New("second")
	first.SetMaxWrite(3) // takes 3 bytes, then fails (io.ErrShortWrite)
	h := newHarness(t, Options{
		Frontend:  memdev.Opener(nil, first, second),
		Reconnect: Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond},
	})
	rec := newDirLog()
	if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, rec)); err != nil {
		t.Fatal(err)
	}
	typist := h.attach("kbd", LegOptions{Input: true})
	typist.Feed([]byte("abcdef"))
	waitBytes(t, second, []byte("def"))
	if got := first.Written(); string(got) != "abc" {
		t.Fatalf("first frontend got %q", got)
	}
	if got := rec.direction("i"); got != "abcdef" {
		t.Fatalf("input recorded %q, want %q once", got, "abcdef")
	}
}
