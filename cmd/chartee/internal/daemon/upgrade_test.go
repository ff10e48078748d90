package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"chartee/tee"
)

// TestUpgradeBlockers: a tee names the devices that cannot be carried, by
// type, so a refused upgrade says exactly what it would have dropped.
func TestUpgradeBlockers(t *testing.T) {
	f := newFeeder(t)
	d, _, _ := start(t, parse(t, teeYAML("console", f.addr(), indent(`- {name: run, type: exec, command: [cat]}
- {name: raw, type: tcp-listen, listen: "127.0.0.1:0"}`))))
	got := d.UpgradeBlockers()
	if len(got) != 1 {
		t.Fatalf("blockers %q, want one line for tee console", got)
	}
	for _, want := range []string{"tee console:", "backend run (exec: its child process cannot be re-parented", "cannot be carried yet"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("blocker %q lacks %q", got[0], want)
		}
	}
	// tcp-connect and tcp-listen can be carried.
	for _, not := range []string{"tcp-connect", "tcp-listen"} {
		if strings.Contains(got[0], not) {
			t.Errorf("blocker %q names %s, which can be carried", got[0], not)
		}
	}
}

// FuzzParseInheritance: any state document is parsed or refused, and
// resolving its file references never panics or hands out a file twice.
func FuzzParseInheritance(f *testing.F) {
	f.Add([]byte(`[{"name":"t","offset":5,"scrollback":"aGVsbG8=","frontend":{"files":[0],"state":{}},"backends":[{"name":"raw","source":{"files":[1],"state":{"next_id":3}},"seq":3,"legs":[{"name":"raw#3","dev":{"files":[2],"state":{"peer":"x"}}}]}]}]`))
	f.Add([]byte(`[{"name":"t","frontend":{"files":[0,0,-1,99]}}]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseInheritance(data, make([]*os.File, 3))
		if err != nil {
			return
		}
		handed := map[int]bool{}
		for _, wt := range in.tees {
			refs := []wireCarried{wt.Frontend}
			for _, b := range wt.Backends {
				if b.Source != nil {
					refs = append(refs, *b.Source)
				}
				for _, l := range b.Legs {
					refs = append(refs, l.Dev)
				}
			}
			for _, w := range refs {
				before := len(in.used)
				c, err := in.carried(w)
				if err != nil {
					continue
				}
				if len(in.used)-before != len(c.Files) {
					t.Fatalf("%d files handed out, %d marked used", len(c.Files), len(in.used)-before)
				}
				for _, i := range w.Files {
					if handed[i] {
						t.Fatalf("file %d handed out twice", i)
					}
					handed[i] = true
				}
			}
		}
	})
}

// TestInheritanceRoundTrip: what Freeze's encoding writes, ParseInheritance
// reads back, tee by tee and file by file (a property over random tees).
func TestInheritanceRoundTrip(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 4).Draw(rt, "tees")
		var wire []wireTee
		files := 0
		ref := func() wireCarried {
			k := rapid.IntRange(0, 2).Draw(rt, "files")
			w := wireCarried{State: json.RawMessage(`{"x":1}`)}
			for range k {
				w.Files = append(w.Files, files)
				files++
			}
			return w
		}
		for i := range n {
			scroll := []byte(rapid.String().Draw(rt, "scroll"))
			wt := wireTee{Name: fmt.Sprintf("t%d", i), Offset: uint64(len(scroll)) + rapid.Uint64Range(0, 1<<40).Draw(rt, "offset"),
				Scrollback: scroll, Frontend: ref()}
			for range rapid.IntRange(0, 2).Draw(rt, "inputs") {
				b := rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(rt, "input")
				wt.Input = append(wt.Input, tee.Input{Leg: "b0#0", Bytes: b, Recorded: rapid.IntRange(0, len(b)).Draw(rt, "recorded")})
			}
			if rapid.Bool().Draw(rt, "locked") {
				wt.WriteLock = &tee.WriteLock{Leg: "b0#0", Idle: time.Duration(rapid.Int64Range(0, 1e12).Draw(rt, "idle"))}
			}
			for j := range rapid.IntRange(0, 3).Draw(rt, "backends") {
				src := ref()
				wb := wireBackend{Name: fmt.Sprintf("b%d", j), Source: &src, Seq: rapid.Uint64().Draw(rt, "seq")}
				for k := range rapid.IntRange(0, 3).Draw(rt, "legs") {
					wl := wireLeg{Name: fmt.Sprintf("b%d#%d", j, k), Dev: ref()}
					// Owed spans: in order, ending at or before the cut.
					end := wt.Offset
					var spans []tee.Span
					for range rapid.IntRange(0, 3).Draw(rt, "spans") {
						b := rapid.SliceOfN(rapid.Byte(), 1, 32).Draw(rt, "owed")
						if uint64(len(b)) > end {
							break
						}
						gap := rapid.Uint64Range(0, min(end-uint64(len(b)), 8)).Draw(rt, "gap")
						end -= uint64(len(b)) + gap
						spans = append([]tee.Span{{Off: end + gap, Bytes: b}}, spans...)
					}
					wl.Owed = tee.Owed{Spans: spans}
					wb.Legs = append(wb.Legs, wl)
				}
				wt.Backends = append(wt.Backends, wb)
			}
			wire = append(wire, wt)
		}
		doc, err := json.Marshal(wire)
		if err != nil {
			rt.Fatal(err)
		}
		in, err := ParseInheritance(doc, make([]*os.File, files))
		if err != nil {
			rt.Fatal(err)
		}
		if len(in.tees) != n {
			rt.Fatalf("%d tees back, want %d", len(in.tees), n)
		}
		for _, wt := range wire {
			got := in.tees[wt.Name]
			if got == nil || got.Offset != wt.Offset || string(got.Scrollback) != string(wt.Scrollback) || len(got.Backends) != len(wt.Backends) {
				rt.Fatalf("tee %s came back as %+v", wt.Name, got)
			}
			if !reflect.DeepEqual(got.resume(), wt.resume()) {
				rt.Fatalf("tee %s: resume state %+v, want %+v", wt.Name, got.resume(), wt.resume())
			}
			if _, err := in.carried(got.Frontend); err != nil {
				rt.Fatal(err)
			}
			if len(got.Frontend.Files) > 0 {
				if _, err := in.carried(got.Frontend); err == nil {
					rt.Fatal("a file was handed out twice")
				}
			}
		}
	})
}

// TestInheritanceRefusesOwedPastTheCut: a state whose owed bytes do not
// end before the cut, or overlap, is refused rather than resumed into a
// wrong stream (a property over random documents).
func TestInheritanceRefusesOwedPastTheCut(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		off := rapid.Uint64Range(0, 1<<20).Draw(rt, "offset")
		b := rapid.SliceOfN(rapid.Byte(), 1, 32).Draw(rt, "owed")
		at := off - min(off, uint64(len(b))) + rapid.Uint64Range(1, 64).Draw(rt, "past")
		wire := []wireTee{{Name: "t", Offset: off, Backends: []wireBackend{{Name: "b",
			Legs: []wireLeg{{Name: "b#1", Owed: tee.Owed{Spans: []tee.Span{{Off: at, Bytes: b}}}}}}}}}
		doc, _ := json.Marshal(wire)
		if _, err := ParseInheritance(doc, nil); err == nil || !strings.Contains(err.Error(), "before the cut") {
			rt.Fatalf("owed %d bytes at %d past the cut %d: %v", len(b), at, off, err)
		}
	})
}

// TestUpgradeBlockersSingleStreamBackend: single-stream backends that
// carry their device (a tcp-connect leg that dialed out, a capture file)
// do not block an upgrade: they are re-attached from what they carry,
// not redialed or reopened.
func TestUpgradeBlockersSingleStreamBackend(t *testing.T) {
	f := newFeeder(t)
	peer := newFeeder(t)
	d, _, _ := start(t, parse(t, teeYAML("console", f.addr(), indent(`- {name: out, type: tcp-connect, address: "`+peer.addr()+`"}
- {name: cap, type: file, path: "`+t.TempDir()+`/cap", format: timestamped}`))))
	if got := d.UpgradeBlockers(); len(got) != 0 {
		t.Fatalf("blockers %q, want none", got)
	}
}
