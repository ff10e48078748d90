package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Header is the first line of an asciicast v2 file
// (https://docs.asciinema.org/manual/asciicast/v2/). Only the fields
// chartee writes or needs when appending are decoded; others are ignored.
type Header struct {
	Version int `json:"version"`
	Width   int `json:"width"`
	Height  int `json:"height"`
	// Timestamp is the Unix time (seconds) the recording began; event
	// times count from it.
	Timestamp int64  `json:"timestamp,omitempty"`
	Title     string `json:"title,omitempty"`
}

// Event codes of asciicast v2.
const (
	CodeOutput = "o"
	CodeInput  = "i"
	CodeMarker = "m"
)

// Event is one line of an asciicast v2 event stream.
type Event struct {
	// Time is seconds since the header's timestamp.
	Time float64
	Code string
	Data string
}

// maxHeaderLine bounds how much ReadHeader reads looking for the first
// newline, so a device or a binary file given as a path cannot make it
// read forever.
const maxHeaderLine = 64 << 10

// AsciicastOptions configure an Asciicast encoder.
type AsciicastOptions struct {
	// Width and Height are the terminal size written in the header; zero
	// means 80x24.
	Width, Height int
	// Title goes into the header when not empty.
	Title string
	// Clock times events; nil means time.Now.
	Clock Clock
}

// Asciicast writes an asciicast v2 recording, playable with
// `asciinema play` and `asciinema cat`: Out becomes "o" events, In
// becomes "i" events, one event per call, times in seconds since the
// header's timestamp with microsecond precision.
//
// Event data must be valid UTF-8 JSON strings while a byte stream may be
// cut anywhere. So an incomplete UTF-8 sequence at the end of a call (at
// most three bytes) is held back and sent with the next call of the same
// direction, and every byte that is not part of a valid UTF-8 sequence is
// written as U+FFFD (ValidUTF8 states the rule). For valid UTF-8 input the
// concatenated "o" data (what `asciinema cat` prints) equals the stream.
type Asciicast struct {
	w       io.Writer
	opts    AsciicastOptions
	started bool
	origin  time.Time // event times count from here
	last    float64   // last event time written: times never go back
	held    [2][]byte // incomplete UTF-8 tail per direction
	buf     bytes.Buffer
	// typist is the user named by the last "input by" marker;
	// pendingMarker is a marker to write before the next input event.
	typist        string
	pendingMarker string
}

// NewAsciicast returns an encoder writing to w. It writes nothing until
// Start, Resume or the first event (which calls Start).
func NewAsciicast(w io.Writer, opts AsciicastOptions) *Asciicast {
	if opts.Width <= 0 {
		opts.Width = 80
	}
	if opts.Height <= 0 {
		opts.Height = 24
	}
	return &Asciicast{w: w, opts: opts}
}

// Start begins a new recording: it writes a header stamped now, and event
// times count from the header's timestamp (now, in whole seconds, so that
// a later session appending to the file counts from the same origin). Call
// it again when w moves to a new, empty file (rotation) so that file plays
// on its own.
func (a *Asciicast) Start() error {
	now := a.opts.Clock.now()
	h := Header{Version: 2, Width: a.opts.Width, Height: a.opts.Height, Timestamp: now.Unix(), Title: a.opts.Title}
	line, err := json.Marshal(h)
	if err != nil {
		return err
	}
	a.started, a.origin, a.last = true, time.Unix(h.Timestamp, 0), 0
	_, err = a.w.Write(append(line, '\n'))
	return err
}

// Resume continues a recording whose header is h (read back with
// ReadHeader from the file w appends to): no header is written and event
// times count from h's timestamp, so appended events follow the old ones.
// A header without a timestamp is resumed as if it began now.
func (a *Asciicast) Resume(h Header) {
	a.started, a.last = true, 0
	if h.Timestamp != 0 {
		a.origin = time.Unix(h.Timestamp, 0)
	} else {
		a.origin = a.opts.Clock.now()
	}
}

// Out writes an output ("o") event.
func (a *Asciicast) Out(p []byte) error { return a.event(Output, p) }

// In writes an input ("i") event.
func (a *Asciicast) In(p []byte) error { return a.event(Input, p) }

// InFrom writes an input event typed by user. When the typist changes, a
// marker event "input by USER" comes first, in the same write: asciicast v2
// events have exactly three fields (players reject more), so the user is
// carried by the marker that precedes that user's input events. Players
// show markers as chapter points: one per change of typist.
func (a *Asciicast) InFrom(user string, p []byte) error {
	if user != "" && user != a.typist && len(p) > 0 {
		a.typist = user
		a.pendingMarker = MarkerInputBy + user
	}
	return a.event(Input, p)
}

// MarkerInputBy starts the label of the marker naming who types next.
const MarkerInputBy = "input by "

// Flush writes any held-back incomplete UTF-8 sequence as U+FFFD. Call it
// when the capture ends.
func (a *Asciicast) Flush() error {
	for _, d := range []Direction{Output, Input} {
		if held := a.held[d]; len(held) > 0 {
			a.held[d] = nil
			if err := a.writeEvent(d, held); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Asciicast) event(d Direction, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	data := p
	if held := a.held[d]; len(held) > 0 {
		data = append(held, p...)
	}
	cut := incompleteTail(data)
	a.held[d] = append([]byte(nil), data[cut:]...)
	if cut == 0 {
		return nil
	}
	return a.writeEvent(d, data[:cut])
}

// incompleteTail returns where a trailing incomplete (but so far valid)
// UTF-8 sequence begins in p, or len(p) when p does not end in one. The
// cut is at a rune start, so decoding p[:cut] alone gives the same runes
// as decoding p whole.
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return i
			}
			break
		}
	}
	return len(p)
}

func (a *Asciicast) writeEvent(d Direction, data []byte) error {
	if !a.started {
		if err := a.Start(); err != nil {
			return err
		}
	}
	t := a.opts.Clock.now().Sub(a.origin).Seconds()
	if t < a.last {
		t = a.last // a clock step back must not make playback go back
	}
	a.last = t
	code := CodeOutput
	if d == Input {
		code = CodeInput
	}
	a.buf.Reset()
	if d == Input && a.pendingMarker != "" {
		a.appendEvent(t, CodeMarker, a.pendingMarker)
		a.pendingMarker = ""
	}
	a.buf.WriteByte('[')
	a.buf.WriteString(strconv.FormatFloat(t, 'f', 6, 64))
	a.buf.WriteString(`, "` + code + `", `)
	enc := json.NewEncoder(&a.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(ValidUTF8(data))); err != nil {
		return err
	}
	a.buf.Truncate(a.buf.Len() - 1) // Encode's newline
	a.buf.WriteString("]\n")
	_, err := a.w.Write(a.buf.Bytes())
	return err
}

// appendEvent adds one event line to the buffer.
func (a *Asciicast) appendEvent(t float64, code, data string) {
	a.buf.WriteByte('[')
	a.buf.WriteString(strconv.FormatFloat(t, 'f', 6, 64))
	a.buf.WriteString(`, "` + code + `", `)
	b, _ := json.Marshal(data)
	a.buf.Write(b)
	a.buf.WriteString("]\n")
}

// ValidUTF8 returns p with every byte that does not belong to a valid
// UTF-8 sequence replaced by U+FFFD (one replacement per byte, the way
// utf8.DecodeRune consumes invalid input; bytes.ToValidUTF8 would merge
// runs). It is what an asciicast capture keeps of a stream.
func ValidUTF8(p []byte) []byte {
	if utf8.Valid(p) {
		return p
	}
	out := make([]byte, 0, len(p)+8)
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, p[:size]...)
		}
		p = p[size:]
	}
	return out
}

// ReadHeader reads an asciicast v2 header from the first line of r.
func ReadHeader(r io.Reader) (Header, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxHeaderLine), 4096)
	line, err := br.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return Header{}, fmt.Errorf("asciicast: reading header: %w", err)
	}
	return parseHeader(line)
}

func parseHeader(line []byte) (Header, error) {
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("asciicast: header is not a JSON object: %w", err)
	}
	if h.Version != 2 {
		return h, fmt.Errorf("asciicast: header version %d, want 2", h.Version)
	}
	if h.Width <= 0 || h.Height <= 0 {
		return h, fmt.Errorf("asciicast: header size %dx%d, want positive width and height", h.Width, h.Height)
	}
	return h, nil
}

// ParseAsciicast reads a whole asciicast v2 recording. Events other than
// "o" and "i" (markers, resizes) are returned as they are.
func ParseAsciicast(r io.Reader) (Header, []Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return Header{}, nil, fmt.Errorf("asciicast: %w", err)
		}
		return Header{}, nil, errors.New("asciicast: empty file, want a header line")
	}
	h, err := parseHeader(sc.Bytes())
	if err != nil {
		return h, nil, err
	}
	var events []Event
	for n := 2; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		ev, err := parseEvent(sc.Bytes())
		if err != nil {
			return h, events, fmt.Errorf("asciicast: line %d: %w", n, err)
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		return h, events, fmt.Errorf("asciicast: %w", err)
	}
	return h, events, nil
}

func parseEvent(line []byte) (Event, error) {
	var fields []json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return Event{}, fmt.Errorf("event is not a JSON array: %w", err)
	}
	if len(fields) != 3 {
		return Event{}, fmt.Errorf("event has %d elements, want 3", len(fields))
	}
	var ev Event
	if err := json.Unmarshal(fields[0], &ev.Time); err != nil {
		return ev, fmt.Errorf("event time: %w", err)
	}
	if err := json.Unmarshal(fields[1], &ev.Code); err != nil {
		return ev, fmt.Errorf("event code: %w", err)
	}
	if err := json.Unmarshal(fields[2], &ev.Data); err != nil {
		return ev, fmt.Errorf("event data: %w", err)
	}
	return ev, nil
}

// Stream concatenates the data of the events with the given code: for
// CodeOutput, what `asciinema cat` prints.
func Stream(events []Event, code string) []byte {
	var out []byte
	for _, ev := range events {
		if ev.Code == code {
			out = append(out, ev.Data...)
		}
	}
	return out
}
