package web

import (
	"bytes"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"chartee/tee"
)

func TestResumeStart(t *testing.T) {
	for _, c := range []struct {
		want      uint64
		resume    bool
		start     uint64
		lost      uint64
		restarted bool
	}{
		{0, false, 500, 0, false},  // first connection: replay, nothing lost
		{300, true, 300, 0, false}, // everything still in the scrollback
		{100, true, 250, 150, false},
		{900, true, 400, 0, true}, // beyond this stream: it restarted
	} {
		lost, re := resumeStart(c.want, c.resume, c.start)
		if lost != c.lost || re != c.restarted {
			t.Errorf("resumeStart(%d, %v, %d) = %d, %v; want %d, %v", c.want, c.resume, c.start, lost, re, c.lost, c.restarted)
		}
	}
}

// TestResumeProperty drives a real server and tee: for any sequence of
// output, disconnects (from the page or the server) and reconnects, the
// bytes a page received are exactly the stream at the offsets it thinks
// they are at, nothing is received twice, and the loss it was told is
// exactly what it did not receive.
func TestResumeProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		scroll := rapid.IntRange(16, 400).Draw(rt, "scrollback")
		e := newEnv(t, tee.Options{Scrollback: scroll}, Options{Leg: tee.LegOptions{Replay: 0}})
		c := e.login("bob")
		var stream []byte
		emit := func(n, seed int) {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte('a' + (len(stream)+i+seed)%26)
			}
			stream = append(stream, p...)
			e.emit(p)
		}
		emit(rapid.IntRange(0, 300).Draw(rt, "before"), 0)
		w := e.open(c, streamPos{})
		var got []seg
		var lost uint64
		first := w.hi.Offset
		steps := rapid.IntRange(1, 6).Draw(rt, "steps")
		for i := range steps {
			emit(rapid.IntRange(0, 500).Draw(rt, fmt.Sprint("live", i)), i)
			w.waitOffset(uint64(len(stream)))
			switch rapid.IntRange(0, 2).Draw(rt, fmt.Sprint("cut", i)) {
			case 0: // the page goes away
				w.close()
			case 1: // the server cuts it (detach ends every browser leg)
				if err := e.tee.Detach(BackendName); err != nil {
					rt.Fatal(err)
				}
				<-w.done
			case 2: // stays connected
				continue
			}
			w.mu.Lock()
			got = append(got, w.segs...)
			pos := w.pos
			w.mu.Unlock()
			emit(rapid.IntRange(0, 500).Draw(rt, fmt.Sprint("offline", i)), i+7)
			w = e.open(c, pos)
			lost = w.pos.lost
		}
		emit(rapid.IntRange(0, 100).Draw(rt, "last"), 3)
		w.waitOffset(uint64(len(stream)))
		w.mu.Lock()
		got = append(got, w.segs...)
		lost = w.pos.lost
		end := w.pos.next
		w.mu.Unlock()
		w.close()
		if end != uint64(len(stream)) {
			rt.Fatalf("page at offset %d, stream is %d bytes", end, len(stream))
		}
		var total uint64
		next := first
		for _, s := range got {
			if s.at < next {
				rt.Fatalf("bytes at %d received twice (already had up to %d)", s.at, next)
			}
			if !bytes.Equal(s.b, stream[s.at:s.at+uint64(len(s.b))]) {
				rt.Fatalf("bytes at %d are not the stream's", s.at)
			}
			total += uint64(len(s.b))
			next = s.at + uint64(len(s.b))
		}
		if total+lost != uint64(len(stream))-first {
			rt.Fatalf("received %d + told lost %d != %d bytes of stream from %d", total, lost, uint64(len(stream))-first, first)
		}
	})
}

// TestFlowControlSlowViewer: a page that pauses (flow control) stops
// receiving; its leg's queue fills and, with the drop policy, drops for
// that page alone — the other page gets everything — and when it resumes
// it is told exactly how many bytes it lost, at the exact offset.
func TestFlowControlSlowViewer(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{Leg: tee.LegOptions{Queue: 4 << 10, Overflow: tee.Drop, Replay: 0}})
	slow := e.open(e.login("bob"), streamPos{})
	fast := e.open(e.login("alice"), streamPos{})
	slow.send(map[string]any{"t": "flow", "pause": true})
	slow.send(map[string]any{"t": "status"})
	slow.waitCtl("status", "") // the pause is in force
	var stream []byte
	for i := range 64 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, 1024)
		stream = append(stream, p...)
		e.emit(p)
	}
	fast.waitData(len(stream))
	if !bytes.Equal(fast.data, stream) {
		t.Fatal("the fast page did not get the stream exactly")
	}
	slow.send(map[string]any{"t": "flow", "pause": false})
	// A loss is told with the next bytes the page gets: once the slow
	// leg has written its queue, one more chunk carries the last of it.
	eventually(t, "the slow leg's queue written", func() bool {
		for _, l := range e.tee.Stats().Legs {
			if l.User == "bob" {
				return l.QueueBytes == 0
			}
		}
		return false
	})
	e.emit([]byte("end"))
	stream = append(stream, "end"...)
	eventually(t, "the slow page caught up", func() bool { return slow.position().next == uint64(len(stream)) })
	pos := slow.position()
	if pos.lost == 0 || uint64(slow.received())+pos.lost != uint64(len(stream)) {
		t.Fatalf("slow page: received %d + lost %d != %d", slow.received(), pos.lost, len(stream))
	}
	slow.mu.Lock()
	defer slow.mu.Unlock()
	for _, s := range slow.segs {
		if !bytes.Equal(s.b, stream[s.at:s.at+uint64(len(s.b))]) {
			t.Fatalf("bytes at %d are not the stream's", s.at)
		}
	}
}
