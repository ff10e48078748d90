package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// readAll drains b from off the way a scrollback client does.
func readAll(b *Buffer, off uint64) (data []byte, next, missed uint64) {
	p := make([]byte, 7) // small on purpose: exercises partial reads
	next = off
	for {
		n, nx, m := b.ReadAt(next, p)
		missed += m
		data = append(data, p[:n]...)
		next = nx
		if n == 0 {
			return data, next, missed
		}
	}
}

func TestZeroBufferWorks(t *testing.T) {
	var b Buffer
	if got := b.Stats(); got != (Stats{Size: DefaultSize}) {
		t.Fatalf("zero Stats = %+v", got)
	}
	b.Write([]byte("hello"))
	data, next, missed := readAll(&b, 0)
	if string(data) != "hello" || next != 5 || missed != 0 {
		t.Fatalf("got %q next=%d missed=%d", data, next, missed)
	}
}

func TestOverwriteReportsMissed(t *testing.T) {
	b := New(8)
	b.Write([]byte("0123456789")) // larger than the buffer
	b.Write([]byte("ab"))
	st := b.Stats()
	if st.Written != 12 || st.Oldest != 4 || st.Size != 8 {
		t.Fatalf("Stats = %+v", st)
	}
	data, next, missed := readAll(b, 1)
	if string(data) != "456789ab" || next != 12 || missed != 3 {
		t.Fatalf("from 1: got %q next=%d missed=%d", data, next, missed)
	}
	data, _, missed = readAll(b, 10)
	if string(data) != "ab" || missed != 0 {
		t.Fatalf("from 10: got %q missed=%d", data, missed)
	}
	n, next, missed := b.ReadAt(100, make([]byte, 4))
	if n != 0 || next != 12 || missed != 0 {
		t.Fatalf("past the end: n=%d next=%d missed=%d", n, next, missed)
	}
}

// TestReadAtProperty checks ReadAt against a model that keeps every byte:
// from any offset, a reader gets exactly the kept suffix of the history and
// the count of bytes it lost.
func TestReadAtProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.IntRange(1, 64).Draw(t, "size")
		b := New(size)
		var history []byte
		writes := rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 0, 100)).Draw(t, "writes")
		for _, w := range writes {
			n, err := b.Write(w)
			if n != len(w) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			history = append(history, w...)
		}
		total := uint64(len(history))
		oldest := uint64(0)
		if total > uint64(size) {
			oldest = total - uint64(size)
		}
		if st := b.Stats(); st.Written != total || st.Oldest != oldest {
			t.Fatalf("Stats = %+v, want written %d oldest %d", st, total, oldest)
		}
		off := rapid.Uint64Range(0, total+3).Draw(t, "off")
		bufLen := rapid.IntRange(0, 80).Draw(t, "bufLen")
		n, next, missed := b.ReadAt(off, make([]byte, bufLen))

		start := max(off, oldest)
		wantMissed := uint64(0)
		if off < oldest {
			wantMissed = oldest - off
		}
		wantN := 0
		if start < total {
			wantN = min(bufLen, int(total-start))
		}
		if missed != wantMissed || n != wantN {
			t.Fatalf("ReadAt(%d) n=%d missed=%d, want n=%d missed=%d", off, n, missed, wantN, wantMissed)
		}
		p := make([]byte, bufLen)
		b.ReadAt(off, p)
		if start < total && !bytes.Equal(p[:n], history[start:start+uint64(n)]) {
			t.Fatalf("ReadAt(%d) = %q, want %q", off, p[:n], history[start:start+uint64(n)])
		}
		wantNext := min(start, total) + uint64(n)
		if next != wantNext {
			t.Fatalf("next = %d, want %d", next, wantNext)
		}
		all, _, _ := readAll(b, 0)
		if !bytes.Equal(all, history[oldest:]) {
			t.Fatalf("kept %q, want %q", all, history[oldest:])
		}
	})
}

func TestWaitReturnsOnWriteCloseAndContext(t *testing.T) {
	b := New(16)
	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background(), 0) }()
	b.Write([]byte("x"))
	if err := <-done; err != nil {
		t.Fatalf("Wait after write: %v", err)
	}
	if err := b.Wait(context.Background(), 0); err != nil {
		t.Fatalf("Wait with data already there: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- b.Wait(ctx, 1) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}

	go func() { done <- b.Wait(context.Background(), 1) }()
	b.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close = %v, want ErrClosed", err)
	}
	b.Close() // idempotent
	if data, _, _ := readAll(b, 0); string(data) != "x" {
		t.Fatalf("after Close kept %q, want x", data)
	}
}

// TestFollowersSeeEveryByte runs one writer and several followers; each
// follower's buffer is large enough that nothing is lost, so every follower
// must read back the exact stream.
func TestFollowersSeeEveryByte(t *testing.T) {
	const writes = 500
	var want bytes.Buffer
	for i := range writes {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	b := New(want.Len())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const followers = 4
	got := make([][]byte, followers)
	errs := make([]error, followers)
	var wg sync.WaitGroup
	for i := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = follow(ctx, b)
		}()
	}
	for line := range bytes.Lines(want.Bytes()) {
		b.Write(line)
	}
	b.Close()
	wg.Wait()
	for i := range followers {
		if errs[i] != nil {
			t.Fatalf("follower %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], want.Bytes()) {
			t.Fatalf("follower %d read %d bytes, want %d", i, len(got[i]), want.Len())
		}
	}
}

// follow reads b from offset 0 until it is closed.
func follow(ctx context.Context, b *Buffer) ([]byte, error) {
	var out []byte
	p := make([]byte, 13)
	var off uint64
	for {
		n, next, missed := b.ReadAt(off, p)
		if missed != 0 {
			return out, fmt.Errorf("missed %d bytes at %d", missed, off)
		}
		out = append(out, p[:n]...)
		off = next
		if n > 0 {
			continue
		}
		if err := b.Wait(ctx, off); errors.Is(err, ErrClosed) {
			return out, nil
		} else if err != nil {
			return out, err
		}
	}
}

// TestSlowFollowerIsToldWhatItMissed has a follower that reads only after
// the writer lapped it: the bytes it got plus the bytes it missed account
// for the whole stream.
func TestSlowFollowerIsToldWhatItMissed(t *testing.T) {
	b := New(10)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 100 {
			b.Write([]byte{byte('a' + i%26)})
		}
	}()
	wg.Wait()
	data, next, missed := readAll(b, 0)
	if uint64(len(data))+missed != next || next != 100 || len(data) != 10 {
		t.Fatalf("got %d bytes, missed %d, next %d", len(data), missed, next)
	}
}
