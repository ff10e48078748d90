package capture

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgregory.net/rapid"
)

func TestAsciicastFile(t *testing.T) {
	clock := &stepClock{t: t0, step: 250 * time.Millisecond}
	var w countingWriter
	enc := NewAsciicast(&w, AsciicastOptions{Width: 120, Height: 40, Clock: clock.now})
	feed(t, enc, []chunk{
		{Output, []byte("\x1b[1mhi\x1b[0m \xe2\x82")}, // € split across calls
		{Output, []byte("\xac\r\n<&>")},
		{Input, []byte("q\r")},
		{Output, []byte("bad \xff byte\n")},
	})
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `{"version":2,"width":120,"height":40,"timestamp":1795600800}` + "\n" +
		`[0.373000, "o", "\u001b[1mhi\u001b[0m "]` + "\n" +
		`[0.623000, "o", "€\r\n<&>"]` + "\n" +
		`[0.873000, "i", "q\r"]` + "\n" +
		`[1.123000, "o", "bad ` + "\ufffd" + ` byte\n"]` + "\n"
	if w.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", w.String(), want)
	}
	if w.writes != 5 {
		t.Fatalf("%d writes, want one per line", w.writes)
	}
}

func TestAsciicastFlushWritesHeldBytes(t *testing.T) {
	var w bytes.Buffer
	enc := NewAsciicast(&w, AsciicastOptions{Clock: (&stepClock{t: t0}).now})
	feed(t, enc, []chunk{{Output, []byte("\xf0\x9f")}, {Input, []byte("x\xc3")}})
	_, events, err := ParseAsciicast(bytes.NewReader(w.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Data != "x" {
		t.Fatalf("before Flush: %+v", events)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	h, events, err := ParseAsciicast(bytes.NewReader(w.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if h.Width != 80 || h.Height != 24 {
		t.Fatalf("default size %dx%d", h.Width, h.Height)
	}
	if got := string(Stream(events, CodeOutput)); got != "\ufffd\ufffd" {
		t.Fatalf("flushed output %q", got)
	}
	if got := string(Stream(events, CodeInput)); got != "x\ufffd" {
		t.Fatalf("flushed input %q", got)
	}
}

func TestAsciicastResumeCountsFromHeader(t *testing.T) {
	var file bytes.Buffer
	first := NewAsciicast(&file, AsciicastOptions{Clock: (&stepClock{t: t0, step: time.Second}).now})
	feed(t, first, []chunk{{Output, []byte("one\n")}})

	h, err := ReadHeader(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	later := &stepClock{t: t0.Add(time.Hour)}
	second := NewAsciicast(&file, AsciicastOptions{Clock: later.now})
	second.Resume(h)
	feed(t, second, []chunk{{Output, []byte("two\n")}})

	if n := strings.Count(file.String(), `"version"`); n != 1 {
		t.Fatalf("%d headers in\n%s", n, file.String())
	}
	_, events, err := ParseAsciicast(&file)
	if err != nil {
		t.Fatal(err)
	}
	// The header's timestamp is t0 truncated to the second.
	wantSecond := time.Hour.Seconds() + 0.123
	if len(events) != 2 || events[1].Time < wantSecond-1e-6 || events[1].Time > wantSecond+1e-6 {
		t.Fatalf("events %+v, want the second at %.3f", events, wantSecond)
	}
}

func TestAsciicastTimeNeverGoesBack(t *testing.T) {
	times := []time.Time{t0, t0.Add(2 * time.Second), t0.Add(time.Second)}
	clock := func() time.Time { t := times[0]; times = times[1:]; return t }
	var w bytes.Buffer
	enc := NewAsciicast(&w, AsciicastOptions{Clock: clock})
	feed(t, enc, []chunk{{Output, []byte("a")}, {Output, []byte("b")}})
	_, events, err := ParseAsciicast(&w)
	if err != nil {
		t.Fatal(err)
	}
	// The header says t0 in whole seconds; t0 is 0.123s past it.
	if len(events) != 2 || events[0].Time != 2.123 || events[1].Time != 2.123 {
		t.Fatalf("events %+v, want both at 2.123s", events)
	}
}

func TestReadHeaderErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "not a JSON object"},
		{"hello\n", "not a JSON object"},
		{`{"version": 1, "width": 80, "height": 24}` + "\n", "version 1"},
		{`{"version": 2, "width": 0, "height": 24}` + "\n", "size 0x24"},
		{strings.Repeat("x", 100<<10), "not a JSON object"},
	} {
		if _, err := ReadHeader(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadHeader(%.20q) error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestParseAsciicastErrors(t *testing.T) {
	const h = `{"version": 2, "width": 80, "height": 24}` + "\n"
	for _, tc := range []struct{ in, want string }{
		{"", "empty file"},
		{h + "[1, \"o\"]\n", "line 2: event has 2 elements"},
		{h + "{}\n", "line 2: event is not a JSON array"},
		{h + "[\"x\", \"o\", \"a\"]\n", "line 2: event time"},
		{h + "[1, 2, \"a\"]\n", "line 2: event code"},
		{h + "[1, \"o\", 3]\n", "line 2: event data"},
	} {
		if _, _, err := ParseAsciicast(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAsciicast(%q) error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestValidUTF8ReplacesEachBadByte(t *testing.T) {
	if got := string(ValidUTF8([]byte("a\xff\xfeb\xe2\x82"))); got != "a\ufffd\ufffdb\ufffd\ufffd" {
		t.Fatalf("ValidUTF8 = %q", got)
	}
}

// checkAsciicastRoundTrip encodes chunks and parses the file back: each
// direction's text is ValidUTF8 of its bytes (the bytes themselves when
// they are valid UTF-8), every event is valid UTF-8, times never go back.
func checkAsciicastRoundTrip(t tester, chunks []chunk) {
	clock := &stepClock{t: t0, step: 3 * time.Millisecond}
	var w bytes.Buffer
	enc := NewAsciicast(&w, AsciicastOptions{Clock: clock.now})
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	feed(t, enc, chunks)
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, events, err := ParseAsciicast(bytes.NewReader(w.Bytes()))
	if err != nil {
		t.Fatalf("parse: %v\nfile: %q", err, w.Bytes())
	}
	wantOut, wantIn := streams(chunks)
	if got := Stream(events, CodeOutput); !bytes.Equal(got, ValidUTF8(wantOut)) {
		t.Fatalf("output %q, want %q", got, ValidUTF8(wantOut))
	}
	if got := Stream(events, CodeInput); !bytes.Equal(got, ValidUTF8(wantIn)) {
		t.Fatalf("input %q, want %q", got, ValidUTF8(wantIn))
	}
	for i, ev := range events {
		if !utf8.ValidString(ev.Data) || ev.Data == "" {
			t.Fatalf("event %d data %q", i, ev.Data)
		}
		if i > 0 && ev.Time < events[i-1].Time {
			t.Fatalf("event %d at %f before %f", i, ev.Time, events[i-1].Time)
		}
	}
}

func TestAsciicastRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkAsciicastRoundTrip(t, genChunks(t, true))
	})
}

func FuzzAsciicastRoundTrip(f *testing.F) {
	f.Add([]byte("\x0ahello\x05\xe2\x82\x06\xac\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAsciicastRoundTrip(t, script(data))
	})
}

// FuzzParseAsciicast feeds arbitrary files to the parser: it must not
// panic, and a file it accepts re-encodes to the same streams.
func FuzzParseAsciicast(f *testing.F) {
	f.Add([]byte(`{"version": 2, "width": 80, "height": 24}` + "\n" + `[0.5, "o", "hi"]` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, events, err := ParseAsciicast(bytes.NewReader(data))
		if err != nil {
			return
		}
		var w bytes.Buffer
		enc := NewAsciicast(&w, AsciicastOptions{Clock: (&stepClock{t: t0}).now})
		if err := enc.Start(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			switch ev.Code {
			case CodeOutput:
				enc.Out([]byte(ev.Data))
			case CodeInput:
				enc.In([]byte(ev.Data))
			}
		}
		enc.Flush()
		_, again, err := ParseAsciicast(&w)
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		for _, code := range []string{CodeOutput, CodeInput} {
			want := ValidUTF8(Stream(events, code))
			if got := Stream(again, code); !bytes.Equal(got, want) {
				t.Fatalf("%s stream %q, want %q", code, got, want)
			}
		}
	})
}

func TestAsciicastMarksTypists(t *testing.T) {
	var b bytes.Buffer
	a := NewAsciicast(&b, AsciicastOptions{})
	a.Out([]byte("$ "))
	a.InFrom("alice", []byte("l"))
	a.InFrom("alice", []byte("s"))
	a.InFrom("bob", []byte("\r"))
	_, evs, err := ParseAsciicast(&b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Code+":"+e.Data)
	}
	want := "o:$  m:input by alice i:l i:s m:input by bob i:\r"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q want %q", strings.Join(got, " "), want)
	}
}
