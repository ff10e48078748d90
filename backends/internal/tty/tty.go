// Package tty holds the termios and file-descriptor plumbing shared by
// chartee's tty-based backends (serial, pty, exec, stdio): translating
// chardev.LineSettings to and from a Linux termios, raw mode, and turning a
// descriptor into an *os.File that Go's runtime poller serves.
//
// It is written against golang.org/x/sys/unix because no library covers
// it: golang.org/x/term only does raw mode, and go.bug.st/serial's Mode has
// no flow control, cannot be read back and only works on ports the library
// opened itself (a pty master is not one of them).
//
// Everything here is Linux-specific (TCGETS2/BOTHER for arbitrary baud
// rates), like the rest of chartee.
package tty

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"chartee/chardev"
)

// Pollable duplicates f's descriptor and returns the duplicate as a new
// *os.File in non-blocking mode, so the runtime poller (epoll) serves it:
// a pending Read or Write parks its goroutine instead of a thread, there is
// no FD_SETSIZE limit, and Close wakes it. f stays open and is the caller's
// to close.
//
// Taking the descriptor through SyscallConn rather than f.Fd() matters:
// Fd() switches the descriptor to blocking mode. Note that O_NONBLOCK
// belongs to the open file description, so f and any other duplicate of it
// become non-blocking too.
func Pollable(f *os.File) (*os.File, error) {
	fd := -1
	err := Control(f, func(orig int) error {
		var err error
		fd, err = unix.FcntlInt(uintptr(orig), unix.F_DUPFD_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	return NewPollable(fd, f.Name())
}

// NewPollable takes ownership of fd, puts it into non-blocking mode and
// wraps it in an *os.File served by the runtime poller. On error fd is
// closed.
func NewPollable(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking %s: %w", name, err)
	}
	// os.NewFile registers a descriptor that is already non-blocking with
	// the poller.
	return os.NewFile(uintptr(fd), name), nil
}

// Control runs fn with f's descriptor while f is guaranteed to stay open,
// so an ioctl can never reach a descriptor number that a concurrent Close
// released and the kernel handed to someone else. After f is closed it
// returns os.ErrClosed.
func Control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		// Control fails only on a closed file, with an internal poll
		// error; report the documented sentinel.
		return os.ErrClosed
	}
	return fnErr
}

// Get reads the termios of a tty, including the numeric speeds (TCGETS2).
func Get(fd int) (*unix.Termios, error) {
	return unix.IoctlGetTermios(fd, unix.TCGETS2)
}

// Set applies a termios read with Get (TCSETS2, immediately).
func Set(fd int, t *unix.Termios) error {
	return unix.IoctlSetTermios(fd, unix.TCSETS2, t)
}

// MakeRaw puts the tty into raw mode like cfmakeraw(3): no echo, no line
// editing, no signals, no CR/NL translation, 8-bit characters, reads
// return as soon as one byte is there.
func MakeRaw(fd int) error {
	t, err := Get(fd)
	if err != nil {
		return err
	}
	Raw(t)
	return Set(fd, t)
}

// Raw changes t the way cfmakeraw(3) does.
func Raw(t *unix.Termios) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP |
		unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
}

// GetLine reads the line settings in force on a tty.
func GetLine(fd int) (chardev.LineSettings, error) {
	t, err := Get(fd)
	if err != nil {
		return chardev.LineSettings{}, err
	}
	return DecodeLine(t), nil
}

// SetLine applies l to a tty; zero Baud and DataBits keep the current
// values.
func SetLine(fd int, l chardev.LineSettings) error {
	t, err := Get(fd)
	if err != nil {
		return err
	}
	if err := EncodeLine(t, l); err != nil {
		return err
	}
	return Set(fd, t)
}

// ErrStopBits1Half is returned for 1.5 stop bits: Linux termios has no way
// to ask for them. It wraps chardev.ErrUnsupported.
var ErrStopBits1Half = fmt.Errorf("stop bits 1.5: %w", chardev.ErrUnsupported)

// standardBauds are the rates with a Bnnn constant. They are set the
// classic way so programs that only know TCGETS (stty, minicom) read them
// back; any other rate goes through BOTHER.
var standardBauds = map[int]uint32{
	50: unix.B50, 75: unix.B75, 110: unix.B110, 134: unix.B134, 150: unix.B150,
	200: unix.B200, 300: unix.B300, 600: unix.B600, 1200: unix.B1200,
	1800: unix.B1800, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	500000: unix.B500000, 576000: unix.B576000, 921600: unix.B921600,
	1000000: unix.B1000000, 1152000: unix.B1152000, 1500000: unix.B1500000,
	2000000: unix.B2000000, 2500000: unix.B2500000, 3000000: unix.B3000000,
	3500000: unix.B3500000, 4000000: unix.B4000000,
}

var dataBitsFlags = map[int]uint32{5: unix.CS5, 6: unix.CS6, 7: unix.CS7, 8: unix.CS8}

// EncodeLine changes t to carry l. Zero Baud and DataBits leave t's values.
// It touches only the bits that make up line settings, so a termios that
// was raw stays raw.
func EncodeLine(t *unix.Termios, l chardev.LineSettings) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if l.StopBits == chardev.StopBits1Half {
		return ErrStopBits1Half
	}
	if l.Baud > 0 {
		if uint64(l.Baud) > uint64(^uint32(0)) {
			return fmt.Errorf("baud %d: too large", l.Baud)
		}
		t.Cflag &^= unix.CBAUD | unix.CIBAUD // input speed follows output
		if b, ok := standardBauds[l.Baud]; ok {
			t.Cflag |= b
		} else {
			t.Cflag |= unix.BOTHER
		}
		t.Ispeed, t.Ospeed = uint32(l.Baud), uint32(l.Baud)
	}
	if l.DataBits != 0 {
		t.Cflag = t.Cflag&^unix.CSIZE | dataBitsFlags[l.DataBits]
	}

	t.Cflag &^= unix.PARENB | unix.PARODD | unix.CMSPAR
	t.Iflag &^= unix.INPCK
	switch l.Parity {
	case chardev.ParityOdd:
		t.Cflag |= unix.PARENB | unix.PARODD
	case chardev.ParityEven:
		t.Cflag |= unix.PARENB
	case chardev.ParityMark:
		t.Cflag |= unix.PARENB | unix.PARODD | unix.CMSPAR
	case chardev.ParitySpace:
		t.Cflag |= unix.PARENB | unix.CMSPAR
	}
	if l.Parity != chardev.ParityNone {
		t.Iflag |= unix.INPCK
	}

	if l.StopBits == chardev.StopBits2 {
		t.Cflag |= unix.CSTOPB
	} else {
		t.Cflag &^= unix.CSTOPB
	}

	t.Cflag &^= unix.CRTSCTS
	t.Iflag &^= unix.IXON | unix.IXOFF | unix.IXANY
	switch l.Flow {
	case chardev.FlowRTSCTS:
		t.Cflag |= unix.CRTSCTS
	case chardev.FlowXONXOFF:
		t.Iflag |= unix.IXON | unix.IXOFF
		t.Cc[unix.VSTART], t.Cc[unix.VSTOP] = 0x11, 0x13 // ^Q, ^S
	}
	return nil
}

// DecodeLine reads the line settings out of t (filled by TCGETS2, so the
// speed fields are numeric).
func DecodeLine(t *unix.Termios) chardev.LineSettings {
	var l chardev.LineSettings
	if t.Cflag&unix.CBAUD == unix.BOTHER {
		l.Baud = int(t.Ospeed)
	} else {
		for rate, b := range standardBauds {
			if t.Cflag&unix.CBAUD == b {
				l.Baud = rate
				break
			}
		}
	}
	for bits, f := range dataBitsFlags {
		if t.Cflag&unix.CSIZE == f {
			l.DataBits = bits
		}
	}
	if t.Cflag&unix.PARENB != 0 {
		odd := t.Cflag&unix.PARODD != 0
		switch {
		case t.Cflag&unix.CMSPAR != 0 && odd:
			l.Parity = chardev.ParityMark
		case t.Cflag&unix.CMSPAR != 0:
			l.Parity = chardev.ParitySpace
		case odd:
			l.Parity = chardev.ParityOdd
		default:
			l.Parity = chardev.ParityEven
		}
	}
	if t.Cflag&unix.CSTOPB != 0 {
		l.StopBits = chardev.StopBits2
	}
	switch {
	case t.Cflag&unix.CRTSCTS != 0:
		l.Flow = chardev.FlowRTSCTS
	case t.Iflag&(unix.IXON|unix.IXOFF) != 0:
		l.Flow = chardev.FlowXONXOFF
	}
	return l
}

// IsHangup reports whether a read error means the other side of the tty is
// gone: EIO is what a pty returns once the last fd of its other side is
// closed, ENXIO and ENODEV what a removed USB serial adapter returns.
func IsHangup(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV)
}
