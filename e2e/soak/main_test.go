package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The pattern is one stream: any window of it equals the same bytes cut
// from a longer window starting at 0.
func TestPatternWindowsAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		off := rapid.IntRange(0, 1<<16).Draw(t, "off")
		n := rapid.IntRange(0, 4096).Draw(t, "n")
		whole := make([]byte, off+n)
		pattern(0, whole)
		win := make([]byte, n)
		pattern(uint64(off), win)
		if !bytes.Equal(win, whole[off:]) {
			t.Fatalf("window [%d,+%d) differs from the stream", off, n)
		}
	})
}

// A client that joins anywhere, and reads in any pieces, finds its offset
// and accepts the stream; one changed byte is caught and counted.
func TestClientChecksTheStream(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		join := rapid.IntRange(0, 1<<14).Draw(t, "join")
		n := rapid.IntRange(200, 8192).Draw(t, "n")
		corrupt := rapid.IntRange(-1, n-1).Draw(t, "corrupt")
		stream := make([]byte, n)
		pattern(uint64(join), stream)
		if corrupt >= 0 {
			stream[corrupt] ^= 0x20
		}
		f := &figures{}
		c := &client{name: "c", f: f, start: -1}
		want := make([]byte, 1024)
		var err error
		for b := stream; len(b) > 0 && err == nil; {
			k := min(len(b), rapid.IntRange(1, 300).Draw(t, "piece"))
			err = c.check(b[:k], want)
			b = b[k:]
		}
		// A corrupted offset field can make the client believe it joined
		// elsewhere; every other byte is compared with the pattern.
		switch {
		case corrupt < 0 && err != nil:
			t.Fatalf("a clean stream was refused: %v", err)
		case corrupt < 0 && c.next() != uint64(join+n):
			t.Fatalf("client at %d, want %d", c.next(), join+n)
		case corrupt >= 0 && err == nil:
			t.Fatalf("a changed byte at %d went unnoticed (client at %d)", corrupt, c.next())
		}
	})
}
