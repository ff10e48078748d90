package backends

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"chartee/chardev"
)

func init() {
	chardev.Register("demo", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewDemoSpec() },
		Open:    opener("demo", OpenDemo),
		Input:   true,
		// The simulated console lives in the process's memory.
		NotCarried: "its simulated console lives in the old process's memory",
	})
}

var (
	_ chardev.Chardev        = (*Demo)(nil)
	_ chardev.LineController = (*Demo)(nil)
	_ chardev.Describer      = (*Demo)(nil)
)

// DemoSpec configures the simulated console.
type DemoSpec struct {
	// Hostname appears in the boot log and the prompts; empty means
	// "demo".
	Hostname string `yaml:"hostname" json:"hostname"`
	// Heartbeat is the interval of a kernel-style "alive" line; 0 disables
	// it.
	Heartbeat chardev.Duration `yaml:"heartbeat" json:"heartbeat"`
}

// NewDemoSpec returns the defaults: host "demo", a heartbeat every 10s.
func NewDemoSpec() *DemoSpec {
	return &DemoSpec{Hostname: "demo", Heartbeat: chardev.Duration(10 * time.Second)}
}

var demoHostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$`)

// Validate checks the options; errors name the key.
func (s *DemoSpec) Validate() error {
	if s.Hostname != "" && !demoHostnameRE.MatchString(s.Hostname) {
		return fmt.Errorf("demo: hostname: %q: want letters, digits, '-' and '.', at most 63 characters", s.Hostname)
	}
	if s.Heartbeat < 0 {
		return fmt.Errorf("demo: heartbeat: %v: must not be negative", s.Heartbeat)
	}
	return nil
}

// Tunables of the simulation.
const (
	demoLineDelay = 150 * time.Millisecond // between boot log lines
	demoMaxLine   = 256                    // longest input line kept
	demoMaxOut    = 64 << 10               // output queued beyond this is dropped
)

type demoState uint8

const (
	demoBooting demoState = iota
	demoLogin
	demoShell
)

// Demo is a simulated serial console for the default demo config, so
// chartee can be tried without hardware: it prints a short boot log, a
// login prompt, and then offers a fake shell that answers a handful of
// harmless built-in commands. Nothing is ever executed; there is no real
// shell behind it. A periodic heartbeat line shows output arriving while
// nobody types, and line setting changes are announced on the console so
// a frontend swap replaying them can be watched.
//
// It is a frontend device: all its output is produced by Read, computed on
// demand (due boot lines and heartbeats are emitted when Read looks), so
// it runs no goroutine of its own.
type Demo struct {
	hostname  string
	heartbeat time.Duration
	lineDelay time.Duration
	start     time.Time

	mu          sync.Mutex
	out         []byte // produced, not yet read
	atLineStart bool
	state       demoState
	boot        []string // boot log lines still to print
	nextBoot    time.Time
	nextBeat    time.Time
	user        string
	line        []byte // input line being edited
	afterCR     bool   // last input byte was CR (swallow a following LF)
	escape      uint8  // 0: none, 1: after ESC, 2: inside a CSI sequence
	settings    chardev.LineSettings

	wake      chan struct{} // output was queued by Write or a setting change
	closed    chan struct{}
	closeOnce sync.Once
}

// OpenDemo starts a simulated console; its boot log begins at once.
func OpenDemo(ctx context.Context, spec *DemoSpec) (*Demo, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	host := spec.Hostname
	if host == "" {
		host = "demo"
	}
	now := time.Now()
	d := &Demo{
		hostname:    host,
		heartbeat:   spec.Heartbeat.D(),
		lineDelay:   demoLineDelay,
		start:       now,
		atLineStart: true,
		boot:        demoBootLog(host),
		nextBoot:    now,
		settings:    chardev.LineSettings{Baud: 115200, DataBits: 8},
		wake:        make(chan struct{}, 1),
		closed:      make(chan struct{}),
	}
	return d, nil
}

func demoBootLog(host string) []string {
	return []string{
		"[    0.000000] Linux version 6.1.0-chartee-demo (builder@chartee) #1 SMP PREEMPT_DYNAMIC",
		"[    0.000000] Command line: console=ttyS0,115200n8 quiet",
		"[    0.412345] serial8250: ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A",
		"[    1.023456] EXT4-fs (vda1): mounted filesystem with ordered data mode",
		"[    1.734567] systemd[1]: Hostname set to <" + host + ">.",
		"[    2.345678] random: crng init done",
		"",
		"chartee demo console (simulated: nothing here is real) " + host + " ttyS0",
		"",
	}
}

// Describe names the device.
func (d *Demo) Describe() string { return "demo " + d.hostname }

// Read returns console output, waiting for the next boot line, heartbeat
// or echo when there is none.
func (d *Demo) Read(p []byte) (int, error) {
	for {
		select {
		case <-d.closed:
			return 0, fmt.Errorf("demo: read: %w", os.ErrClosed)
		default:
		}
		d.mu.Lock()
		now := time.Now()
		d.advance(now)
		if len(d.out) > 0 {
			n := copy(p, d.out)
			d.out = d.out[n:]
			d.mu.Unlock()
			return n, nil
		}
		wait, timed := d.untilNextEvent(now)
		d.mu.Unlock()

		d.sleep(wait, timed)
	}
}

// sleep waits until output may be there: the next timed event (if timed),
// a Write or setting change, or Close.
func (d *Demo) sleep(wait time.Duration, timed bool) {
	var timeout <-chan time.Time
	if timed {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-d.closed:
	case <-d.wake:
	case <-timeout:
	}
}

// Write types p into the console: it is echoed and, at a prompt, a line
// is answered when Enter comes. Input during the boot log is dropped, as a
// real getty flushes it.
func (d *Demo) Write(p []byte) (int, error) {
	select {
	case <-d.closed:
		return 0, fmt.Errorf("demo: write: %w", os.ErrClosed)
	default:
	}
	d.mu.Lock()
	d.advance(time.Now())
	if d.state != demoBooting {
		for _, b := range p {
			d.input(b)
		}
	}
	d.mu.Unlock()
	d.signal()
	return len(p), nil
}

// Close stops the console, waking a pending Read. Safe to call more than
// once.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}

// SetLineSettings records the settings and announces them on the console,
// the way a driver might log a mode change.
func (d *Demo) SetLineSettings(l chardev.LineSettings) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("demo: line settings: %w", err)
	}
	d.mu.Lock()
	if l.Baud == 0 {
		l.Baud = d.settings.Baud
	}
	if l.DataBits == 0 {
		l.DataBits = d.settings.DataBits
	}
	d.settings = l
	d.advance(time.Now())
	d.message(fmt.Sprintf("ttyS0: line settings now %v", l))
	d.mu.Unlock()
	d.signal()
	return nil
}

// LineSettings returns the settings last set (115200 8N1 at first).
func (d *Demo) LineSettings() (chardev.LineSettings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settings, nil
}

func (d *Demo) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// advance emits the boot lines and heartbeat that are due at now.
func (d *Demo) advance(now time.Time) {
	for d.state == demoBooting && !now.Before(d.nextBoot) {
		d.emit(d.boot[0] + "\r\n")
		d.boot = d.boot[1:]
		d.nextBoot = d.nextBoot.Add(d.lineDelay)
		if len(d.boot) == 0 {
			d.state = demoLogin
			d.nextBeat = now.Add(d.heartbeat)
			d.prompt()
		}
	}
	if d.state == demoBooting || d.heartbeat <= 0 || now.Before(d.nextBeat) {
		return
	}
	for !now.Before(d.nextBeat) {
		d.nextBeat = d.nextBeat.Add(d.heartbeat)
	}
	d.message("heartbeat: " + d.hostname + " is alive")
}

// untilNextEvent says how long until a boot line or heartbeat is due, and
// whether one ever will be.
func (d *Demo) untilNextEvent(now time.Time) (time.Duration, bool) {
	switch {
	case d.state == demoBooting:
		return d.nextBoot.Sub(now), true
	case d.heartbeat > 0:
		return d.nextBeat.Sub(now), true
	}
	return 0, false
}

// message prints a kernel-style line, then redraws the prompt and what
// was being typed, like a shell does after an interruption.
func (d *Demo) message(text string) {
	if !d.atLineStart {
		d.emit("\r\n")
	}
	up := time.Since(d.start)
	d.emit(fmt.Sprintf("[%5d.%06d] %s\r\n", int(up/time.Second), int(up%time.Second/time.Microsecond), text))
	if d.state != demoBooting {
		d.prompt()
		d.emit(string(d.line))
	}
}

func (d *Demo) emit(s string) {
	if s == "" || len(d.out)+len(s) > demoMaxOut {
		return
	}
	d.out = append(d.out, s...)
	d.atLineStart = s[len(s)-1] == '\n'
}

func (d *Demo) prompt() {
	switch {
	case d.state == demoLogin:
		d.emit(d.hostname + " login: ")
	case d.user == "root":
		d.emit("root@" + d.hostname + ":~# ")
	default:
		d.emit(d.user + "@" + d.hostname + ":~$ ")
	}
}

// input handles one typed byte: line editing with echo, Enter, and a few
// control characters. Escape sequences (arrow keys) are swallowed.
func (d *Demo) input(b byte) {
	if d.escape > 0 && b >= 0x20 {
		switch {
		case d.escape == 1 && (b == '[' || b == 'O'):
			d.escape = 2
		case d.escape == 1 || (b >= 0x40 && b <= 0x7e):
			d.escape = 0 // a two-byte sequence, or the final byte of CSI
		}
		return
	}
	d.escape = 0
	afterCR := d.afterCR
	d.afterCR = false
	switch b {
	case '\r':
		d.afterCR = true
		d.enter()
	case '\n':
		if !afterCR {
			d.enter()
		}
	case 0x7f, '\b':
		if len(d.line) > 0 {
			_, size := utf8.DecodeLastRune(d.line)
			d.line = d.line[:len(d.line)-size]
			d.emit("\b \b")
		}
	case 0x15: // ^U: erase the line
		d.emit(strings.Repeat("\b \b", utf8.RuneCount(d.line)))
		d.line = d.line[:0]
	case 0x03: // ^C
		d.emit("^C\r\n")
		d.line = d.line[:0]
		d.prompt()
	case 0x04: // ^D on an empty line logs out
		if len(d.line) == 0 && d.state == demoShell {
			d.emit("logout\r\n\r\n")
			d.logout()
		}
	case 0x1b:
		d.escape = 1
	default:
		if b < 0x20 || len(d.line) >= demoMaxLine {
			return
		}
		d.line = append(d.line, b)
		d.emit(string(b))
	}
}

func (d *Demo) logout() {
	d.state = demoLogin
	d.user = ""
	d.prompt()
}

// enter answers the line typed at the login or shell prompt.
func (d *Demo) enter() {
	text := strings.TrimSpace(string(d.line))
	d.line = d.line[:0]
	d.emit("\r\n")
	if d.state == demoLogin {
		if text != "" && !strings.ContainsFunc(text, func(r rune) bool { return r < 0x20 || r == ' ' }) {
			d.state = demoShell
			d.user = text
			d.emit("\r\nThis is chartee's built-in demo device, a simulated console.\r\n" +
				"Nothing here is real and no command is executed. Try 'help'.\r\n\r\n")
		}
		d.prompt()
		return
	}
	args := strings.Fields(text)
	if len(args) == 0 {
		d.prompt()
		return
	}
	if args[0] == "exit" || args[0] == "logout" {
		d.emit("logout\r\n\r\n")
		d.logout()
		return
	}
	for _, l := range d.answer(args) {
		d.emit(l + "\r\n")
	}
	d.prompt()
}

// answer produces the output of one of the fake shell's built-in
// commands. They only format strings.
func (d *Demo) answer(args []string) []string {
	switch args[0] {
	case "help":
		return []string{
			"Commands: help, uname [-a], uptime, date, echo TEXT, whoami,",
			"hostname, stty, clear, exit. Nothing is executed: this is a simulation.",
		}
	case "uname":
		if len(args) > 1 && args[1] == "-a" {
			return []string{"Linux " + d.hostname + " 6.1.0-chartee-demo #1 SMP PREEMPT_DYNAMIC x86_64 GNU/Linux"}
		}
		return []string{"Linux"}
	case "uptime":
		up := time.Since(d.start)
		return []string{fmt.Sprintf(" %s up %d min,  1 user,  load average: 0.00, 0.01, 0.05",
			time.Now().Format("15:04:05"), int(up.Minutes()))}
	case "date":
		return []string{time.Now().Format("Mon Jan _2 15:04:05 MST 2006")}
	case "echo":
		return []string{strings.Join(args[1:], " ")}
	case "whoami":
		return []string{d.user}
	case "hostname":
		return []string{d.hostname}
	case "stty":
		l := d.settings
		return []string{fmt.Sprintf("speed %d baud; %v", l.Baud, l)}
	case "clear":
		return []string{"\x1b[H\x1b[2J"}
	}
	return []string{"-sh: " + args[0] + ": command not found"}
}
