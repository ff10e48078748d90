package watch

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func mustPattern(t testing.TB, name, expr string, strip bool) Pattern {
	t.Helper()
	re, err := CompilePattern(expr)
	if err != nil {
		t.Fatal(err)
	}
	return Pattern{Name: name, Re: re, StripANSI: strip}
}

// feedAll feeds stream in chunks cut at cuts and returns the matches.
func feedAll(m *Matcher, stream []byte, cuts []int) []Match {
	var got []Match
	emit := func(x Match) { got = append(got, x) }
	prev := 0
	for _, c := range cuts {
		m.Feed(stream[prev:c], uint64(prev), emit)
		prev = c
	}
	m.Feed(stream[prev:], uint64(prev), emit)
	return got
}

func TestMatcherBasics(t *testing.T) {
	m := NewMatcher([]Pattern{
		mustPattern(t, "panic", `Kernel panic - not syncing|BUG: unable to handle`, false),
		mustPattern(t, "login", `login: $`, false),
		mustPattern(t, "answer", `^42`, false),
	})
	stream := []byte("boot\r\nvm login: \r\nfoo 42\r\n42\r\n[ 1.0] Kernel panic - not syncing: x\r\nlogin: ")
	got := feedAll(m, stream, []int{3, 10, 11, 40, 50})
	var names []string
	for _, x := range got {
		names = append(names, fmt.Sprintf("%s@%d:%s", m.Patterns()[x.Pattern].Name, x.Offset, x.Text))
		if !bytes.Equal(stream[x.Offset:x.End], x.Text) {
			t.Errorf("match %q at %d..%d, stream has %q there", x.Text, x.Offset, x.End, stream[x.Offset:x.End])
		}
	}
	want := []string{"login@9:login: ", "answer@26:42", "panic@37:Kernel panic - not syncing", "login@68:login: "}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("matches %q, want %q", names, want)
	}
	if c := got[2].Context; len(c) != 4 || string(c[3]) != "42" {
		t.Errorf("context before the panic: %q", c)
	}
}

func TestMatcherStripsANSI(t *testing.T) {
	m := NewMatcher([]Pattern{mustPattern(t, "p", `Kernel panic`, true), mustPattern(t, "raw", `Kernel panic`, false)})
	stream := []byte("\x1b[1mKernel \x1b[31mpan\x1b]0;title\x07ic\x1b[0m\r\n")
	for cut := 0; cut <= len(stream); cut++ {
		m := NewMatcher(m.Patterns())
		got := feedAll(m, stream, []int{cut})
		if len(got) != 1 || got[0].Pattern != 0 || got[0].Offset != 4 || string(stream[got[0].End-1]) != "c" {
			t.Fatalf("cut at %d: matches %+v", cut, got)
		}
	}
}

func TestCompilePatternRefusesEmpty(t *testing.T) {
	for _, p := range []string{"", "a*", "x|", "(?:)", "^", `\b`, "$", `(a\b)?`, `^|x`, "x{0,3}", "(?:a*)+"} {
		if _, err := CompilePattern(p); err == nil {
			t.Errorf("CompilePattern(%q) accepted a pattern matching the empty string", p)
		}
	}
	if _, err := CompilePattern("("); err == nil || !strings.Contains(err.Error(), "missing closing )") {
		t.Errorf("bad regexp: %v", err)
	}
}

// A long line slides through the window without losing matches in it.
func TestMatcherLongLine(t *testing.T) {
	m := NewMatcher([]Pattern{mustPattern(t, "x", `NEEDLE\d`, false)})
	var stream []byte
	var want []uint64
	for i := range 20 {
		stream = append(stream, bytes.Repeat([]byte{'.'}, 1000+i)...)
		want = append(want, uint64(len(stream)))
		stream = append(stream, fmt.Sprintf("NEEDLE%d", i%10)...)
	}
	got := feedAll(m, stream, []int{100, 5000, 5001, 9000})
	if len(got) != len(want) {
		t.Fatalf("%d matches, want %d", len(got), len(want))
	}
	for i, x := range got {
		if x.Offset != want[i] {
			t.Fatalf("match %d at %d, want %d", i, x.Offset, want[i])
		}
	}
}

// The property the issue asks for: a match split across any chunk
// boundaries is found exactly once, at its offset. Needles are placed in
// filler that cannot form one; the stream is cut at random points.
func TestMatcherChunkBoundariesProperty(t *testing.T) {
	shapes := []struct{ expr, needle string }{
		{`Kernel panic - not syncing`, "Kernel panic - not syncing"},
		{`BUG: unable to handle|Oops`, "BUG: unable to handle"},
		{`e[0-9]+x`, "e12345x"},
		{`ab+c`, "abbbbc"},
		{`^login: $`, "login: "},
	}
	rapid.Check(t, func(t *rapid.T) {
		shape := shapes[rapid.IntRange(0, len(shapes)-1).Draw(t, "shape")]
		strip := rapid.Bool().Draw(t, "strip")
		re := regexp.MustCompile(shape.expr)
		m := NewMatcher([]Pattern{{Name: "p", Re: re, StripANSI: strip}})
		anchored := strings.HasPrefix(shape.expr, "^")
		var stream []byte
		var want []uint64
		n := rapid.IntRange(0, 30).Draw(t, "pieces")
		for i := 0; i < n; i++ {
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0:
				if anchored {
					stream = append(stream, '\n')
				}
				want = append(want, uint64(len(stream)))
				stream = append(stream, shape.needle...)
				// Anchored at both ends: the line must end here.
				if anchored {
					stream = append(stream, "\r\n"...)
				}
			case 1:
				stream = append(stream, "\r\n"...)
			case 2:
				stream = append(stream, rapid.SliceOfN(rapid.SampledFrom([]byte("qwz .:-=#\t")), 0, 40).Draw(t, "filler")...)
			case 3:
				stream = append(stream, '.')
			}
		}
		if anchored {
			// A prompt at the very end is matched as it stands, and a
			// filler after it on the same line would not change that;
			// the filler above never follows a needle on its line.
			stream = append(stream, '\n')
		}
		cuts := rapid.SliceOfDistinct(rapid.IntRange(0, len(stream)), rapid.ID[int]).Draw(t, "cuts")
		cuts = sortedInts(cuts)
		got := feedAll(m, stream, cuts)
		if len(got) != len(want) {
			t.Fatalf("%d matches, want %d (stream %q, cuts %v): %+v", len(got), len(want), stream, cuts, got)
		}
		for i, x := range got {
			if x.Offset != want[i] || !bytes.Equal(stream[x.Offset:x.End], []byte(shape.needle)) {
				t.Fatalf("match %d at %d..%d, want %d", i, x.Offset, x.End, want[i])
			}
		}
	})
}

func sortedInts(s []int) []int {
	out := append([]int(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// FuzzMatcher feeds arbitrary patterns and streams cut in two: no panic,
// every match lies where it says in the stream (raw patterns), and the
// matcher finds the same matches as a single feed when the cut falls on a
// line boundary.
func FuzzMatcher(f *testing.F) {
	f.Add(`Kernel panic`, []byte("x\r\nKernel panic - not syncing\r\n"), uint16(7), false)
	f.Add(`^42`, []byte("\x1b[1m42\x1b[0m\n"), uint16(3), true)
	f.Add(`login: $`, []byte("login: "), uint16(2), false)
	f.Fuzz(func(t *testing.T, expr string, stream []byte, cut uint16, strip bool) {
		re, err := CompilePattern(expr)
		if err != nil {
			return
		}
		m := NewMatcher([]Pattern{{Name: "f", Re: re, StripANSI: strip}})
		c := int(cut) % (len(stream) + 1)
		for _, x := range feedAll(m, stream, []int{c}) {
			if x.End <= x.Offset || x.End > uint64(len(stream)) {
				t.Fatalf("match %q at %d..%d outside the %d-byte stream", x.Text, x.Offset, x.End, len(stream))
			}
			if !strip && !bytes.Equal(stream[x.Offset:x.End], x.Text) {
				t.Fatalf("match %q at %d..%d, stream has %q", x.Text, x.Offset, x.End, stream[x.Offset:x.End])
			}
		}
	})
}

// reference is the matcher's meaning for a whole stream given at once:
// every line (CR LF or LF ended, the CR not part of it) matched on its
// own, leftmost-first non-overlapping matches, as regexp finds them.
func reference(re *regexp.Regexp, stream []byte) [][2]uint64 {
	var out [][2]uint64
	off := 0
	for off <= len(stream) {
		end := bytes.IndexByte(stream[off:], '\n')
		next := off + end + 1
		if end < 0 {
			end, next = len(stream)-off, len(stream)+1
		}
		line := bytes.TrimSuffix(stream[off:off+end], []byte{'\r'})
		for _, loc := range re.FindAllIndex(line, -1) {
			if loc[1] > loc[0] {
				out = append(out, [2]uint64{uint64(off + loc[0]), uint64(off + loc[1])})
			}
		}
		off = next
	}
	return out
}

// The fast path (many lines at once, alternatives apart, multi-line
// anchors) finds exactly what matching each line on its own finds.
func TestMatcherAgreesWithLineByLine(t *testing.T) {
	atoms := []string{"a", "b", "ab", "x+", "[ab]", "[^a ]", `\d`, "b*c", "(a|bc)", ".", `\b`, `\z`, `\A`, "c?", "(?i:ab)", "bax", "abc"}
	rapid.Check(t, func(t *rapid.T) {
		var alts []string
		for range rapid.IntRange(1, 3).Draw(t, "alts") {
			var sb strings.Builder
			if rapid.Bool().Draw(t, "caret") {
				sb.WriteString("^")
			}
			for range rapid.IntRange(1, 3).Draw(t, "atoms") {
				sb.WriteString(rapid.SampledFrom(atoms).Draw(t, "atom"))
			}
			if rapid.Bool().Draw(t, "dollar") {
				sb.WriteString("$")
			}
			alts = append(alts, sb.String())
		}
		expr := strings.Join(alts, "|")
		re, err := CompilePattern(expr)
		if err != nil {
			t.Skip(err)
		}
		stream := rapid.SliceOfN(rapid.SampledFrom([]byte("abcx1 \r\n")), 0, 200).Draw(t, "stream")
		stream = append(stream, '\n')
		m := NewMatcher([]Pattern{{Name: "p", Re: re}})
		var got [][2]uint64
		m.Feed(stream, 0, func(x Match) { got = append(got, [2]uint64{x.Offset, x.End}) })
		want := reference(re, stream)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pattern %q on %q:\n got %v\nwant %v", expr, stream, got, want)
		}
	})
}
