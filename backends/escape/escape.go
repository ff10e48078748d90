// Package escape gives an interactive leg local commands behind an escape
// key, the way conserver's ^Ec and QEMU's mux C-a do: after the key, one
// more key sends a break, takes or releases the exclusive write lock, or
// shows the tee's status to that client alone. The key pressed twice
// sends the key itself.
//
// Machine is the pure state machine (bytes in, data and commands out);
// Wrap puts it in front of a device and answers commands through the
// tee's chardev.Control.
package escape

import (
	"fmt"
	"strings"
)

// Op is an escape command.
type Op uint8

// Escape commands.
const (
	OpNone    Op = iota
	OpBreak      // b: send a break to the frontend
	OpLock       // l: take the exclusive write lock
	OpUnlock     // u: release the write lock
	OpStatus     // s: show the tee's status
	OpHelp       // ?: list the commands
	OpUnknown    // any other key
)

// Command is an escape command and the key that chose it.
type Command struct {
	Op  Op
	Key byte
}

// opFor maps the key after the escape key to a command.
func opFor(b byte) Op {
	switch b {
	case 'b', 'B':
		return OpBreak
	case 'l', 'L':
		return OpLock
	case 'u', 'U':
		return OpUnlock
	case 's', 'S':
		return OpStatus
	case '?', 'h', 'H':
		return OpHelp
	}
	return OpUnknown
}

// Machine finds escape sequences in a byte stream. It keeps its state
// between calls, so a sequence may be cut anywhere. The zero value has
// escape key NUL; set Key.
type Machine struct {
	// Key is the escape key.
	Key   byte
	armed bool // the escape key was the last byte seen
}

// Step consumes in until it has read one complete command or reached the
// end of in, appending data bytes to dst. It returns the extended dst, the
// input not consumed, and the command (Op is OpNone when there is none).
// Data appended before a command was typed before it.
func (m *Machine) Step(dst, in []byte) (out, rest []byte, cmd Command) {
	for i, b := range in {
		if m.armed {
			m.armed = false
			if b == m.Key {
				dst = append(dst, b) // the key twice: the key itself
				continue
			}
			return dst, in[i+1:], Command{Op: opFor(b), Key: b}
		}
		if b == m.Key {
			m.armed = true
			continue
		}
		dst = append(dst, b)
	}
	return dst, nil, Command{}
}

// Armed reports whether the escape key was typed and the command key is
// awaited.
func (m *Machine) Armed() bool { return m.armed }

// rejectedKeys are control keys that make poor escape keys: NUL ends
// every telnet CR, CR and LF end lines, ESC starts every cursor key's
// sequence.
var rejectedKeys = map[byte]string{
	0x00: "NUL is sent by telnet after every bare CR",
	'\n': "it is the line feed key",
	'\r': "it is the Enter key",
	0x1b: "ESC starts every cursor and function key sequence",
}

// ParseKey parses an escape key as configured: "^]" or "^E" (caret
// notation), "ctrl-a", "ctrl+a" or "C-a" (QEMU's spelling), "^?" for DEL,
// or the control character itself.
func ParseKey(s string) (byte, error) {
	t := strings.TrimSpace(s)
	var k byte
	var ok bool
	lower := strings.ToLower(t)
	switch {
	case len(t) == 2 && t[0] == '^':
		k, ok = ctrlKey(t[1])
	case len(t) == 6 && (strings.HasPrefix(lower, "ctrl-") || strings.HasPrefix(lower, "ctrl+")):
		k, ok = ctrlKey(t[5])
	case len(t) == 3 && strings.HasPrefix(lower, "c-"):
		k, ok = ctrlKey(t[2])
	case len(s) == 1 && (s[0] < 0x20 || s[0] == 0x7f):
		k, ok = s[0], true
	}
	if !ok {
		return 0, fmt.Errorf("escape key %q: want a control key as ^X, ctrl-X or C-X, e.g. ^] or ctrl-a", s)
	}
	if why, bad := rejectedKeys[k]; bad {
		return 0, fmt.Errorf("escape key %q: %s is not usable as escape key: %s", s, KeyName(k), why)
	}
	return k, nil
}

// ctrlKey returns the control key written as ^c.
func ctrlKey(c byte) (byte, bool) {
	switch {
	case c >= 'a' && c <= 'z':
		return c - 'a' + 1, true
	case c >= '@' && c <= '_':
		return c - '@', true
	case c == '?':
		return 0x7f, true
	}
	return 0, false
}

// KeyName writes a key the way ParseKey reads it: ^E, ^], ^?.
func KeyName(k byte) string {
	switch {
	case k < 0x20:
		return "^" + string(rune(k+'@'))
	case k == 0x7f:
		return "^?"
	}
	return string(rune(k))
}

// Help lists the commands for escape key k.
func Help(k byte) string {
	n := KeyName(k)
	return fmt.Sprintf("escape commands (%[1]s then):\n"+
		"  b  send a break to the device\n"+
		"  l  take the write lock (others cannot type)\n"+
		"  u  release the write lock\n"+
		"  s  show status\n"+
		"  ?  this help\n"+
		"  %[1]s  send %[1]s itself", n)
}
