package main

import (
	"bytes"
	"fmt"
)

// The output stream every client must receive byte-exact. Byte i of the
// stream is pattern[i mod patternLen]: pseudo-random values 0..250 over a
// prime period of about 1 MiB, so a lost, duplicated or reordered run of
// bytes shows as a mismatch unless it is an exact multiple of the period
// long (and the byte count is checked too). syncByte (0xFF) never occurs in
// the pattern: the bench sends it before the measured stream to learn that
// every client is connected, and clients skip it.
const (
	patternLen = 1048573
	syncByte   = 0xFF
)

// pattern2 holds the period twice, so any window of up to patternLen bytes
// starting anywhere in the period is one contiguous slice.
var pattern2 = func() []byte {
	p := make([]byte, 2*patternLen)
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < patternLen; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x % 251)
	}
	copy(p[patternLen:], p[:patternLen])
	return p
}()

// patternAt returns up to n stream bytes starting at stream offset off.
func patternAt(off uint64, n int) []byte {
	if n > patternLen {
		n = patternLen
	}
	o := int(off % patternLen)
	return pattern2[o : o+n]
}

// verifier checks a received stream against the pattern incrementally.
type verifier struct {
	synced  bool   // a sync byte was seen
	started bool   // the first pattern byte was seen
	off     uint64 // stream bytes verified so far
	bad     error  // first mismatch; later bytes are only counted
	extra   uint64 // bytes after a mismatch
}

// feed checks b. It returns true the first time a sync byte is seen.
func (v *verifier) feed(b []byte) (justSynced bool) {
	if !v.started {
		i := 0
		for i < len(b) && b[i] == syncByte {
			i++
		}
		if i > 0 && !v.synced {
			v.synced, justSynced = true, true
		}
		b = b[i:]
		if len(b) == 0 {
			return justSynced
		}
		v.started = true
	}
	if v.bad != nil {
		v.extra += uint64(len(b))
		return justSynced
	}
	for len(b) > 0 {
		want := patternAt(v.off, len(b))
		got := b[:len(want)]
		if !bytes.Equal(got, want) {
			j := 0
			for got[j] == want[j] {
				j++
			}
			v.bad = fmt.Errorf("byte %d: got %#02x, want %#02x", v.off+uint64(j), got[j], want[j])
			v.off += uint64(j)
			v.extra += uint64(len(b) - j)
			return justSynced
		}
		v.off += uint64(len(want))
		b = b[len(want):]
	}
	return justSynced
}
