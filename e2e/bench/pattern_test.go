package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stream returns n pattern bytes from offset 0, preceded by sync bytes.
func stream(sync, n int) []byte {
	b := make([]byte, 0, sync+n)
	for range sync {
		b = append(b, syncByte)
	}
	for off := 0; off < n; {
		p := patternAt(uint64(off), n-off)
		b = append(b, p...)
		off += len(p)
	}
	return b
}

func TestPatternNeverHoldsTheSyncByte(t *testing.T) {
	for i, c := range pattern2[:patternLen] {
		if c > 250 {
			t.Fatalf("pattern byte %d is %#x: outside 0..250", i, c)
		}
	}
}

func TestVerifierAcceptsTheStreamInAnySplit(t *testing.T) {
	const n = 3*patternLen + 12345 // crosses the period more than once
	s := stream(3, n)
	for _, step := range []int{1, 7, 4096, 65536, patternLen + 1} {
		var v verifier
		synced := 0
		for i := 0; i < len(s); i += step {
			if v.feed(s[i:min(i+step, len(s))]) {
				synced++
			}
			if step == 1 && i > 20000 {
				break // one byte at a time is slow; the start is what matters
			}
		}
		if v.bad != nil || synced != 1 || !v.started {
			t.Fatalf("step %d: bad=%v synced=%d started=%v", step, v.bad, synced, v.started)
		}
		if step > 1 && (v.off != n || v.extra != 0) {
			t.Fatalf("step %d: verified %d (+%d extra), want %d", step, v.off, v.extra, n)
		}
	}
}

func TestVerifierCatchesLossDuplicationAndReordering(t *testing.T) {
	s := stream(1, 200000)
	cases := map[string][]byte{
		"lost byte":      append(append([]byte{}, s[:5000]...), s[5001:]...),
		"duplicate run":  append(append(append([]byte{}, s[:5000]...), s[4000:5000]...), s[5000:]...),
		"swapped chunks": append(append(append([]byte{}, s[:4000]...), s[8000:12000]...), s[4000:8000]...),
		"flipped byte": func() []byte {
			b := append([]byte{}, s...)
			b[123456] ^= 1
			return b
		}(),
	}
	for name, b := range cases {
		var v verifier
		v.feed(b)
		if v.bad == nil {
			t.Errorf("%s: not detected", name)
		} else if !strings.Contains(v.bad.Error(), "byte ") {
			t.Errorf("%s: error %q does not name the offset", name, v.bad)
		}
	}
}

func TestVerifierNeedsTheStartOfTheStream(t *testing.T) {
	s := stream(1, 10000)
	var v verifier
	v.feed(s[:1])     // the sync byte
	v.feed(s[1+100:]) // a client that missed the first 100 bytes
	if v.bad == nil {
		t.Fatal("a stream missing its first bytes was accepted")
	}
}
