package escape

import (
	"bytes"
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		in   string
		want byte
		ok   bool
	}{
		{"^]", 0x1d, true},
		{"^E", 0x05, true},
		{"^e", 0x05, true},
		{"ctrl-a", 0x01, true},
		{"Ctrl+A", 0x01, true},
		{"CTRL-]", 0x1d, true},
		{"C-a", 0x01, true},
		{"c-b", 0x02, true},
		{" ^] ", 0x1d, true},
		{"^?", 0x7f, true},
		{"\x05", 0x05, true},
		{"^\\", 0x1c, true},
		{"^M", 0, false}, // Enter
		{"^J", 0, false},
		{"^[", 0, false}, // ESC
		{"^@", 0, false}, // NUL
		{"", 0, false},
		{"a", 0, false},
		{"~", 0, false},
		{"^", 0, false},
		{"^1", 0, false},
		{"ctrl-", 0, false},
		{"ctrl-ab", 0, false},
		{"alt-a", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseKey(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseKey(%q) = %#x, %v; want %#x, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if _, err := ParseKey("^M"); err == nil || !bytes.Contains([]byte(err.Error()), []byte("Enter")) {
		t.Errorf("^M error should say why: %v", err)
	}
}

// FuzzParseKey: whatever ParseKey accepts, KeyName writes back in a form
// that parses to the same key; it never panics.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"^]", "ctrl-a", "C-e", "^?", "\x1d", "^[", "ctrl+Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if k != 0x7f && k >= 0x20 {
			t.Fatalf("ParseKey(%q) = %#x, not a control key", s, k)
		}
		again, err := ParseKey(KeyName(k))
		if err != nil || again != k {
			t.Fatalf("ParseKey(KeyName(%#x) = %q) = %#x, %v", k, KeyName(k), again, err)
		}
	})
}

// run feeds in to m cut at the given lengths and records the data and
// the commands with the data offset each came at.
func run(m *Machine, in []byte, cuts []int) (data []byte, cmds []string) {
	feed := func(chunk []byte) {
		for len(chunk) > 0 {
			var cmd Command
			data, chunk, cmd = m.Step(data, chunk)
			if cmd.Op != OpNone {
				cmds = append(cmds, fmt.Sprintf("@%d %d %q", len(data), cmd.Op, cmd.Key))
			}
		}
	}
	for _, c := range cuts {
		if c > len(in) {
			c = len(in)
		}
		feed(in[:c])
		in = in[c:]
	}
	feed(in)
	return data, cmds
}

func TestMachine(t *testing.T) {
	const k = 0x05
	tests := []struct {
		in   string
		data string
		cmds []string
	}{
		{"hello", "hello", nil},
		{"a\x05bc", "ac", []string{`@1 1 'b'`}},
		{"\x05\x05x", "\x05x", nil},
		{"\x05l\x05u\x05s\x05?", "", []string{`@0 2 'l'`, `@0 3 'u'`, `@0 4 's'`, `@0 5 '?'`}},
		{"\x05z", "", []string{`@0 6 'z'`}},
		{"x\x05", "x", nil},
	}
	for _, tt := range tests {
		for cut := 0; cut <= len(tt.in); cut++ {
			m := &Machine{Key: k}
			data, cmds := run(m, []byte(tt.in), []int{cut})
			if string(data) != tt.data || fmt.Sprint(cmds) != fmt.Sprint(tt.cmds) {
				t.Errorf("%q cut %d: data %q cmds %v; want %q %v", tt.in, cut, data, cmds, tt.data, tt.cmds)
			}
		}
	}
}

// TestMachineProperty: data with the escape key doubled comes through
// unchanged with commands found exactly where they were typed, however
// the stream is cut.
func TestMachineProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		key := rapid.ByteRange(1, 0x1f).Draw(t, "key")
		var in, want []byte
		var wantCmds []string
		for i := rapid.IntRange(0, 10).Draw(t, "parts"); i > 0; i-- {
			seg := rapid.SliceOfN(rapid.SampledFrom([]byte{key, 'a', 'b', 0, 0xff}), 0, 8).Draw(t, "seg")
			for _, b := range seg {
				if b == key {
					in = append(in, key)
				}
				in = append(in, b)
			}
			want = append(want, seg...)
			if rapid.Bool().Draw(t, "cmd") {
				c := rapid.Byte().Filter(func(b byte) bool { return b != key }).Draw(t, "cmdkey")
				in = append(in, key, c)
				wantCmds = append(wantCmds, fmt.Sprintf("@%d %d %q", len(want), opFor(c), c))
			}
		}
		cuts := rapid.SliceOfN(rapid.IntRange(0, 5), 0, 10).Draw(t, "cuts")
		data, cmds := run(&Machine{Key: key}, in, cuts)
		if !bytes.Equal(data, want) || fmt.Sprint(cmds) != fmt.Sprint(wantCmds) {
			t.Fatalf("data %x cmds %v; want %x %v", data, cmds, want, wantCmds)
		}
	})
}

// FuzzMachine: cutting the input does not change the result, and data
// never holds more than the input.
func FuzzMachine(f *testing.F) {
	f.Add([]byte("a\x05b\x05\x05c"), byte(5), uint8(1))
	f.Add([]byte("\x1d?\x1d\x1d\x1d"), byte(0x1d), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, key byte, step uint8) {
		whole, wholeCmds := run(&Machine{Key: key}, in, nil)
		n := int(step%8) + 1
		var cuts []int
		for i := 0; i < len(in); i += n {
			cuts = append(cuts, n)
		}
		pieces, pieceCmds := run(&Machine{Key: key}, in, cuts)
		if !bytes.Equal(whole, pieces) || fmt.Sprint(wholeCmds) != fmt.Sprint(pieceCmds) {
			t.Fatalf("cutting changed the result: %x %v vs %x %v", whole, wholeCmds, pieces, pieceCmds)
		}
		if len(whole)+2*len(wholeCmds) > len(in) {
			t.Fatalf("%d data bytes and %d commands from %d input bytes", len(whole), len(wholeCmds), len(in))
		}
	})
}

func TestKeyNameAndHelp(t *testing.T) {
	if KeyName(0x1d) != "^]" || KeyName(0x01) != "^A" || KeyName(0x7f) != "^?" {
		t.Errorf("names: %q %q %q", KeyName(0x1d), KeyName(0x01), KeyName(0x7f))
	}
	h := Help(0x05)
	for _, want := range []string{"^E", "b ", "l ", "u ", "s ", "? "} {
		if !bytes.Contains([]byte(h), []byte(want)) {
			t.Errorf("help lacks %q:\n%s", want, h)
		}
	}
}
