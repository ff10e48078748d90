package capture

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestTimestampedOneDirection(t *testing.T) {
	clock := &stepClock{t: t0, step: time.Second}
	var w countingWriter
	enc := NewTimestamped(&w, TimestampedOptions{Clock: clock.now})
	feed(t, enc, []chunk{
		{Output, []byte("boot")},
		{Output, []byte("ing...\r\nlogin")}, // continues the line: keeps its stamp
		{Output, []byte(": ")},
		{Output, nil},
		{Output, []byte("\n\n")},
	})
	want := "2026-11-25T10:00:00.123Z booting...\r\n" +
		"2026-11-25T10:00:01.123Z login: \n" +
		"2026-11-25T10:00:03.123Z \n"
	if w.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", w.String(), want)
	}
	if w.writes != 4 {
		t.Fatalf("%d writes for 4 non-empty calls", w.writes)
	}
}

func TestTimestampedBothDirections(t *testing.T) {
	clock := &stepClock{t: t0, step: 500 * time.Millisecond}
	var w bytes.Buffer
	enc := NewTimestamped(&w, TimestampedOptions{Marks: true, Clock: clock.now})
	feed(t, enc, []chunk{
		{Output, []byte("login: ")},
		{Input, []byte("root\r")},
		{Output, []byte("root\r\n")},
		{Input, []byte("ls\r")},
	})
	want := "2026-11-25T10:00:00.123Z > login: \n" +
		"2026-11-25T10:00:00.623Z+< root\r\n" +
		"2026-11-25T10:00:01.123Z+> root\r\n" +
		"2026-11-25T10:00:01.623Z < ls\r"
	if w.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", w.String(), want)
	}
	lines, err := ParseTimestamped(w.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := []Line{
		{t0, Output, []byte("login: "), ""},
		{t0.Add(500 * time.Millisecond), Input, []byte("root\r"), ""},
		{t0.Add(time.Second), Output, []byte("root\r\n"), ""},
		{t0.Add(1500 * time.Millisecond), Input, []byte("ls\r"), ""},
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("parsed %d lines, want %d", len(lines), len(wantLines))
	}
	for i, l := range lines {
		w := wantLines[i]
		if !l.Time.Equal(w.Time) || l.Dir != w.Dir || !bytes.Equal(l.Data, w.Data) {
			t.Fatalf("line %d = %v %v %q, want %v %v %q", i, l.Time, l.Dir, l.Data, w.Time, w.Dir, w.Data)
		}
	}
}

func TestTimestampedNewFileMidLine(t *testing.T) {
	clock := &stepClock{t: t0, step: time.Second}
	// A file left by an earlier session that stopped mid-line.
	w := bytes.NewBufferString("2026-11-25T09:00:00.000Z > partial")
	enc := NewTimestamped(w, TimestampedOptions{Marks: true, Clock: clock.now})
	enc.NewFile(true)
	if err := enc.Out([]byte("next\n")); err != nil {
		t.Fatal(err)
	}
	lines, err := ParseTimestamped(w.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := joinLines(lines)
	if string(out) != "partialnext\n" {
		t.Fatalf("output stream %q", out)
	}
	if !strings.HasSuffix(w.String(), "partial\n2026-11-25T10:00:00.123Z+> next\n") {
		t.Fatalf("file %q", w.String())
	}
}

func TestParseTimestampedErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		marks          bool
	}{
		{"short", "2026-11-25\n", "line 1: too short", false},
		{"bad time", "2026-13-25T10:00:00.123Z x\n", "line 1: bad timestamp", false},
		{"bad separator", "2026-11-25T10:00:00.123Z-x\n", "line 1: want ' ' or '+'", false},
		{"bad mark", "2026-11-25T10:00:00.123Z ! x\n", "line 1: want direction mark", true},
		{"no space after mark", "2026-11-25T10:00:00.123Z >x\n", "line 1: want a space", true},
		{"leading continuation", "2026-11-25T10:00:00.123Z+> x\n", "line 1: '+' continuation", true},
		{"second line", "2026-11-25T10:00:00.123Z > x\nnope\n", "line 2: too short", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTimestamped([]byte(tc.in), tc.marks)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func joinLines(lines []Line) (out, in []byte) {
	for _, l := range lines {
		if l.Dir == Input {
			in = append(in, l.Data...)
		} else {
			out = append(out, l.Data...)
		}
	}
	return out, in
}

// checkTimestampedRoundTrip encodes chunks and parses them back: each
// direction's bytes come back exactly, and times never go backwards.
func checkTimestampedRoundTrip(t tester, chunks []chunk, marks bool) {
	clock := &stepClock{t: t0, step: 7 * time.Millisecond}
	var w bytes.Buffer
	enc := NewTimestamped(&w, TimestampedOptions{Marks: marks, Clock: clock.now})
	feed(t, enc, chunks)
	lines, err := ParseTimestamped(w.Bytes(), marks)
	if err != nil {
		t.Fatalf("parse: %v\nfile: %q", err, w.Bytes())
	}
	gotOut, gotIn := joinLines(lines)
	wantOut, wantIn := streams(chunks)
	if !bytes.Equal(gotOut, wantOut) || !bytes.Equal(gotIn, wantIn) {
		t.Fatalf("round trip: out %q in %q, want out %q in %q\nfile: %q", gotOut, gotIn, wantOut, wantIn, w.Bytes())
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].Time.Before(lines[i-1].Time) {
			t.Fatalf("line %d time %v before line %d time %v", i, lines[i].Time, i-1, lines[i-1].Time)
		}
	}
}

func TestTimestampedRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		marks := rapid.Bool().Draw(t, "marks")
		checkTimestampedRoundTrip(t, genChunks(t, marks), marks)
	})
}

func FuzzTimestampedRoundTrip(f *testing.F) {
	f.Add([]byte("\x0ahello\x05ab\n\x02\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, marks bool) {
		chunks := script(data)
		if !marks {
			for i := range chunks {
				chunks[i].dir = Output // without marks directions cannot be told apart
			}
		}
		checkTimestampedRoundTrip(t, chunks, marks)
	})
}

// FuzzParseTimestamped feeds arbitrary files to the parser: it must not
// panic, and what it returns is a sub-sequence of the file's bytes: each
// line's Data is a piece of the file, the pieces in file order and never
// overlapping (a parser that invents, repeats or reorders bytes fails).
func FuzzParseTimestamped(f *testing.F) {
	f.Add([]byte("2026-11-25T10:00:00.123Z > a\n2026-11-25T10:00:00.124Z+< b"), true)
	f.Add([]byte("2026-11-25T10:00:00.123Z a\n2026-11-25T10:00:00.123Z a\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, marks bool) {
		lines, err := ParseTimestamped(data, marks)
		if i, pos := piecesInOrder(data, lines); i >= 0 {
			t.Fatalf("line %d's data %q is not in the file after byte %d (err %v)", i+1, lines[i].Data, pos, err)
		}
	})
}

// piecesInOrder checks that every line's Data occurs in file after the
// previous line's, without overlap. It returns -1, or the index of the
// first line that does not and the file offset its search began at.
// (Taking the earliest occurrence each time never rejects an order that
// exists.)
func piecesInOrder(file []byte, lines []Line) (bad, pos int) {
	for i, l := range lines {
		j := bytes.Index(file[pos:], l.Data)
		if j < 0 {
			return i, pos
		}
		pos += j + len(l.Data)
	}
	return -1, pos
}

func TestPiecesInOrder(t *testing.T) {
	file := []byte("xxabcyyde")
	mk := func(ds ...string) []Line {
		var ls []Line
		for _, d := range ds {
			ls = append(ls, Line{Data: []byte(d)})
		}
		return ls
	}
	for _, ok := range [][]string{{}, {"abc", "de"}, {"ab", "c", "yyd"}, {"", "xx"}} {
		if bad, _ := piecesInOrder(file, mk(ok...)); bad >= 0 {
			t.Errorf("%q: rejected", ok)
		}
	}
	for _, bad := range [][]string{{"de", "abc"}, {"abc", "abc"}, {"abcd"}, {"abc", "bc"}, {"zz"}} {
		if i, _ := piecesInOrder(file, mk(bad...)); i < 0 {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestTimestampedNamesTypists(t *testing.T) {
	var b bytes.Buffer
	ts := NewTimestamped(&b, TimestampedOptions{Marks: true})
	ts.Out([]byte("login: "))
	ts.InFrom("alice", []byte("ro"))
	ts.InFrom("alice", []byte("ot\n"))
	ts.InFrom("bob", []byte("x"))
	ts.In([]byte("y\n"))
	lines, err := ParseTimestamped(b.Bytes(), true)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%v/%s/%q", l.Dir, l.User, l.Data))
	}
	want := []string{`out//"login: "`, `in/alice/"root\n"`, `in/bob/"x"`, `in//"y\n"`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v want %v\n%s", got, want, b.String())
	}
	if !strings.Contains(b.String(), "+<[alice] root\n") {
		t.Fatalf("file:\n%s", b.String())
	}
}
