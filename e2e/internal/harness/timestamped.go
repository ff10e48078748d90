package harness

import (
	"bytes"
	"fmt"
	"time"
)

// stampLayout is the time at the start of each line of a timestamped
// capture (README, "Capture formats"): RFC 3339, UTC, milliseconds.
const stampLayout = "2006-01-02T15:04:05.000Z"

// Unstamp reads back a timestamped capture of one direction, written
// independently of the daemon's own parser: every line is a 24-byte UTC
// time, a separator and the line's bytes through its newline. The
// separator is ' ', or '+' when the newline ending the line above was not
// in the stream (added because the line had to end there), which is then
// dropped. It returns the stream's bytes and each line's time.
func Unstamp(capture []byte) ([]byte, []time.Time, error) {
	var out []byte
	var times []time.Time
	for n := 1; len(capture) > 0; n++ {
		line := capture
		if i := bytes.IndexByte(capture, '\n'); i >= 0 {
			line = capture[:i+1]
		}
		capture = capture[len(line):]
		if len(line) < len(stampLayout)+1 {
			return out, times, fmt.Errorf("timestamped line %d: %q is too short for a time", n, clip(line))
		}
		at, err := time.Parse(stampLayout, string(line[:len(stampLayout)]))
		if err != nil {
			return out, times, fmt.Errorf("timestamped line %d: %w", n, err)
		}
		switch line[len(stampLayout)] {
		case ' ':
		case '+':
			if len(out) == 0 || out[len(out)-1] != '\n' {
				return out, times, fmt.Errorf("timestamped line %d: '+' with no added newline above", n)
			}
			out = out[:len(out)-1]
		default:
			return out, times, fmt.Errorf("timestamped line %d: %q after the time, want ' ' or '+'", n, line[len(stampLayout)])
		}
		out = append(out, line[len(stampLayout)+1:]...)
		times = append(times, at)
	}
	return out, times, nil
}
