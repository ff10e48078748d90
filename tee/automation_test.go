package tee

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"chartee/chardev"
)

func TestSendWritesAndReportsOffset(t *testing.T) {
	h := newHarness(t, Options{})
	h.emit([]byte("boot log\r\n"))
	// Offset() is published once every leg was offered the chunk, a
	// moment after the reader gave it its offset.
	eventually(t, "offset 10 published", func() bool { return h.tee.Offset() == 10 })
	res, err := h.tee.Send(context.Background(), "ctl", []byte("echo hi\r"), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 8 || res.Offset != 10 {
		t.Fatalf("send: %+v, want 8 bytes at offset 10", res)
	}
	if got := string(h.front.Written()); got != "echo hi\r" {
		t.Fatalf("frontend got %q", got)
	}
	if st := h.tee.Stats(); st.Frontend.InputPending != 0 {
		t.Fatalf("input pending %d after send returned", st.Frontend.InputPending)
	}
}

func TestSendRespectsTheWriteLock(t *testing.T) {
	h := newHarness(t, Options{Input: Exclusive, ExclusiveIdle: time.Hour})
	a := h.attach("a", LegOptions{Input: true})
	a.Feed([]byte("A"))
	eventually(t, "a holds the lock", func() bool { return h.tee.Stats().WriteLock == "a" })
	_, err := h.tee.Send(context.Background(), "ctl", []byte("x"), false)
	if !errors.Is(err, chardev.ErrNotPermitted) {
		t.Fatalf("send while a holds the lock: %v, want ErrNotPermitted", err)
	}
	if _, err := h.tee.Send(context.Background(), "ctl", []byte("F"), true); err != nil {
		t.Fatalf("forced send: %v", err)
	}
	if got := string(h.front.Written()); got != "AF" {
		t.Fatalf("frontend got %q, want AF", got)
	}
	if st := h.tee.Stats(); st.WriteLock != "a" {
		t.Fatalf("a forced send took the lock from a: holder %q", st.WriteLock)
	}
}

func TestSendRefusesWhatDoesNotFit(t *testing.T) {
	h := newHarness(t, Options{InputBuffer: 16})
	_, err := h.tee.Send(context.Background(), "ctl", bytes.Repeat([]byte("x"), 17), false)
	if !errors.Is(err, ErrInputFull) {
		t.Fatalf("oversized send: %v", err)
	}
	if h.front.WrittenLen() != 0 {
		t.Fatalf("part of a refused send was written")
	}
}

func TestSendWaitsForTheFrontend(t *testing.T) {
	h := newHarness(t, Options{})
	h.front.Stall()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.tee.Send(ctx, "ctl", []byte("x"), false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send to a stalled frontend: %v", err)
	}
	h.front.Resume()
	eventually(t, "the queued byte written after all", func() bool { return string(h.front.Written()) == "x" })
}

func TestPacingSpacesInput(t *testing.T) {
	h := newHarness(t, Options{InputPacing: Pacing{CharDelay: 2 * time.Millisecond, LineDelay: 20 * time.Millisecond}})
	a := h.attach("a", LegOptions{Input: true})
	start := time.Now()
	a.Feed([]byte("0123456789\r\n"))
	eventually(t, "a's line queued", func() bool { ls, _ := legStats(h.tee, "a"); return ls.BytesIn == 12 })
	if _, err := h.tee.Send(context.Background(), "ctl", []byte("abcdefghij"), false); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	// 22 bytes at >= 2ms, one line ending at >= 20ms: at least 62ms.
	if el < 62*time.Millisecond {
		t.Fatalf("22 paced bytes took %s", el)
	}
	// Stats answer while input is being paced: the answer itself shows
	// input pending (had Stats waited for the pacing, none would be).
	// 500 bytes at 2ms keep it pending for a second or more.
	a.Feed(bytes.Repeat([]byte("z"), 500))
	eventually(t, "paced input under way", func() bool { return h.tee.Stats().Frontend.InputPending > 0 })
	if p := h.tee.Stats().Frontend.InputPending; p == 0 {
		t.Errorf("Stats answered only once the paced input was written")
	}
	eventually(t, "all input", func() bool { return h.front.WrittenLen() == 522 })
	if got := string(h.front.Written()[:22]); got != "0123456789\r\nabcdefghij" {
		t.Fatalf("paced input out of order: %q", got)
	}
	h.tee.SetPacing(Pacing{})
	if _, err := h.tee.Send(context.Background(), "ctl", []byte("fast"), false); err != nil {
		t.Fatal(err)
	}
}

func TestPauseAfter(t *testing.T) {
	p := Pacing{CharDelay: time.Millisecond, LineDelay: 10 * time.Millisecond}
	b := []byte("a\r\nb\rc\n")
	var got []time.Duration
	for n := 1; n <= len(b); n++ {
		got = append(got, pauseAfter(b, n, p))
	}
	ms, ten := time.Millisecond, 10*time.Millisecond
	want := []time.Duration{ms, ms, ten, ms, ten, ms, ten}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pauses %v, want %v", got, want)
		}
	}
	if k := pacedPiece([]byte("abc\rdef"), Pacing{LineDelay: ten}); k != 4 {
		t.Fatalf("line-paced piece %d, want 4", k)
	}
}
