package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// String writes the position as "file:line:col", leaving out what is
// unknown: a YAML syntax error has a line but no column.
func (p Pos) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Col))
		}
	}
	return b.String()
}

func comparePos(a, b Pos) int {
	return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
}

// Error is one problem in a configuration, at the place it was found.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string {
	if p := e.Pos.String(); p != "" {
		return p + ": " + e.Msg
	}
	return e.Msg
}

// ErrorList is every problem found in a configuration, sorted by position,
// so that one run of `chartee check` shows all of them.
type ErrorList []*Error

// Error writes one problem per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns the list as an error, or nil when it is empty. The nil
// interface matters: a nil ErrorList stored in an error is not a nil error.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// sort orders the list by position, keeping the order of equal ones.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int { return comparePos(a.Pos, b.Pos) })
}

// maxErrors bounds a list: past it, one more problem only says there are
// more. A broken file yields a screenful, not a million lines.
const maxErrors = 200

func (l *ErrorList) add(pos Pos, format string, args ...any) {
	switch {
	case len(*l) < maxErrors:
		*l = append(*l, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	case len(*l) == maxErrors:
		*l = append(*l, &Error{Pos: pos, Msg: "too many errors; stopping here"})
	}
}
