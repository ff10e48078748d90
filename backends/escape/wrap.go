package escape

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"chartee/chardev"
)

// BreakDuration is the break the b command sends.
const BreakDuration = 250 * time.Millisecond

// Interface guards. Conn forwards every capability a leg device may have
// and reports the ones its inner device lacks as unsupported.
var (
	_ chardev.Chardev         = (*Conn)(nil)
	_ chardev.ControlAware    = (*Conn)(nil)
	_ chardev.LineObserver    = (*Conn)(nil)
	_ chardev.Peer            = (*Conn)(nil)
	_ chardev.Describer       = (*Conn)(nil)
	_ chardev.LineController  = (*Conn)(nil)
	_ chardev.Breaker         = (*Conn)(nil)
	_ chardev.ModemController = (*Conn)(nil)
	_ chardev.Noticer         = (*Conn)(nil)
	_ chardev.Escaper         = (*Conn)(nil)
)

// Conn is a device whose input is scanned for escape commands. Commands
// are answered locally, to this client only, through the same lock as
// output writes, so an answer never lands inside a write.
//
// It does not forward chardev.InputRecorder or chardev.Reopener: escape
// keys belong on interactive legs, not captures.
type Conn struct {
	dev chardev.Chardev
	key byte

	writeMu sync.Mutex

	mu        sync.Mutex
	ctl       chardev.Control
	answers   [][]byte // queued while the client suspended output (say)
	answering bool     // a writeAnswers goroutine runs

	// Read side, used only by the goroutine calling Read.
	m    Machine
	rbuf []byte
	rest []byte
	dbuf []byte
	data []byte
	held Command
}

// Wrap returns dev with escape commands behind key. Wrap it around a
// protocol device (a telnet ServerConn), not under it, so the key is
// matched in the client's data rather than in protocol bytes.
func Wrap(dev chardev.Chardev, key byte) chardev.Chardev {
	return &Conn{dev: dev, key: key, m: Machine{Key: key}, rbuf: make([]byte, 4096)}
}

// Unwrap returns the wrapped device.
func (c *Conn) Unwrap() chardev.Chardev { return c.dev }

// Read returns the client's data without escape sequences, and carries out
// the commands it finds. Data typed before a command is returned before
// the command runs.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(c.data) > 0 {
			n := copy(p, c.data)
			c.data = c.data[n:]
			return n, nil
		}
		if c.held.Op != OpNone {
			cmd := c.held
			c.held = Command{}
			c.run(cmd)
		}
		if len(c.rest) == 0 {
			n, err := c.dev.Read(c.rbuf)
			if n == 0 {
				if err == nil {
					continue
				}
				return 0, err
			}
			c.rest = c.rbuf[:n]
			// An error with data is seen again on the next read.
		}
		var cmd Command
		c.dbuf, c.rest, cmd = c.m.Step(c.dbuf[:0], c.rest)
		c.data = c.dbuf
		if cmd.Op == OpNone {
			continue
		}
		if len(c.data) > 0 {
			c.held = cmd
			continue
		}
		c.run(cmd)
	}
}

// Write writes to the device.
func (c *Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.dev.Write(p)
}

// FreezeWrite passes chardev.WriteFreezer on to the device: a Write cut
// short returns what went out.
func (c *Conn) FreezeWrite() error { return chardev.FreezeWrite(c.dev) }

// ThawWrite undoes FreezeWrite.
func (c *Conn) ThawWrite() error {
	chardev.ThawWrite(c.dev)
	return nil
}

// Close closes the device.
func (c *Conn) Close() error { return c.dev.Close() }

// SetControl keeps the tee's control handle for the commands and passes it
// on to the inner device.
func (c *Conn) SetControl(ctl chardev.Control) {
	c.mu.Lock()
	c.ctl = ctl
	c.mu.Unlock()
	if ca, ok := c.dev.(chardev.ControlAware); ok {
		ca.SetControl(ctl)
	}
}

func (c *Conn) control() chardev.Control {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctl
}

// LineChanged passes the notification on to the inner device.
func (c *Conn) LineChanged(l chardev.LineSettings) {
	if lo, ok := c.dev.(chardev.LineObserver); ok {
		lo.LineChanged(l)
	}
}

// Peer names the inner device's client, or "".
func (c *Conn) Peer() string {
	if p, ok := c.dev.(chardev.Peer); ok {
		return p.Peer()
	}
	return ""
}

// Notice passes a notice on to the inner device if it shows notices (a
// telnet connection); over a raw stream it shows nothing.
func (c *Conn) Notice(text string) {
	if n, ok := c.dev.(chardev.Noticer); ok {
		n.Notice(text)
	}
}

// EscapeKey is the key as a user types it, for messages (chardev.Escaper).
func (c *Conn) EscapeKey() string { return KeyName(c.key) }

// Describe names the inner device.
func (c *Conn) Describe() string {
	return chardev.Describe(c.dev) + " (escape " + KeyName(c.key) + ")"
}

// SetLineSettings forwards to the inner device.
func (c *Conn) SetLineSettings(l chardev.LineSettings) error {
	return chardev.SetLineSettings(c.dev, l)
}

// LineSettings forwards to the inner device.
func (c *Conn) LineSettings() (chardev.LineSettings, error) {
	lc, ok := c.dev.(chardev.LineController)
	if !ok {
		return chardev.LineSettings{}, fmt.Errorf("line settings: %w", chardev.ErrUnsupported)
	}
	return lc.LineSettings()
}

// Break forwards to the inner device.
func (c *Conn) Break(d time.Duration) error { return chardev.SendBreak(c.dev, d) }

// SetDTR forwards to the inner device.
func (c *Conn) SetDTR(on bool) error { return chardev.SetModemLines(c.dev, &on, nil) }

// SetRTS forwards to the inner device.
func (c *Conn) SetRTS(on bool) error { return chardev.SetModemLines(c.dev, nil, &on) }

// ModemStatus forwards to the inner device.
func (c *Conn) ModemStatus() (chardev.ModemStatus, error) { return chardev.GetModemStatus(c.dev) }

// run carries out a command and tells the client what happened.
func (c *Conn) run(cmd Command) {
	ctl := c.control()
	if ctl == nil && cmd.Op != OpHelp && cmd.Op != OpUnknown {
		c.say("no control of the tee on this connection")
		return
	}
	switch cmd.Op {
	case OpBreak:
		if err := ctl.Break(BreakDuration); err != nil {
			c.say("break: " + err.Error())
			return
		}
		c.say("break sent")
	case OpLock:
		if err := ctl.TakeWriteLock(); err != nil {
			c.say("write lock: " + err.Error())
			return
		}
		c.say("write lock taken")
	case OpUnlock:
		ctl.ReleaseWriteLock()
		c.say("write lock released")
	case OpStatus:
		c.say(ctl.Status())
	case OpHelp:
		c.say(Help(c.key))
	case OpUnknown:
		c.say(fmt.Sprintf("unknown escape command %q; %s ? lists them", cmd.Key, KeyName(c.key)))
	}
}

// maxAnswers bounds the answers waiting for a client that suspended its
// output: it gets the first ones when it resumes; the rest are dropped.
const maxAnswers = 16

// outputSuspender is a device whose client can suspend our output (an
// RFC 2217 client's FLOWCONTROL-SUSPEND); its Write waits for the resume.
type outputSuspender interface {
	OutputSuspended() bool
}

// say writes a message to this client alone, on lines of its own. It
// runs on the reader. While the client's output is suspended the reader
// must not wait for it, as the resume comes through this very reader: the
// answer is queued instead, for a goroutine of its own to write once the
// client resumes (and later answers queue behind it, in order). Lost
// if the connection closes or is handed to a new process first.
func (c *Conn) say(msg string) {
	msg = strings.ReplaceAll(strings.TrimRight(msg, "\r\n"), "\r\n", "\n")
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	answer := []byte("\r\n[chartee] " + msg + "\r\n")
	c.mu.Lock()
	if !c.answering && !suspended(c.dev) {
		c.mu.Unlock()
		c.writeMu.Lock()
		defer c.writeMu.Unlock()
		_, _ = c.dev.Write(answer)
		return
	}
	defer c.mu.Unlock()
	if len(c.answers) >= maxAnswers {
		return
	}
	c.answers = append(c.answers, answer)
	if !c.answering {
		c.answering = true
		go c.writeAnswers()
	}
}

func suspended(dev chardev.Chardev) bool {
	s, ok := dev.(outputSuspender)
	return ok && s.OutputSuspended()
}

// writeAnswers writes the queued answers in order, then ends. A failed
// write (the connection closed or frozen for an upgrade) drops the rest.
func (c *Conn) writeAnswers() {
	for {
		c.mu.Lock()
		if len(c.answers) == 0 {
			c.answering = false
			c.mu.Unlock()
			return
		}
		a := c.answers[0]
		c.answers = c.answers[1:]
		c.mu.Unlock()
		c.writeMu.Lock()
		_, err := c.dev.Write(a)
		c.writeMu.Unlock()
		if err != nil {
			c.mu.Lock()
			c.answers = nil
			c.answering = false
			c.mu.Unlock()
			return
		}
	}
}
