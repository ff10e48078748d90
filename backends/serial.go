package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"

	"chartee/backends/internal/rawio"
	"chartee/backends/internal/tty"
	"chartee/chardev"
)

func init() {
	chardev.Register("serial", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewSerialSpec() },
		Open:    opener("serial", OpenSerial),
		Inherit: serialInherit,
		Input:   true,
	})
}

// Interface guards.
var (
	_ chardev.Chardev         = (*Serial)(nil)
	_ chardev.LineController  = (*Serial)(nil)
	_ chardev.Breaker         = (*Serial)(nil)
	_ chardev.ModemController = (*Serial)(nil)
	_ chardev.Describer       = (*Serial)(nil)
	_ chardev.Claimer         = (*SerialSpec)(nil)
)

// SerialSpec is the configuration of a serial port.
type SerialSpec struct {
	// Path is the device, e.g. /dev/ttyUSB0 or a stable
	// /dev/serial/by-id/... symlink.
	Path string `yaml:"path" json:"path"`
	// Baud is the bit rate; any rate the driver accepts, not only the
	// classic ones.
	Baud     int `yaml:"baud" json:"baud"`
	DataBits int `yaml:"data_bits" json:"data_bits"`
	// Parity is none, odd, even, mark or space.
	Parity string `yaml:"parity" json:"parity"`
	// StopBits is "1" or "2". "1.5" is refused: Linux termios cannot ask
	// for it.
	StopBits string `yaml:"stop_bits" json:"stop_bits"`
	// Flow is none, rtscts or xonxoff.
	Flow string `yaml:"flow" json:"flow"`
	// DTR and RTS, when set, are driven to that level right after opening.
	// Unset leaves what opening the port does (the kernel raises both).
	DTR *bool `yaml:"dtr,omitempty" json:"dtr,omitempty"`
	RTS *bool `yaml:"rts,omitempty" json:"rts,omitempty"`
	// Exclusive makes other opens of the port fail with EBUSY (TIOCEXCL)
	// while chartee holds it. Root can still open it.
	Exclusive bool `yaml:"exclusive" json:"exclusive"`
}

// Claims is the device: two readers of one port would each get part of
// what it says.
func (s *SerialSpec) Claims() []chardev.Claim {
	return []chardev.Claim{chardev.Path("path", s.Path)}
}

// NewSerialSpec returns the defaults: 115200 8N1, no flow control,
// exclusive.
func NewSerialSpec() *SerialSpec {
	return &SerialSpec{
		Baud:      115200,
		DataBits:  8,
		Parity:    "none",
		StopBits:  "1",
		Flow:      "none",
		Exclusive: true,
	}
}

// Validate checks the options; errors name the key.
func (s *SerialSpec) Validate() error {
	if s.Path == "" {
		return errors.New("serial: path: required")
	}
	if s.Baud <= 0 {
		return fmt.Errorf("serial: baud: %d: must be positive", s.Baud)
	}
	_, err := s.LineSettings()
	return err
}

// Describe is the compact form of the spec: "serial /dev/ttyUSB0 115200
// 8N1".
func (s *SerialSpec) Describe() string {
	d := "serial " + s.Path
	if l, err := s.LineSettings(); err == nil && l.Short() != "" {
		d += " " + l.Short()
	}
	return d
}

// LineSettings returns the line settings the spec asks for.
func (s *SerialSpec) LineSettings() (chardev.LineSettings, error) {
	l := chardev.LineSettings{Baud: s.Baud, DataBits: s.DataBits}
	if s.DataBits < 5 || s.DataBits > 8 {
		return l, fmt.Errorf("serial: data_bits: %d: want 5 to 8", s.DataBits)
	}
	var err error
	if l.Parity, err = chardev.ParseParity(s.Parity); err != nil {
		return l, fmt.Errorf("serial: parity: %w", err)
	}
	if l.StopBits, err = chardev.ParseStopBits(s.StopBits); err != nil {
		return l, fmt.Errorf("serial: stop_bits: %w", err)
	}
	if l.StopBits == chardev.StopBits1Half {
		return l, fmt.Errorf("serial: stop_bits: 1.5: Linux cannot set 1.5 stop bits; want 1 or 2")
	}
	if l.Flow, err = chardev.ParseFlow(s.Flow); err != nil {
		return l, fmt.Errorf("serial: flow: %w", err)
	}
	return l, nil
}

// Serial is an open serial port.
//
// go.bug.st/serial opens and configures the port: it maps open errors to
// clear ones (busy, permission denied), puts the line into raw mode, sets
// the initial mode and takes TIOCEXCL. After that, every operation goes
// through chartee's own duplicate of the port's descriptor, held in an
// *os.File in non-blocking mode, and the library's port is only closed.
//
// The reason is the library's Read: it waits with select(2), whose fd_set
// holds descriptors below 1024 only, and panics for a larger one. A daemon
// serving a thousand clients gets such descriptors, so it would crash the
// moment a port is reopened late in its life. The *os.File is served by the
// runtime poller (epoll, no descriptor limit), and Close wakes a blocked
// Read or Write, which the contract of chardev.Chardev needs anyway. The
// ioctls (modem lines, break, termios) also go through the *os.File, whose
// reference counting makes sure none of them reaches a descriptor number
// that Close released and the kernel reused; the library's methods act on
// a bare int with no such guard.
//
// The library does not export its descriptor, so serialPortFD reads the
// unexported field with reflection. That was chosen over opening the device
// a second time ourselves (a second open of the same path can race with
// the path being replaced, and TIOCEXCL must then be ordered by hand) and
// over dropping the library (losing its open-time handling). The field
// name is pinned by the go.mod version; if an upgrade renames it, OpenSerial
// fails with an explicit error and the package's tests fail, it never
// misbehaves silently.
type Serial struct {
	path     string
	resolved string        // path with symlinks resolved, for status
	port     serial.Port   // nil for a port inherited by an upgrade
	f        *os.File      // pollable duplicate of the port's descriptor
	done     chan struct{} // closed by Close; cuts a Break short

	lineMu sync.Mutex
	line   chardev.LineSettings // the mode in force
	// opened is the mode the config asked for when the port was opened
	// (an upgrade only continues a port whose config has not changed).
	opened chardev.LineSettings

	// raw reads the port and tries writes with raw system calls (see
	// package rawio); made once, by the first Read or TryWrite.
	raw     *rawio.FD
	rawOnce sync.Once
	rawErr  error

	closeOnce sync.Once
	closeErr  error
}

var _ chardev.NonBlockingWriter = (*Serial)(nil)

// TryWrite writes what the port takes at once, without waiting
// (chardev.NonBlockingWriter): the engine writes a typed key with it from
// the leg that read it, without waking its input writer.
func (s *Serial) TryWrite(p []byte) (int, error) {
	raw, err := s.rawFD()
	if err == nil {
		var n int
		n, err = raw.TryWrite(p)
		if err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("serial: write %s: %w", s.path, s.closedErr(err))
}

func (s *Serial) rawFD() (*rawio.FD, error) {
	s.rawOnce.Do(func() {
		rc, err := s.f.SyscallConn()
		if err != nil {
			s.rawErr = err
			return
		}
		s.raw = rawio.New(rc)
	})
	return s.raw, s.rawErr
}

// closedErr is err, or os.ErrClosed once the port is closed (the poller
// reports a closed descriptor with an error of its own).
func (s *Serial) closedErr(err error) error {
	select {
	case <-s.done:
		return os.ErrClosed
	default:
		return err
	}
}

// OpenSerial opens and configures the port spec describes.
func OpenSerial(ctx context.Context, spec *SerialSpec) (*Serial, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("serial: open %s: %w", spec.Path, err)
	}
	line, _ := spec.LineSettings()
	port, err := serial.Open(spec.Path, &serial.Mode{
		BaudRate: line.Baud,
		DataBits: line.DataBits,
		Parity:   serial.Parity(line.Parity), // same order: none, odd, even, mark, space
		StopBits: serialStopBits(line.StopBits),
	})
	if err != nil {
		return nil, fmt.Errorf("serial: open %s: %w", spec.Path, err)
	}
	s := &Serial{path: spec.Path, resolved: spec.Path, port: port, done: make(chan struct{}), opened: line}
	if r, err := filepath.EvalSymlinks(spec.Path); err == nil {
		s.resolved = r
	}
	if err := s.setup(spec, line); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Serial) setup(spec *SerialSpec, line chardev.LineSettings) error {
	h, err := serialPortFD(s.port)
	if err != nil {
		return fmt.Errorf("serial: open %s: %w", s.path, err)
	}
	dup, err := unix.FcntlInt(uintptr(h), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("serial: open %s: dup: %w", s.path, err)
	}
	f, err := tty.NewPollable(dup, s.path)
	if err != nil {
		return fmt.Errorf("serial: open %s: %w", s.path, err)
	}
	s.f = f
	if !spec.Exclusive {
		if err := tty.Control(s.f, func(fd int) error { return unix.IoctlSetInt(fd, unix.TIOCNXCL, 0) }); err != nil {
			return fmt.Errorf("serial: open %s: release exclusive access: %w", s.path, err)
		}
	}
	// The library set everything but flow control; set it all through the
	// same code SetLineSettings uses so the two cannot disagree.
	if err := s.SetLineSettings(line); err != nil {
		return err
	}
	// Initial modem lines: a device without them (a pty) is fine.
	if spec.DTR != nil {
		if err := s.SetDTR(*spec.DTR); err != nil && !chardev.IsUnsupported(err) {
			return err
		}
	}
	if spec.RTS != nil {
		if err := s.SetRTS(*spec.RTS); err != nil && !chardev.IsUnsupported(err) {
			return err
		}
	}
	return nil
}

// serialPortFD returns the descriptor go.bug.st/serial opened; see the
// Serial doc comment for why reflection.
func serialPortFD(p serial.Port) (int, error) {
	v := reflect.ValueOf(p)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if h := v.FieldByName("handle"); h.IsValid() && h.CanInt() {
			return int(h.Int()), nil
		}
	}
	return -1, fmt.Errorf("go.bug.st/serial port %T has no integer handle field: unsupported library version", p)
}

// serialStopBits maps chardev stop bits to the library's. 1.5 cannot
// reach here (refused by Validate and tty.EncodeLine).
func serialStopBits(s chardev.StopBits) serial.StopBits {
	if s == chardev.StopBits2 {
		return serial.TwoStopBits
	}
	return serial.OneStopBit
}

// Describe names the port, with the device a by-id symlink points to.
func (s *Serial) Describe() string {
	if s.resolved != s.path {
		return fmt.Sprintf("serial %s (%s)", s.path, s.resolved)
	}
	return "serial " + s.path
}

// Read reads from the port. When the device goes away (a USB adapter
// unplugged, the far side of a pty closed) it returns an error, never a
// plain io.EOF: a serial port has no end of stream, so the engine should
// treat it as a failure and reopen the path when it comes back.
func (s *Serial) Read(p []byte) (int, error) {
	raw, err := s.rawFD()
	n := 0
	if err == nil {
		n, err = raw.Read(p)
	}
	if err != nil {
		err = s.closedErr(err)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Nothing but Freeze sets a read deadline.
			err = fmt.Errorf("serial: read %s: %w", s.path, chardev.ErrFrozen)
		case err == io.EOF:
			err = fmt.Errorf("serial: read %s: device disconnected (hangup)", s.path)
		case tty.IsHangup(err):
			err = fmt.Errorf("serial: read %s: device disconnected: %w", s.path, err)
		default:
			err = fmt.Errorf("serial: read %s: %w", s.path, err)
		}
	}
	return n, err
}

// Write writes all of p, waiting while flow control holds the line; Close
// unblocks it.
func (s *Serial) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if err != nil {
		// Nothing but FreezeWrite sets a write deadline.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = chardev.ErrFrozen
		}
		err = fmt.Errorf("serial: write %s: %w", s.path, err)
	}
	return n, err
}

// Close closes the port, waking pending Reads and Writes. It is safe to
// call more than once.
func (s *Serial) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		var errs []error
		if s.f != nil {
			errs = append(errs, s.f.Close())
		}
		// Closing the library's port releases TIOCEXCL and its
		// descriptor; an inherited port has none (carry_serial.go).
		if s.port != nil {
			errs = append(errs, s.port.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("serial: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// SetLineSettings changes the line settings; zero Baud and DataBits keep
// the current values.
func (s *Serial) SetLineSettings(l chardev.LineSettings) error {
	s.lineMu.Lock()
	defer s.lineMu.Unlock()
	err := tty.Control(s.f, func(fd int) error { return tty.SetLine(fd, l) })
	if err != nil {
		return fmt.Errorf("serial: %s: set line settings %v: %w", s.path, l, err)
	}
	if l.Baud == 0 {
		l.Baud = s.line.Baud
	}
	if l.DataBits == 0 {
		l.DataBits = s.line.DataBits
	}
	s.line = l
	return nil
}

// LineSettings returns the mode in force: the last one set successfully.
// It is kept rather than read back because some ttys do not keep all of
// it (a Linux pty forces 8 data bits and no parity), and what the port was
// asked for is what the tee replays after a reconnect.
func (s *Serial) LineSettings() (chardev.LineSettings, error) {
	s.lineMu.Lock()
	defer s.lineMu.Unlock()
	return s.line, nil
}

// Break holds the line in the break condition for d (250ms if d <= 0).
// Close cuts it short.
func (s *Serial) Break(d time.Duration) error {
	if d <= 0 {
		d = 250 * time.Millisecond
	}
	err := tty.Control(s.f, func(fd int) error { return unix.IoctlSetInt(fd, unix.TIOCSBRK, 0) })
	if err != nil {
		return s.modemError("break", err)
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-s.done:
		t.Stop()
	}
	err = tty.Control(s.f, func(fd int) error { return unix.IoctlSetInt(fd, unix.TIOCCBRK, 0) })
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return s.modemError("break", err)
	}
	return nil
}

// SetDTR drives DTR.
func (s *Serial) SetDTR(on bool) error { return s.setModemBit("DTR", unix.TIOCM_DTR, on) }

// SetRTS drives RTS.
func (s *Serial) SetRTS(on bool) error { return s.setModemBit("RTS", unix.TIOCM_RTS, on) }

// setModemBit uses TIOCMBIS/TIOCMBIC, which change one line atomically,
// rather than a read-modify-write of all of them.
func (s *Serial) setModemBit(name string, bit int, on bool) error {
	req := uint(unix.TIOCMBIC)
	if on {
		req = unix.TIOCMBIS
	}
	err := tty.Control(s.f, func(fd int) error { return unix.IoctlSetPointerInt(fd, req, bit) })
	if err != nil {
		return s.modemError("set "+name, err)
	}
	return nil
}

// ModemStatus reads all modem lines with one TIOCMGET.
func (s *Serial) ModemStatus() (chardev.ModemStatus, error) {
	var bits int
	err := tty.Control(s.f, func(fd int) error {
		var err error
		bits, err = unix.IoctlGetInt(fd, unix.TIOCMGET)
		return err
	})
	if err != nil {
		return chardev.ModemStatus{}, s.modemError("modem status", err)
	}
	return chardev.ModemStatus{
		DTR: bits&unix.TIOCM_DTR != 0,
		RTS: bits&unix.TIOCM_RTS != 0,
		CTS: bits&unix.TIOCM_CTS != 0,
		DSR: bits&unix.TIOCM_DSR != 0,
		DCD: bits&unix.TIOCM_CD != 0,
		RI:  bits&unix.TIOCM_RI != 0,
	}, nil
}

// modemError reports ENOTTY and EINVAL (a pty has no modem lines) as
// unsupported, not as a failure of the port.
func (s *Serial) modemError(op string, err error) error {
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("serial: %s: %s: %w (%w)", s.path, op, chardev.ErrUnsupported, err)
	}
	return fmt.Errorf("serial: %s: %s: %w", s.path, op, err)
}
