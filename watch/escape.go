package watch

import (
	"fmt"
	"strings"
)

// ParseEscapes turns send text into bytes: \r, \n, \t, \e (ESC), \\, \0
// and \xHH (two hex digits) are understood; any other backslash sequence,
// or a lone trailing backslash, is an error naming its position, so a
// typo is not typed into a console.
func ParseEscapes(s string) ([]byte, error) {
	if !strings.ContainsRune(s, '\\') {
		return []byte(s), nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("watch: escape at byte %d: lone backslash at the end (write \\\\ for a backslash)", i)
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'e':
			out = append(out, 0x1b)
		case '0':
			out = append(out, 0)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("watch: escape at byte %d: \\x needs two hex digits", i-1)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("watch: escape at byte %d: \\x%s: want two hex digits", i-1, s[i+1:i+3])
			}
			out = append(out, hi<<4|lo)
			i += 2
		default:
			return nil, fmt.Errorf("watch: escape at byte %d: unknown \\%c (want \\r \\n \\t \\e \\0 \\\\ or \\xHH)", i-1, s[i])
		}
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// QuoteEscapes is ParseEscapes' inverse: it writes b so that ParseEscapes
// gives b back, for messages and config round trips.
func QuoteEscapes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\t':
			sb.WriteString(`\t`)
		case c == '\\':
			sb.WriteString(`\\`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
