package harness

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func counterStream(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(CounterLine(i))
	}
	return b.String()
}

func TestCheckCounter(t *testing.T) {
	boot := "Linux version 6.1\r\nvm# echo \"<C:$i>\" ... echo \"<C:END>\") &\r\n[1] 77\r\nvm# "
	for _, c := range []struct {
		name, stream string
		strict       int // -1: everything strict
		lines        int
		ended        bool
		err          string
	}{
		{"exact", boot + counterStream(0, 50), -1, 50, false, ""},
		{"still arriving", boot + counterStream(0, 7) + "<C:7", -1, 7, false, ""},
		{"arriving end", boot + counterStream(0, 7) + "<C:EN", -1, 7, false, ""},
		{"ended", boot + counterStream(0, 3) + counterEnd + "vm# ", -1, 3, true, ""},
		{"no start", boot, -1, 0, false, "no first line"},
		{"gap", boot + counterStream(0, 5) + counterStream(6, 9), -1, 5, false, "want 5 (lines missing)"},
		{"repeat", boot + counterStream(0, 5) + counterStream(4, 9), -1, 5, false, "want 5 (lines repeated)"},
		{"lost byte", boot + counterStream(0, 5) + "<C:5\r\n" + counterStream(6, 9), -1, 5, false, "broken line"},
		{"lost cr", boot + counterStream(0, 5) + "<C:5>\n" + counterStream(6, 9), -1, 5, false, "broken line"},
		{"noise strict", boot + counterStream(0, 5) + "x" + counterStream(5, 9), -1, 5, false, "other bytes"},
		{"noise loose", boot + counterStream(0, 5) + "echo hi\r\nhi\r\n" + counterStream(5, 9), len(boot) + 10, 9, false, ""},
		{"noise inside", boot + counterStream(0, 5) + "<C:5e>\r\n" + counterStream(6, 9), len(boot), 5, false, "broken line"},
		{"replayed", boot + "<C:3>\r\n" + counterStream(0, 5), -1, 0, false, "before the first line"},
		{"after end", boot + counterStream(0, 2) + counterEnd + CounterLine(2), -1, 2, true, "after the end line"},
		{"leading zero", boot + counterStream(0, 2) + "<C:02>\r\n", -1, 2, false, "broken line"},
	} {
		strict := c.strict
		if strict < 0 {
			strict = len(c.stream)
		}
		got, err := CheckCounter([]byte(c.stream), strict)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
		if got.Lines != c.lines || got.Ended != c.ended {
			t.Errorf("%s: %+v, want %d lines, ended %v", c.name, got, c.lines, c.ended)
		}
	}
	if n := LastCounterLine([]byte(boot + counterStream(0, 12) + "<C:1")); n != 11 {
		t.Errorf("last line %d, want 11", n)
	}
	if n := LastCounterLine([]byte(boot)); n != -1 {
		t.Errorf("last line %d before the first, want -1", n)
	}
}

// TestCheckCounterProperty: a counter between arbitrary other output
// checks out with every line; losing or repeating any one line, or losing
// any one byte of one, is found wherever it happens.
func TestCheckCounterProperty(t *testing.T) {
	noise := rapid.StringMatching(`[a-z0-9 #$\r\n]{0,20}`)
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 300).Draw(rt, "lines")
		prefix := noise.Draw(rt, "prefix")
		loose := rapid.IntRange(0, n).Draw(rt, "loose from line")
		var b strings.Builder
		b.WriteString(prefix)
		strict := 0
		var starts []int
		for i := range n {
			if i == loose {
				strict = b.Len()
			}
			if i >= loose {
				b.WriteString(noise.Draw(rt, "between"))
			}
			starts = append(starts, b.Len())
			b.WriteString(CounterLine(i))
		}
		if loose == n {
			strict = b.Len()
		}
		s := b.String()
		got, err := CheckCounter([]byte(s), strict)
		if err != nil || got.Lines != n || got.Last != len(s) && loose == n {
			rt.Fatalf("intact stream: %+v, %v", got, err)
		}
		k := rapid.IntRange(0, n-1).Draw(rt, "damaged line")
		line := CounterLine(k)
		var bad string
		switch rapid.IntRange(0, 2).Draw(rt, "damage") {
		case 0: // lost
			bad = s[:starts[k]] + s[starts[k]+len(line):]
		case 1: // repeated
			bad = s[:starts[k]] + line + s[starts[k]:]
		case 2: // one byte lost
			j := rapid.IntRange(0, len(line)-1).Draw(rt, "byte")
			if end := starts[k] + len(line); j == len(line)-1 && end < len(s) && s[end] == line[j] {
				// Losing the line's last byte when the noise after it
				// starts with the same byte gives the intact stream
				// with that noise byte lost: nothing to find.
				rt.Skip("the lost byte is the same as the noise byte after it")
			}
			bad = s[:starts[k]+j] + s[starts[k]+j+1:]
		}
		got, err = CheckCounter([]byte(bad), strict)
		if err == nil && got.Lines == n {
			rt.Fatalf("damaged line %d not found: %+v", k, got)
		}
	})
}

// FuzzCheckCounter: any stream checks without panicking, and what it
// reports lies within the stream.
func FuzzCheckCounter(f *testing.F) {
	f.Add([]byte("vm# "+counterStream(0, 3)+counterEnd), 4)
	f.Add([]byte(counterStream(0, 2)+"<C:2"), 0)
	f.Add([]byte("<C:<C:0>\r\n<C:1>\r"), 100)
	f.Fuzz(func(t *testing.T, b []byte, strict int) {
		got, err := CheckCounter(b, strict)
		if got.Start > len(b) || got.Last > len(b) || got.Last < got.Start || got.Lines < 0 {
			t.Errorf("%+v outside a stream of %d bytes (%v)", got, len(b), err)
		}
		if err == nil && got.Lines > 0 && !bytes.Contains(b, []byte(CounterLine(got.Lines-1))) {
			t.Errorf("counted %d lines without line %d", got.Lines, got.Lines-1)
		}
		LastCounterLine(b)
	})
}

func stamp(at time.Time, sep byte, data string) string {
	return at.UTC().Format(stampLayout) + string(sep) + data
}

func TestUnstamp(t *testing.T) {
	at := time.Date(2026, 12, 5, 6, 0, 0, 123e6, time.UTC)
	good := stamp(at, ' ', "boot\r\n") + stamp(at, ' ', "half") + "\n" + stamp(at.Add(time.Second), '+', "rest\r\n") + stamp(at, ' ', "tail")
	out, times, err := Unstamp([]byte(good))
	if err != nil || string(out) != "boot\r\nhalfrest\r\ntail" || len(times) != 4 || !times[2].Equal(at.Add(time.Second)) {
		t.Fatalf("got %q %v %v", out, times, err)
	}
	for _, bad := range []string{
		"2026-12-05T06:00:00.123Z",
		"2026-12-05 06:00:00.123Z x\n",
		stamp(at, '-', "x\n"),
		stamp(at, '+', "x\n"),
	} {
		if _, _, err := Unstamp([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestUnstampProperty: any stream cut into lines the way the format
// describes (a time per line, a line ended early by an added newline and
// a '+') reads back exactly.
func TestUnstampProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		at := time.UnixMilli(rapid.Int64Range(0, 1<<42).Draw(rt, "ms")).UTC()
		var want, capture []byte
		midLine, cut := false, false
		for range rapid.IntRange(0, 20).Draw(rt, "chunks") {
			chunk := []byte(rapid.StringMatching(`[a-z\r\n\x00-\x1f]{1,30}`).Draw(rt, "chunk"))
			want = append(want, chunk...)
			if midLine && rapid.Bool().Draw(rt, "end early") {
				capture = append(capture, '\n')
				midLine, cut = false, true
			}
			for len(chunk) > 0 {
				if !midLine {
					sep := byte(' ')
					if cut {
						sep, cut = '+', false
					}
					capture = append(capture, stamp(at, sep, "")...)
					midLine = true
				}
				i := bytes.IndexByte(chunk, '\n')
				if i < 0 {
					capture = append(capture, chunk...)
					break
				}
				capture = append(capture, chunk[:i+1]...)
				chunk = chunk[i+1:]
				midLine = false
			}
		}
		got, _, err := Unstamp(capture)
		if err != nil || !bytes.Equal(got, want) {
			rt.Fatalf("capture %q read back as %q (%v), want %q", capture, got, err, want)
		}
	})
}

// FuzzUnstamp: any capture reads back without panicking, never to more
// bytes than it holds.
func FuzzUnstamp(f *testing.F) {
	f.Add([]byte("2026-12-05T06:00:00.123Z boot\r\n2026-12-05T06:00:00.123Z+x"))
	f.Add([]byte("2026-12-05T06:00:00.123Z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, times, err := Unstamp(b)
		if len(out) > len(b) || err == nil && len(b) > 0 && len(times) == 0 {
			t.Errorf("%q read back as %q, %d lines (%v)", b, out, len(times), err)
		}
	})
}
