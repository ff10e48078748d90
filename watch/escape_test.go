package watch

import (
	"bytes"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParseEscapes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{`plain`, "plain"},
		{`echo $((6*7))\n`, "echo $((6*7))\n"},
		{`a\r\n\tb`, "a\r\n\tb"},
		{`\x00\x1B\xff`, "\x00\x1b\xff"},
		{`\e[1m\\`, "\x1b[1m\\"},
		{`\0`, "\x00"},
	} {
		got, err := ParseEscapes(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("ParseEscapes(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, msg string }{
		{`trailing\`, "lone backslash"},
		{`\q`, `unknown \q`},
		{`\x1`, "two hex digits"},
		{`\xZZ`, `\xZZ: want two hex digits`},
		{`ab\x`, "byte 2"},
	} {
		_, err := ParseEscapes(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseEscapes(%q) error %v; want it to mention %q", c.in, err, c.msg)
		}
	}
}

// Every byte string survives QuoteEscapes then ParseEscapes.
func TestEscapesRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOf(rapid.Byte()).Draw(t, "b")
		got, err := ParseEscapes(QuoteEscapes(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %q: %q, %v", b, got, err)
		}
	})
}

func FuzzParseEscapes(f *testing.F) {
	for _, s := range []string{`echo hi\r\n`, `\x41\x`, `\\\e\0\t`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseEscapes(s)
		if err != nil {
			return
		}
		// Parsed text quotes back to something that parses to the same bytes.
		again, err := ParseEscapes(QuoteEscapes(b))
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%q -> %q -> %q, %v", s, b, again, err)
		}
		if len(b) > len(s) {
			t.Fatalf("%q parsed to %d bytes, more than its length", s, len(b))
		}
	})
}
