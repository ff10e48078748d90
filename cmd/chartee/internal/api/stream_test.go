package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"chartee/tee"
)

func (e *env) attachRing(name string, size string) {
	e.t.Helper()
	if err := e.c.Attach(ctxT(e.t), "console", backendJSON(e.t, map[string]any{"name": name, "type": "ringbuf", "size": size})); err != nil {
		e.t.Fatal(err)
	}
}

// waitRing waits until the ring has received n bytes.
func (e *env) waitRing(name string, n uint64) {
	e.t.Helper()
	eventually(e.t, "ring to receive output", func() bool {
		info, err := e.c.ReadData(ctxT(e.t), "console", name, 1<<62, false, io.Discard)
		return err == nil && info.End >= n
	})
}

func TestDataRead(t *testing.T) {
	e := newEnv(t, Options{})
	e.attachRing("rb", "4KiB")
	e.emit("abcdef")
	e.waitRing("rb", 6)
	ctx := ctxT(t)
	var buf bytes.Buffer
	if err := e.c.Data(ctx, "console", "rb", 0, false, &buf); err != nil || buf.String() != "abcdef" {
		t.Fatalf("Data: %q, %v", buf.String(), err)
	}
	buf.Reset()
	info, err := e.c.ReadData(ctx, "console", "rb", 2, false, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != "cdef" || info != (DataInfo{Offset: 2, Next: 6, End: 6}) {
		t.Fatalf("got %q %+v", buf.String(), info)
	}
	// Past the end: nothing, and where the ring stands.
	buf.Reset()
	info, err = e.c.ReadData(ctx, "console", "rb", 100, false, &buf)
	if err != nil || buf.Len() != 0 || info.Next != 6 || info.End != 6 {
		t.Fatalf("past the end: %q %+v %v", buf.String(), info, err)
	}
	resp, body := e.raw("GET", "/v1/tees/console/backends/rb/data?offset=3", "", nil)
	if resp.StatusCode != 200 || string(body) != "def" || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Header.Get(HeaderOffset) != "3" || resp.Header.Get(HeaderNext) != "6" || resp.Header.Get(HeaderEnd) != "6" ||
		resp.Header.Get(HeaderMissed) != "0" || resp.ContentLength != 3 {
		t.Fatalf("raw: %s %q %v", resp.Status, body, resp.Header)
	}
}

func TestDataMissed(t *testing.T) {
	e := newEnv(t, Options{})
	e.attachRing("rb", "16")
	e.emit("0123456789abcdefghij") // 20 bytes into 16
	e.waitRing("rb", 20)
	var buf bytes.Buffer
	info, err := e.c.ReadData(ctxT(t), "console", "rb", 0, false, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != "456789abcdefghij" || info.Offset != 4 || info.Missed != 4 || info.Next != 20 {
		t.Fatalf("got %q %+v", buf.String(), info)
	}
}

func TestDataQueryErrors(t *testing.T) {
	e := newEnv(t, Options{})
	e.attachRing("rb", "1KiB")
	for _, q := range []string{"offset=-1", "offset=x", "follow=maybe", "folow=1", "offset=1&offset=2"} {
		resp, body := e.raw("GET", "/v1/tees/console/backends/rb/data?"+q, "", nil)
		if resp.StatusCode != 400 || !strings.Contains(string(body), CodeBadRequest) {
			t.Errorf("%s: %s %s", q, resp.Status, body)
		}
	}
}

func TestDataFollow(t *testing.T) {
	e := newEnv(t, Options{ReadTimeout: 400 * time.Millisecond, WriteTimeout: 400 * time.Millisecond})
	e.attachRing("rb", "4KiB")
	e.emit("before;")
	e.waitRing("rb", 7)
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- e.c.Data(context.Background(), "console", "rb", 0, true, &out) }()
	eventually(t, "kept output", func() bool { return out.String() == "before;" })
	// A live follower outlasts ReadTimeout and WriteTimeout: the stream is
	// not a slow request, and each chunk gets its own write deadline.
	time.Sleep(800 * time.Millisecond)
	e.emit("live1;")
	eventually(t, "live output", func() bool { return out.String() == "before;live1;" })
	e.emit("live2")
	eventually(t, "more live output", func() bool { return out.String() == "before;live1;live2" })
	e.shutdownEnds("follow", done)
}

// shutdownEnds shuts the server down and checks that the stream (named
// what) whose end done reports ends cleanly with it.
func (e *env) shutdownEnds(what string, done <-chan error) {
	e.t.Helper()
	e.shutdown()
	select {
	case err := <-done:
		if err != nil {
			e.t.Fatalf("%s ended with %v, want nil on shutdown", what, err)
		}
	case <-time.After(wait):
		e.t.Fatalf("%s stream did not end on Shutdown", what)
	}
}

// followResult is how a following ReadData ended.
type followResult struct {
	info DataInfo
	err  error
}

// followRing follows ring backend name of tee "console" from offset 0 into
// out until the stream ends, and then sends how it ended.
func (e *env) followRing(name string, out io.Writer) <-chan followResult {
	done := make(chan followResult, 1)
	go func() {
		info, err := e.c.ReadData(context.Background(), "console", name, 0, true, out)
		done <- followResult{info, err}
	}()
	return done
}

func TestDataFollowEndsWhenBackendGoes(t *testing.T) {
	e := newEnv(t, Options{})
	e.attachRing("rb", "4KiB")
	e.emit("x")
	e.waitRing("rb", 1)
	var out syncBuffer
	done := e.followRing("rb", &out)
	eventually(t, "kept output", func() bool { return out.String() == "x" })
	if err := e.c.Detach(ctxT(t), "console", "rb"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.info.Next != 1 || r.info.Gap != 0 {
			t.Fatalf("follow ended with %+v, %v", r.info, r.err)
		}
	case <-time.After(wait):
		t.Fatal("follow stream did not end when the backend went away")
	}
}

func TestDataFollowEndsAtGap(t *testing.T) {
	e := newEnv(t, Options{})
	e.attachRing("rb", "16")
	e.emit("abc")
	e.waitRing("rb", 3)
	var out syncBuffer
	done := e.followRing("rb", &out)
	eventually(t, "kept output", func() bool { return out.String() == "abc" })
	// The server now waits at offset 3; one 40-byte chunk laps it.
	e.emit(strings.Repeat("z", 40))
	var r followResult
	select {
	case r = <-done:
	case <-time.After(wait):
		t.Fatal("follow stream did not end at the gap")
	}
	if r.err != nil || r.info.Next != 3 || r.info.Gap != 43-16-3 {
		t.Fatalf("follow ended with %+v, %v; want next 3, gap 24", r.info, r.err)
	}
	// Data resumes after a gap with what is kept, then follows on.
	ctx, cancel := context.WithCancel(context.Background())
	var all syncBuffer
	dataDone := make(chan error, 1)
	go func() { dataDone <- e.c.Data(ctx, "console", "rb", 3, true, &all) }()
	eventually(t, "resumed output", func() bool { return all.String() == strings.Repeat("z", 16) })
	cancel()
	if err := <-dataDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Data after cancel: %v", err)
	}
}

func TestDataFollowRawTrailers(t *testing.T) {
	e := newEnv(t, Options{})
	e.attachRing("rb", "4KiB")
	e.emit("hey")
	e.waitRing("rb", 3)
	req, _ := http.NewRequestWithContext(ctxT(t), "GET", "http://chartee/v1/tees/console/backends/rb/data?offset=1&follow=1", nil)
	resp, err := e.c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get(HeaderOffset) != "1" || resp.Header.Get(HeaderMissed) != "0" {
		t.Fatalf("headers %v", resp.Header)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "ey" {
		t.Fatalf("read %q %v", buf, err)
	}
	go e.c.Detach(context.Background(), "console", "rb")
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("rest %q %v", rest, err)
	}
	if resp.Trailer.Get(HeaderNext) != "3" || resp.Trailer.Get(HeaderMissed) != "0" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t, Options{ReadTimeout: 400 * time.Millisecond, WriteTimeout: 400 * time.Millisecond})
	got := make(chan tee.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- e.c.Events(context.Background(), func(ev tee.Event) error {
			got <- ev
			return nil
		})
	}()
	eventually(t, "subscription", func() bool { return e.d.subscribers.Load() == 1 })
	time.Sleep(800 * time.Millisecond) // outlast Read- and WriteTimeout
	if err := e.c.Attach(ctxT(t), "console", backendJSON(t, map[string]any{"name": "nul", "type": "null"})); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Kind != tee.EventAttach || ev.Tee != "console" || ev.Backend != "nul" || ev.Time.IsZero() {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(wait):
		t.Fatal("no attach event")
	}
	e.shutdownEnds("events", done)
	eventually(t, "unsubscribe", func() bool { return e.d.subscribers.Load() == 0 })
}

func TestEventsCallbackErrorAndRawFormat(t *testing.T) {
	e := newEnv(t, Options{})
	stop := errors.New("enough")
	done := make(chan error, 1)
	go func() {
		done <- e.c.Events(context.Background(), func(tee.Event) error { return stop })
	}()
	eventually(t, "subscription", func() bool { return e.d.subscribers.Load() == 1 })
	if err := e.c.Attach(ctxT(t), "console", backendJSON(t, map[string]any{"name": "nul", "type": "null"})); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, stop) {
		t.Fatalf("Events returned %v, want the callback's error", err)
	}
	eventually(t, "server notices the client left", func() bool { return e.d.subscribers.Load() == 0 })

	req, _ := http.NewRequestWithContext(ctxT(t), "GET", "http://chartee/v1/events", nil)
	resp, err := e.c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	if err := e.c.Detach(ctxT(t), "console", "nul"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 0, 512)
	one := make([]byte, 1)
	for !bytes.HasSuffix(line, []byte("\n")) {
		if _, err := resp.Body.Read(one); err != nil {
			t.Fatalf("read: %v after %q", err, line)
		}
		line = append(line, one[0])
	}
	if !bytes.Contains(line, []byte(`"kind":"detach"`)) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("line %q", line)
	}
}

// TestStalledFollowerDropped: a follower that stops reading is dropped
// after WriteTimeout instead of holding a handler (and its ring reader)
// forever.
func TestStalledFollowerDropped(t *testing.T) {
	e := newEnv(t, Options{WriteTimeout: 200 * time.Millisecond})
	// block: the ring gets every byte, so the test knows when all are in.
	if err := e.c.Attach(ctxT(t), "console", backendJSON(t, map[string]any{"name": "rb", "type": "ringbuf", "size": "8MiB", "on_overflow": "block"})); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/tees/console/backends/rb/data?follow=1 HTTP/1.1\r\nHost: chartee\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Far more than the socket buffers hold, while the client reads nothing.
	const total = 4 << 20
	e.emit(strings.Repeat("y", total))
	e.waitRing("rb", total)
	time.Sleep(time.Second) // several WriteTimeouts with the writes stuck
	conn.SetReadDeadline(time.Now().Add(wait))
	data, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("stalled follower still connected after reading %d bytes", len(data))
	}
	if len(data) >= total || bytes.HasSuffix(data, []byte("0\r\n\r\n")) || !bytes.HasPrefix(data, []byte("HTTP/1.1 200")) {
		t.Fatalf("got %d bytes ending %q; want a cut-off stream", len(data), data[max(0, len(data)-20):])
	}
}

// TestDataLargeRingInPieces: one response carries at most 1 MiB; Data
// asks again until it has caught up.
func TestDataLargeRingInPieces(t *testing.T) {
	e := newEnv(t, Options{})
	if err := e.c.Attach(ctxT(t), "console", backendJSON(t, map[string]any{"name": "rb", "type": "ringbuf", "size": "4MiB", "on_overflow": "block"})); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 5<<19) // 2.5 MiB
	for i := range want {
		want[i] = byte('a' + i%26)
	}
	e.emit(string(want))
	e.waitRing("rb", uint64(len(want)))
	var first bytes.Buffer
	info, err := e.c.ReadData(ctxT(t), "console", "rb", 0, false, &first)
	if err != nil {
		t.Fatal(err)
	}
	if first.Len() != maxDataResponse || info.Next != maxDataResponse || info.End != uint64(len(want)) {
		t.Fatalf("first piece: %d bytes, %+v", first.Len(), info)
	}
	var all bytes.Buffer
	if err := e.c.Data(ctxT(t), "console", "rb", 0, false, &all); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(all.Bytes(), want) {
		t.Fatalf("Data returned %d bytes, want the %d kept", all.Len(), len(want))
	}
}
