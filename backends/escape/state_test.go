package escape

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestMachineStateCarried: a stream scanned with the machine exported to
// JSON, parsed back and imported into a new machine at any cuts gives
// exactly what one machine gives.
func TestMachineStateCarried(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		key := rapid.SampledFrom([]byte{0x05, 0x1d, 0x01, 0x7f}).Draw(t, "key")
		in := rapid.SliceOfN(rapid.SampledFrom([]byte{key, key, 'a', 'b', 's', '?', 0, 0xff}), 0, 60).Draw(t, "in")
		cuts := rapid.SliceOfN(rapid.IntRange(0, len(in)), 0, 8).Draw(t, "cuts")
		slices.Sort(cuts)
		want, wantCmds := run(&Machine{Key: key}, in, nil)
		var data []byte
		var cmds []string
		m := &Machine{Key: key}
		prev := 0
		for _, c := range append(cuts, len(in)) {
			d, cs := run(m, in[prev:c], nil)
			for _, cmd := range cs {
				var at int
				var rest string
				fmt.Sscanf(cmd, "@%d %s", &at, &rest)
				cmds = append(cmds, fmt.Sprintf("@%d%s", at+len(data), cmd[len(fmt.Sprintf("@%d", at)):]))
			}
			data = append(data, d...)
			prev = c
			doc, err := json.Marshal(m.State())
			if err != nil {
				t.Fatal(err)
			}
			st, err := ParseState(doc)
			if err != nil {
				t.Fatalf("parse %s: %v", doc, err)
			}
			m = &Machine{Key: key}
			if err := m.SetState(st); err != nil {
				t.Fatalf("import %s: %v", doc, err)
			}
		}
		if !bytes.Equal(data, want) || fmt.Sprint(cmds) != fmt.Sprint(wantCmds) {
			t.Fatalf("carried: %x %v; whole: %x %v", data, cmds, want, wantCmds)
		}
	})
}

func TestMachineStateRefused(t *testing.T) {
	for _, doc := range []string{``, `{`, `{"key":"^@"}`, `{"key":"x"}`, `{"key":"^E","armed":1}`,
		`{"key":"^E","extra":true}`, `{"key":"^E"} {}`, `[]`} {
		if _, err := ParseState([]byte(doc)); !errors.Is(err, ErrState) {
			t.Errorf("%q: %v, want a bad escape state", doc, err)
		}
	}
	m := &Machine{Key: 0x05}
	if err := m.SetState(State{Key: "^]", Armed: true}); !errors.Is(err, ErrState) || m.Armed() {
		t.Errorf("another key's state: %v, armed %v", err, m.Armed())
	}
}

// FuzzEscapeState: any document is refused with an error or parsed into
// a state that a machine with its key takes and exports back unchanged.
func FuzzEscapeState(f *testing.F) {
	f.Add([]byte(`{"key":"^E","armed":true}`))
	f.Add([]byte(`{"key":"ctrl-]"}`))
	f.Add([]byte(`{"key":"\u0000"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		st, err := ParseState(doc)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("%v: not a bad escape state error", err)
			}
			return
		}
		key, err := ParseKey(st.Key)
		if err != nil {
			t.Fatalf("accepted key %q does not parse: %v", st.Key, err)
		}
		m := &Machine{Key: key}
		if err := m.SetState(State{Key: KeyName(key), Armed: st.Armed}); err != nil {
			t.Fatal(err)
		}
		if m.Armed() != st.Armed {
			t.Fatalf("armed %v after importing %+v", m.Armed(), st)
		}
		m.Step(nil, []byte{key, 'x', key})
	})
}
