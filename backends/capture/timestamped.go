package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// TimeLayout is the timestamp at the start of each timestamped line:
// RFC 3339 in UTC with milliseconds, always 24 bytes.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

const timeLen = len("2006-01-02T15:04:05.000Z")

// maxUserTag bounds the user name in an input mark.
const maxUserTag = 64

// Direction marks used by the timestamped format when both directions are
// captured: "> " before output, "< " before input.
const (
	MarkOutput = '>'
	MarkInput  = '<'
)

// Separators between a timestamped line's time and the rest. A '+' says
// that the line above ended without a newline in the data: the newline
// that ends it was added because the direction changed (or a new session
// was appended to a file that ended mid-line), and a parser drops it.
const (
	sepLine = ' '
	sepCut  = '+'
)

// Timestamped writes lines prefixed with the time their first byte arrived:
//
//	2026-11-25T10:00:00.123Z login:          (one direction: no mark)
//	2026-11-25T10:00:00.123Z > login:        (both directions: output)
//	2026-11-25T10:00:01.456Z+< root          (input; '+': the output line above had no newline)
//	2026-11-25T10:00:02.789Z <[alice] ls     (input typed by user alice, with marks)
//
// A line ends after each '\n' in the data; a line that continues across
// writes keeps its first timestamp. A change of direction in the middle of
// a line ends it with an added newline and flags the next line with '+', so
// ParseTimestamped gives back each direction's bytes exactly. Bytes are
// otherwise written as they came: control characters and escape sequences
// are not escaped, so `cat` of the file renders like the terminal did.
type Timestamped struct {
	w     io.Writer
	marks bool
	clock Clock

	midLine bool      // the last line written has no newline yet
	dir     Direction // direction of the last line written
	user    string    // who typed the last input line written ("" nobody named)
	cut     bool      // the next line's prefix must carry sepCut
	buf     []byte
}

// TimestampedOptions configure a Timestamped encoder.
type TimestampedOptions struct {
	// Marks adds a direction mark to each line. Set it when both
	// directions are captured; without it input and output lines look
	// alike.
	Marks bool
	// Clock stamps lines; nil means time.Now.
	Clock Clock
}

// NewTimestamped returns an encoder writing to w, positioned at the start
// of a line.
func NewTimestamped(w io.Writer, opts TimestampedOptions) *Timestamped {
	return &Timestamped{w: w, marks: opts.Marks, clock: opts.Clock}
}

// NewFile tells the encoder that w now writes to another file (after a
// rotation or reopen). midLine says that file already ends without a
// newline (an appended capture whose last session stopped mid-line): the
// next line then starts with a newline and a '+'.
func (t *Timestamped) NewFile(midLine bool) {
	t.midLine = false
	t.cut = false
	if midLine {
		t.buf = append(t.buf[:0], '\n')
		t.cut = true
	} else {
		t.buf = t.buf[:0]
	}
}

// Out writes bytes the frontend produced.
func (t *Timestamped) Out(p []byte) error { return t.write(Output, p) }

// In writes bytes typed into the frontend.
func (t *Timestamped) In(p []byte) error { return t.write(Input, p) }

// InFrom writes bytes user typed into the frontend. With marks, the input
// mark names the user ("<[alice] "); a change of typist mid-line starts a
// new line, as a change of direction does.
func (t *Timestamped) InFrom(user string, p []byte) error {
	if !t.marks {
		user = ""
	}
	return t.writeAs(Input, user, p)
}

func (t *Timestamped) write(d Direction, p []byte) error { return t.writeAs(d, "", p) }

func (t *Timestamped) writeAs(d Direction, user string, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	now := t.clock.now()
	buf := t.buf // may hold a newline queued by NewFile
	for len(p) > 0 {
		if t.midLine && (t.dir != d || t.user != user) {
			buf = append(buf, '\n')
			t.midLine, t.cut = false, true
		}
		if !t.midLine {
			buf = t.appendPrefix(buf, now, d, user)
			t.midLine, t.dir, t.user = true, d, user
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			buf = append(buf, p...)
			break
		}
		buf = append(buf, p[:i+1]...)
		p = p[i+1:]
		t.midLine = false
	}
	t.buf = buf[:0]
	_, err := t.w.Write(buf)
	return err
}

func (t *Timestamped) appendPrefix(buf []byte, now time.Time, d Direction, user string) []byte {
	buf = now.UTC().AppendFormat(buf, TimeLayout)
	if t.cut {
		buf = append(buf, sepCut)
		t.cut = false
	} else {
		buf = append(buf, sepLine)
	}
	if t.marks {
		mark := byte(MarkOutput)
		if d == Input {
			mark = MarkInput
		}
		buf = append(buf, mark)
		if d == Input && user != "" {
			buf = append(append(append(buf, '['), user...), ']')
		}
		buf = append(buf, ' ')
	}
	return buf
}

// Line is one record of a timestamped capture.
type Line struct {
	Time time.Time
	Dir  Direction
	// Data is the line's bytes, with its trailing newline when that
	// newline was data (not added by a change of direction).
	Data []byte
	// User is who typed an input line, when the capture names them.
	User string
}

// ParseTimestamped reads back a timestamped capture. marks must match the
// writer's TimestampedOptions.Marks; without marks every line is Output.
// Concatenating the Data of one direction's lines gives back exactly the
// bytes that direction's Out or In calls wrote.
func ParseTimestamped(data []byte, marks bool) ([]Line, error) {
	var lines []Line
	for n := 1; len(data) > 0; n++ {
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i+1], data[i+1:]
		} else {
			raw, data = data, nil
		}
		line, cut, err := parseTimestampedLine(raw, marks)
		if err != nil {
			return lines, fmt.Errorf("timestamped: line %d: %w", n, err)
		}
		if cut {
			if len(lines) == 0 {
				return lines, fmt.Errorf("timestamped: line %d: '+' continuation without a line above", n)
			}
			// The newline ending the line above was added, not data; a
			// line above that ended without one (a cut first line of an
			// appended session) lost nothing.
			prev := &lines[len(lines)-1]
			prev.Data = bytes.TrimSuffix(prev.Data, []byte{'\n'})
		}
		lines = append(lines, line)
	}
	return lines, nil
}

func parseTimestampedLine(raw []byte, marks bool) (line Line, cut bool, err error) {
	prefix := timeLen + 1
	if marks {
		prefix += 2
	}
	if len(raw) < prefix {
		return line, false, fmt.Errorf("too short for a timestamp prefix: %q", raw)
	}
	line.Time, err = time.Parse(TimeLayout, string(raw[:timeLen]))
	if err != nil {
		return line, false, fmt.Errorf("bad timestamp: %w", err)
	}
	switch raw[timeLen] {
	case sepLine:
	case sepCut:
		cut = true
	default:
		return line, false, fmt.Errorf("want ' ' or '+' after the timestamp, got %q", raw[timeLen])
	}
	if marks {
		switch raw[timeLen+1] {
		case MarkOutput:
			line.Dir = Output
		case MarkInput:
			line.Dir = Input
		default:
			return line, false, fmt.Errorf("want direction mark '>' or '<', got %q", raw[timeLen+1])
		}
		if line.Dir == Input && raw[timeLen+2] == '[' {
			end := bytes.IndexByte(raw[timeLen+3:], ']')
			if end < 1 || end > maxUserTag || timeLen+3+end+1 >= len(raw) {
				return line, false, errors.New("bad user tag after the input mark: want <[user] ")
			}
			line.User = string(raw[timeLen+3 : timeLen+3+end])
			if bytes.ContainsAny([]byte(line.User), " \n[") {
				return line, false, errors.New("bad user tag after the input mark: want <[user] ")
			}
			prefix += end + 2
		}
		if raw[prefix-1] != ' ' {
			return line, false, fmt.Errorf("want a space after the direction mark, got %q", raw[prefix-1])
		}
	}
	line.Data = raw[prefix:]
	return line, cut, nil
}
