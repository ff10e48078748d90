package watch

// ansiState strips terminal escape sequences (CSI, OSC, DCS and the other
// string sequences, and two-byte ESC sequences) from a stream fed in
// pieces: a sequence split across chunks is still removed. A sequence
// longer than maxEscape bytes is given up on (garbage, not a terminal) and
// the bytes after that point are kept again.
type ansiState struct {
	st  uint8
	len int
}

const (
	ansiGround uint8 = iota
	ansiEsc
	ansiInter
	ansiCSI
	ansiString
	ansiStringEsc
)

// maxEscape bounds one escape sequence; an OSC title is well under it.
const maxEscape = 512

// keep reports whether byte c of the stream is text (true) or part of an
// escape sequence (false).
func (a *ansiState) keep(c byte) bool {
	if a.st != ansiGround {
		a.len++
		if a.len > maxEscape {
			a.st = ansiGround
		}
	}
	switch a.st {
	case ansiGround:
		if c == 0x1b {
			a.st, a.len = ansiEsc, 1
			return false
		}
		return true
	case ansiEsc:
		switch {
		case c == '[':
			a.st = ansiCSI
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			a.st = ansiString
		case c >= 0x20 && c <= 0x2f:
			a.st = ansiInter
		default:
			a.st = ansiGround
		}
	case ansiInter:
		if c < 0x20 || c > 0x2f {
			a.st = ansiGround
		}
	case ansiCSI:
		if c >= 0x40 && c <= 0x7e {
			a.st = ansiGround
		}
	case ansiString:
		switch c {
		case 0x07:
			a.st = ansiGround
		case 0x1b:
			a.st = ansiStringEsc
		}
	case ansiStringEsc:
		if c == '\\' {
			a.st = ansiGround
		} else {
			a.st = ansiString
		}
	}
	return false
}

// StripANSI returns b without its terminal escape sequences (a whole
// buffer; the Matcher strips streams incrementally).
func StripANSI(b []byte) []byte {
	var a ansiState
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if a.keep(c) {
			out = append(out, c)
		}
	}
	return out
}
