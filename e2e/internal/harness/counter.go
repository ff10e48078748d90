package harness

import (
	"bytes"
	"fmt"
	"strconv"
)

// The guest's counter prints one line per tick, "<C:0>", "<C:1>", ...
// and "<C:END>" once it was told to stop. A line is one write(2) to the
// console tty, which the kernel never interleaves with another process's
// write, so a line arrives whole or not at all unless bytes were lost.
const (
	counterOpen = "<C:"
	counterEnd  = CounterEnd
)

// GuestCounter is the guest shell command line that runs the counter in
// the foreground, a line every intervalMS milliseconds, until it is
// interrupted (StopGuestCounter): then it prints "<C:END>" and the shell
// its prompt. Nothing else reaches the console meanwhile: the kernel is
// kept quiet (printk writes to the serial port directly, so a late kernel
// message could land inside a line), the terminal does not echo, and the
// shell prints no prompt until the counter ends. The console's stream
// from "<C:0>" to "<C:END>" is the counter's lines and nothing else.
//
// The interrupt is ^C, taken by the tty (ISIG) with noflsh, so that it
// does not discard output not yet sent. (A `read -t` for a typed line
// would not do: busybox's read takes a line a byte at a time, checking
// its deadline before each, and can time out having eaten part of it.)
func GuestCounter(intervalMS int) string {
	return "echo N >/sys/module/printk/parameters/ignore_loglevel; echo 1 >/proc/sys/kernel/printk; " +
		"stty -echo noflsh; (trap 'echo \"<C:END>\"; exit' INT; i=0; while :; do echo \"<C:$i>\"; i=$((i+1)); " +
		"usleep " + strconv.Itoa(intervalMS*1000) + "; done); stty echo -noflsh\r"
}

// StopGuestCounter is what to type into the console to stop the
// counter: ^C.
const StopGuestCounter = "\x03"

// CounterEnd is the counter's last line, once it was stopped.
const CounterEnd = "<C:END>\r\n"

// CounterCheck is what CheckCounter found in a stream.
type CounterCheck struct {
	Start int  // offset of the first line, "<C:0>"
	Lines int  // numbered lines, consecutive from 0
	Last  int  // offset just past the last whole numbered line
	Ended bool // "<C:END>" followed them
}

// CheckCounter checks that stream carries the guest counter exactly: from
// its first line "<C:0>\r\n" on, every numbered line once and in order.
// Before offset strictUntil nothing else may come between the lines (the
// console is otherwise silent there); after it other output may come
// between lines (a command typed at the prompt, its echo and output), but
// never inside one, and never a line out of order. A line cut short by
// the end of the stream is still arriving and is not counted; nothing may
// follow "<C:END>" but other output.
func CheckCounter(stream []byte, strictUntil int) (CounterCheck, error) {
	var res CounterCheck
	start := bytes.Index(stream, []byte(counterOpen+"0>\r\n"))
	if start < 0 {
		return res, fmt.Errorf("counter: no first line %q in %d bytes", counterOpen+"0>", len(stream))
	}
	// A numbered line before the first: a restarted or replayed counter.
	// (The typed command that started it shows "<C:$i>", no number.)
	for at := 0; ; {
		i := bytes.Index(stream[at:start], []byte(counterOpen))
		if i < 0 {
			break
		}
		i += at
		if n, _, complete := parseCounterLine(stream[i:]); complete && n >= 0 {
			return res, fmt.Errorf("counter: %q at byte %d, before the first line at %d", lineAt(stream, i), i, start)
		}
		at = i + len(counterOpen)
	}
	res.Start, res.Last = start, start
	at := start
	for {
		next := bytes.Index(stream[at:], []byte(counterOpen))
		if next < 0 {
			return res, nil
		}
		next += at
		if next != at && at < strictUntil {
			return res, fmt.Errorf("counter: other bytes %q at byte %d between line %d and the next, before byte %d",
				clip(stream[at:next]), at, res.Lines-1, strictUntil)
		}
		rest := stream[next:]
		if bytes.HasPrefix(rest, []byte(counterEnd)) {
			res.Ended = true
			if i := bytes.Index(stream[next+len(counterEnd):], []byte(counterOpen)); i >= 0 {
				i += next + len(counterEnd)
				return res, fmt.Errorf("counter: %q at byte %d after the end line", lineAt(stream, i), i)
			}
			return res, nil
		}
		n, size, complete := parseCounterLine(rest)
		if !complete {
			return res, nil // still arriving
		}
		if n < 0 {
			return res, fmt.Errorf("counter: broken line %q at byte %d after line %d", lineAt(stream, next), next, res.Lines-1)
		}
		if n != res.Lines {
			what := "missing"
			if n < res.Lines {
				what = "repeated"
			}
			return res, fmt.Errorf("counter: line %d at byte %d, want %d (lines %s)", n, next, res.Lines, what)
		}
		res.Lines++
		at = next + size
		res.Last = at
	}
}

// parseCounterLine reads "<C:N>\r\n" at the start of b: N and the line's
// size; N is -1 for a malformed line, and complete is false when b ends
// before the line could.
func parseCounterLine(b []byte) (n, size int, complete bool) {
	i := len(counterOpen)
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	digits := b[len(counterOpen):i]
	want := ">\r\n"
	tail := b[i:]
	if len(tail) < len(want) && bytes.HasPrefix([]byte(want), tail) {
		return 0, 0, false
	}
	if len(digits) == 0 || len(digits) > 9 || (len(digits) > 1 && digits[0] == '0') || !bytes.HasPrefix(tail, []byte(want)) {
		if len(digits) == 0 && bytes.HasPrefix([]byte(counterEnd[len(counterOpen):]), tail) {
			return 0, 0, false // "<C:EN" still arriving
		}
		return -1, 0, true
	}
	v, _ := strconv.Atoi(string(digits))
	return v, i + len(want), true
}

// LastCounterLine is the number of the last whole counter line in stream,
// -1 before the first.
func LastCounterLine(stream []byte) int {
	for end := len(stream); ; {
		i := bytes.LastIndex(stream[:end], []byte(counterOpen))
		if i < 0 {
			return -1
		}
		if n, _, complete := parseCounterLine(stream[i:]); complete && n >= 0 {
			return n
		}
		end = i
	}
}

// CounterLine is the line numbered n, as it appears in the stream.
func CounterLine(n int) string { return counterOpen + strconv.Itoa(n) + ">\r\n" }

// lineAt is the line starting at b[i], with its newline if it has one.
func lineAt(b []byte, i int) string {
	if end := bytes.IndexByte(b[i:], '\n'); end >= 0 {
		return clip(b[i : i+end+1])
	}
	return clip(b[i:])
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
