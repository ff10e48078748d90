package handover

// The handover socket's messages, parsed apart from the I/O. Every
// message is one line. The new process says "prepared INFO", "ready
// INFO", "running INFO" or "fail REASON"; the old one says "state FILES
// BYTES" (followed by the files, a batch per byte, and BYTES of state
// document) and "commit".

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Message kinds.
const (
	msgPrepared = "prepared" // new: config read and checked; send the state
	msgReady    = "ready"    // new: built on what it was handed; commit?
	msgRunning  = "running"  // new: committed and running (INFO: its steps)
	msgFail     = "fail"     // new: cannot take over (REASON)
	msgState    = "state"    // old: the state and files follow
	msgCommit   = "commit"   // old: take over; this process stops for good
)

// Bounds of what one side accepts from the other.
const (
	maxLine  = 64 << 10  // one message line
	maxState = 256 << 20 // the state document
	maxFiles = 1 << 20   // handed-over files
	// fdBatch is how many descriptors ride on one byte of the stream
	// (the kernel's SCM_MAX_FD is 253).
	fdBatch = 250
)

// message is one parsed line.
type message struct {
	kind string
	arg  string // INFO or REASON ("" when none)
}

var errBadMessage = errors.New("handover: bad message")

// parseMessage reads one line (without its '\n') sent by the new process.
func parseMessage(line string) (message, error) {
	if len(line) > maxLine {
		return message{}, fmt.Errorf("%w: %d bytes", errBadMessage, len(line))
	}
	kind, arg, _ := strings.Cut(line, " ")
	switch kind {
	case msgPrepared, msgReady, msgRunning, msgFail:
	default:
		return message{}, fmt.Errorf("%w: %q", errBadMessage, truncate(line))
	}
	if strings.ContainsAny(arg, "\n\x00") {
		return message{}, fmt.Errorf("%w: %q", errBadMessage, truncate(line))
	}
	return message{kind: kind, arg: arg}, nil
}

// formatMessage is the line (with '\n') for kind and arg; arg is made one
// line.
func formatMessage(kind, arg string) string {
	arg = strings.NewReplacer("\n", "; ", "\x00", "").Replace(arg)
	if len(arg) > maxLine-len(kind)-1 {
		arg = arg[:maxLine-len(kind)-1]
	}
	if arg == "" {
		return kind + "\n"
	}
	return kind + " " + arg + "\n"
}

// parseStateHeader reads "state FILES BYTES" (without its '\n'), sent by
// the old process.
func parseStateHeader(line string) (files int, size int, err error) {
	f := strings.Split(line, " ")
	if len(f) != 3 || f[0] != msgState {
		return 0, 0, fmt.Errorf("%w: %q, want \"state FILES BYTES\"", errBadMessage, truncate(line))
	}
	n, err1 := parseCount(f[1], maxFiles)
	l, err2 := parseCount(f[2], maxState)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("%w: %q: %v", errBadMessage, truncate(line), err)
	}
	return n, l, nil
}

func formatStateHeader(files, size int) string {
	return fmt.Sprintf("%s %d %d\n", msgState, files, size)
}

// parseCount reads a decimal count up to limit, digits only.
func parseCount(s string, limit int) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > limit {
		return 0, fmt.Errorf("%q is over the limit of %d", s, limit)
	}
	return n, nil
}

// batches is how many file-carrying bytes n files take.
func batches(n int) int { return (n + fdBatch - 1) / fdBatch }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
