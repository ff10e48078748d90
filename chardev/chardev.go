// Package chardev defines what chartee calls a character device: a byte
// stream that can be read, written and closed, plus small optional
// capability interfaces (line settings, break, modem lines) that the engine
// discovers with type assertions.
//
// The package also holds the backend registry. Concrete device types live in
// package backends and register themselves from init; the engine (package
// tee) only ever sees the interfaces defined here, so it never imports a
// concrete backend.
package chardev

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"
)

// Chardev is a byte stream device: a serial port, a socket, a pty, a file.
//
// Read must return when Close is called from another goroutine; the engine
// relies on that to stop its per-device goroutines. Write may block (flow
// control, a peer that does not read) and must likewise return once Close
// is called.
type Chardev interface {
	io.ReadWriteCloser
}

// ErrUnsupported is returned (wrapped) when a device lacks a capability: a
// pty has no modem lines, a TCP socket has no baud rate. It is not a
// failure of the device, and callers treat it as "nothing to do".
var ErrUnsupported = errors.New("unsupported by this device")

// IsUnsupported reports whether err means the device lacks the capability:
// ErrUnsupported, errors.ErrUnsupported, or ENOTTY, which a modem-line or
// termios ioctl on a pty answers (the pty exists and works, it just is not
// a UART). EINVAL does not count: it can mean a bad argument to a real
// UART, which must not be mistaken for "nothing to do".
func IsUnsupported(err error) bool {
	return errors.Is(err, ErrUnsupported) || errors.Is(err, syscall.ENOTTY) ||
		errors.Is(err, errors.ErrUnsupported)
}

// Parity is a serial line's parity mode.
type Parity uint8

// Parity modes. The zero value is ParityNone so a zero LineSettings is 8N1.
const (
	ParityNone Parity = iota
	ParityOdd
	ParityEven
	ParityMark
	ParitySpace
)

var parityNames = [...]string{"none", "odd", "even", "mark", "space"}

func (p Parity) String() string {
	if int(p) < len(parityNames) {
		return parityNames[p]
	}
	return fmt.Sprintf("parity(%d)", p)
}

// ParseParity parses the config spelling of a parity mode.
func ParseParity(s string) (Parity, error) {
	for i, n := range parityNames {
		if strings.EqualFold(s, n) {
			return Parity(i), nil
		}
	}
	return 0, fmt.Errorf("parity %q: want one of none, odd, even, mark, space", s)
}

// StopBits is a serial line's stop bit count.
type StopBits uint8

// Stop bit settings. The zero value is one stop bit.
const (
	StopBits1 StopBits = iota
	StopBits1Half
	StopBits2
)

var stopBitsNames = [...]string{"1", "1.5", "2"}

func (s StopBits) String() string {
	if int(s) < len(stopBitsNames) {
		return stopBitsNames[s]
	}
	return fmt.Sprintf("stopbits(%d)", s)
}

// ParseStopBits parses "1", "1.5" or "2".
func ParseStopBits(s string) (StopBits, error) {
	for i, n := range stopBitsNames {
		if s == n {
			return StopBits(i), nil
		}
	}
	return 0, fmt.Errorf("stop bits %q: want 1, 1.5 or 2", s)
}

// Flow is a serial line's flow control mode.
type Flow uint8

// Flow control modes.
const (
	FlowNone Flow = iota
	FlowRTSCTS
	FlowXONXOFF
)

var flowNames = [...]string{"none", "rtscts", "xonxoff"}

func (f Flow) String() string {
	if int(f) < len(flowNames) {
		return flowNames[f]
	}
	return fmt.Sprintf("flow(%d)", f)
}

// ParseFlow parses "none", "rtscts" or "xonxoff".
func ParseFlow(s string) (Flow, error) {
	for i, n := range flowNames {
		if strings.EqualFold(s, n) {
			return Flow(i), nil
		}
	}
	return 0, fmt.Errorf("flow %q: want none, rtscts or xonxoff", s)
}

// LineSettings is what a UART is configured with. A zero field means "not
// set": Baud 0 leaves the baud rate alone, DataBits 0 leaves the data size
// alone. Parity, StopBits and Flow are always meaningful (their zero values
// are none, 1 and none).
type LineSettings struct {
	Baud     int      `json:"baud,omitempty"`
	DataBits int      `json:"data_bits,omitempty"`
	Parity   Parity   `json:"parity"`
	StopBits StopBits `json:"stop_bits"`
	Flow     Flow     `json:"flow"`
}

func (l LineSettings) String() string {
	p := "N"
	switch l.Parity {
	case ParityOdd:
		p = "O"
	case ParityEven:
		p = "E"
	case ParityMark:
		p = "M"
	case ParitySpace:
		p = "S"
	}
	db := l.DataBits
	if db == 0 {
		db = 8
	}
	return fmt.Sprintf("%d %d%s%s flow=%s", l.Baud, db, p, l.StopBits, l.Flow)
}

// Short is the compact form people write: "115200 8N1", with the flow
// control when there is any ("115200 8N1 rtscts"); "" when nothing is set.
func (l LineSettings) Short() string {
	if l.Baud == 0 && l.DataBits == 0 {
		return ""
	}
	full := l.String() // "115200 8N1 flow=none"
	s, flow, _ := strings.Cut(full, " flow=")
	if l.Baud == 0 {
		s = strings.TrimPrefix(s, "0 ")
	}
	if flow != "" && flow != FlowNone.String() {
		s += " " + flow
	}
	return s
}

// Validate reports impossible settings.
func (l LineSettings) Validate() error {
	if l.Baud < 0 {
		return fmt.Errorf("baud %d: must be positive", l.Baud)
	}
	if l.DataBits != 0 && (l.DataBits < 5 || l.DataBits > 8) {
		return fmt.Errorf("data bits %d: want 5 to 8", l.DataBits)
	}
	if int(l.Parity) >= len(parityNames) {
		return fmt.Errorf("parity %d: unknown", l.Parity)
	}
	if int(l.StopBits) >= len(stopBitsNames) {
		return fmt.Errorf("stop bits %d: unknown", l.StopBits)
	}
	if int(l.Flow) >= len(flowNames) {
		return fmt.Errorf("flow %d: unknown", l.Flow)
	}
	return nil
}

// LineController is a device with UART line settings.
type LineController interface {
	// SetLineSettings applies settings; zero Baud/DataBits keep the current
	// value.
	SetLineSettings(LineSettings) error
	// LineSettings returns the settings in force.
	LineSettings() (LineSettings, error)
}

// Breaker is a device that can send a break condition.
type Breaker interface {
	Break(d time.Duration) error
}

// ModemStatus is the state of a UART's modem lines: what we drive (DTR,
// RTS) and what the far end drives (CTS, DSR, DCD, RI).
type ModemStatus struct {
	DTR bool `json:"dtr"`
	RTS bool `json:"rts"`
	CTS bool `json:"cts"`
	DSR bool `json:"dsr"`
	DCD bool `json:"dcd"`
	RI  bool `json:"ri"`
}

// ModemController is a device with modem control lines.
type ModemController interface {
	SetDTR(bool) error
	SetRTS(bool) error
	ModemStatus() (ModemStatus, error)
}

// SetLineSettings applies l to dev if it has line settings, and returns an
// error wrapping ErrUnsupported otherwise.
func SetLineSettings(dev Chardev, l LineSettings) error {
	lc, ok := dev.(LineController)
	if !ok {
		return fmt.Errorf("line settings: %w", ErrUnsupported)
	}
	return lc.SetLineSettings(l)
}

// SendBreak sends a break on dev if it can.
func SendBreak(dev Chardev, d time.Duration) error {
	b, ok := dev.(Breaker)
	if !ok {
		return fmt.Errorf("break: %w", ErrUnsupported)
	}
	return b.Break(d)
}

// SetModemLines drives DTR and RTS on dev if it has modem lines. A nil
// pointer leaves that line alone.
func SetModemLines(dev Chardev, dtr, rts *bool) error {
	mc, ok := dev.(ModemController)
	if !ok {
		return fmt.Errorf("modem lines: %w", ErrUnsupported)
	}
	if dtr != nil {
		if err := mc.SetDTR(*dtr); err != nil {
			return err
		}
	}
	if rts != nil {
		if err := mc.SetRTS(*rts); err != nil {
			return err
		}
	}
	return nil
}

// GetModemStatus reads dev's modem lines if it has them.
func GetModemStatus(dev Chardev) (ModemStatus, error) {
	mc, ok := dev.(ModemController)
	if !ok {
		return ModemStatus{}, fmt.Errorf("modem lines: %w", ErrUnsupported)
	}
	return mc.ModemStatus()
}
