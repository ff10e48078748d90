package capture

import (
	"bytes"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// stepClock is a Clock that moves forward by step on every call.
type stepClock struct {
	t    time.Time
	step time.Duration
}

func (c *stepClock) now() time.Time {
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.UTC)

// tester is what the round-trip checks need from *testing.T, *rapid.T and
// fuzz targets alike (rapid.T is not a testing.TB).
type tester interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// chunk is one encoder call in a generated script.
type chunk struct {
	dir  Direction
	data []byte
}

// script decodes fuzz input into encoder calls: each call takes a control
// byte (direction in bit 0, length in bits 1-5) and then that many bytes.
func script(data []byte) []chunk {
	var chunks []chunk
	for len(data) > 0 {
		ctl := data[0]
		data = data[1:]
		n := min(int(ctl>>1)&31, len(data))
		chunks = append(chunks, chunk{dir: Direction(ctl & 1), data: data[:n]})
		data = data[n:]
	}
	return chunks
}

// genChunks draws encoder calls whose bytes favour newlines, carriage
// returns, escapes and multi-byte UTF-8 so that line and rune boundaries
// fall everywhere.
func genChunks(t *rapid.T, bothDirections bool) []chunk {
	interesting := rapid.SampledFrom([]byte("a\n\r\x1b \xe2\x82\xac\xf0\x9f\x98\x80\xff\xc3"))
	b := rapid.OneOf(rapid.Byte(), interesting, interesting)
	return rapid.SliceOf(rapid.Custom(func(t *rapid.T) chunk {
		c := chunk{data: rapid.SliceOfN(b, 0, 24).Draw(t, "data")}
		if bothDirections && rapid.Bool().Draw(t, "input") {
			c.dir = Input
		}
		return c
	})).Draw(t, "chunks")
}

// streams returns each direction's concatenated bytes.
func streams(chunks []chunk) (out, in []byte) {
	for _, c := range chunks {
		if c.dir == Input {
			in = append(in, c.data...)
		} else {
			out = append(out, c.data...)
		}
	}
	return out, in
}

func feed(t tester, enc Encoder, chunks []chunk) {
	t.Helper()
	for _, c := range chunks {
		var err error
		if c.dir == Input {
			err = enc.In(c.data)
		} else {
			err = enc.Out(c.data)
		}
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
	}
}

// countingWriter counts Write calls, to check one record per call.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestRawInterleaves(t *testing.T) {
	var w countingWriter
	enc := Raw{W: &w}
	feed(t, enc, []chunk{{Output, []byte("login: ")}, {Input, []byte("root\r")}, {Output, nil}, {Output, []byte("\r\n")}})
	if got := w.String(); got != "login: root\r\r\n" || w.writes != 3 {
		t.Fatalf("raw = %q in %d writes", got, w.writes)
	}
}
