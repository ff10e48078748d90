package harness

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// FuzzParseStty: any text parses without panicking into settings within
// the ranges a tty can have.
func FuzzParseStty(f *testing.F) {
	f.Add("speed 9600 baud; line = 0;\n-parenb -parodd -cmspar cs8 -cstopb\n")
	f.Add("speed 115200 baud;\nparenb parodd cmspar cs5 cstopb\n")
	f.Add("speed 99999999999999999999 baud;")
	f.Fuzz(func(t *testing.T, out string) {
		s := parseStty(out)
		if s.StopBits != 1 && s.StopBits != 2 {
			t.Errorf("stop bits %d", s.StopBits)
		}
		if s.DataBits != 0 && (s.DataBits < 5 || s.DataBits > 8) {
			t.Errorf("data bits %d", s.DataBits)
		}
		switch s.Parity {
		case "none", "even", "odd", "mark", "space":
		default:
			t.Errorf("parity %q", s.Parity)
		}
	})
}

// TestWriteCpioProperty: every archive of arbitrary names, modes and
// contents reads back entry for entry.
func TestWriteCpioProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 8).Draw(rt, "n")
		var in []CpioEntry
		for i := 0; i < n; i++ {
			in = append(in, CpioEntry{
				Name:  rapid.StringMatching(`[a-z][a-z0-9/._-]{0,40}`).Draw(rt, "name"),
				Mode:  rapid.SampledFrom([]uint32{ModeDir, ModeRegular, ModeChar, ModeSymlink}).Draw(rt, "type") | rapid.Uint32Range(0, 0o7777).Draw(rt, "perm"),
				Data:  rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(rt, "data"),
				Major: rapid.Uint32Range(0, 255).Draw(rt, "major"),
				Minor: rapid.Uint32Range(0, 255).Draw(rt, "minor"),
			})
		}
		var buf bytes.Buffer
		if err := WriteCpio(&buf, in); err != nil {
			rt.Fatal(err)
		}
		got := readCpio(rt, buf.Bytes())
		if len(got) != len(in) {
			rt.Fatalf("got %d entries, want %d", len(got), len(in))
		}
		for i := range in {
			if got[i].Name != in[i].Name || got[i].Mode != in[i].Mode || !bytes.Equal(got[i].Data, in[i].Data) ||
				got[i].Major != in[i].Major || got[i].Minor != in[i].Minor {
				rt.Fatalf("entry %d: got %+v, want %+v", i, got[i], in[i])
			}
		}
	})
}
