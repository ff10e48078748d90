package watch

import (
	"bytes"
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

// TestStateRoundTrip: what a watch leg carries, ParseState reads back;
// a tail longer than carried or reaching before offset 0 is refused
// (a property over random states).
func TestStateRoundTrip(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tail := rapid.SliceOfN(rapid.Byte(), 0, carryTail).Draw(rt, "tail")
		st := State{At: uint64(len(tail)) + rapid.Uint64Range(0, 1<<50).Draw(rt, "at"), Tail: tail,
			Cooldowns: rapid.MapOf(rapid.String(), rapid.Int64()).Draw(rt, "cooldowns")}
		b, _ := json.Marshal(st)
		got, err := ParseState(b)
		if err != nil {
			rt.Fatal(err)
		}
		if got.At != st.At || !bytes.Equal(got.Tail, st.Tail) || len(got.Cooldowns) != len(st.Cooldowns) {
			rt.Fatalf("got %+v, want %+v", got, st)
		}
		bad := State{At: uint64(len(tail)) - 1, Tail: tail}
		if len(tail) > 0 {
			b, _ = json.Marshal(bad)
			if _, err := ParseState(b); err == nil {
				rt.Fatalf("a tail of %d bytes before offset %d was accepted", len(tail), bad.At)
			}
		}
	})
}

// TestTailRingKeepsTheLastBytes: whatever the writes, the carried tail is
// the last carryTail bytes written (a property).
func TestTailRingKeepsTheLastBytes(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var r tailRing
		var all []byte
		for _, p := range rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 0, 3*carryTail/2)).Draw(rt, "writes") {
			r.write(p)
			all = append(all, p...)
		}
		want := all[max(0, len(all)-carryTail):]
		if !bytes.Equal(r.bytes(), want) {
			rt.Fatalf("tail of %d bytes, want the last %d", len(r.bytes()), len(want))
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"at":5,"tail":"aGVsbG8=","cooldowns":{"x":1}}`))
	f.Add([]byte(`{"at":1,"tail":"aGVsbG8="}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err != nil {
			return
		}
		if uint64(len(st.Tail)) > st.At || len(st.Tail) > carryTail {
			t.Fatalf("accepted %d bytes of tail at %d", len(st.Tail), st.At)
		}
	})
}
