package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ptyDevice is the "serial port" of a run: the bench owns the master and
// the server under test opens the slave by path, exactly as it would open
// /dev/ttyUSB0. The bench keeps one descriptor of the slave open (never
// read) so the master does not see EIO while a server closes and reopens
// it, and so the line is already raw before any server touches it.
type ptyDevice struct {
	master    *os.File // non-blocking: served by the runtime poller, deadlines work
	slavePath string
	holder    *os.File
}

func openPTY() (*ptyDevice, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bench: pty: open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: pty: unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: pty: ptsname: %w", err)
	}
	d := &ptyDevice{master: os.NewFile(uintptr(fd), "ptmx"), slavePath: fmt.Sprintf("/dev/pts/%d", n)}
	h, err := openRawTTY(d.slavePath)
	if err != nil {
		d.master.Close()
		return nil, err
	}
	d.holder = h
	return d, nil
}

// openRawTTY opens a tty non-blocking (so the poller serves it) and puts it
// in raw mode: no echo, no CR/NL translation, no signals, 8 bits, reads
// return as soon as one byte is there.
func openRawTTY(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bench: open %s: %w", path, err)
	}
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: %s: tcgetattr: %w", path, err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: %s: tcsetattr: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

func (d *ptyDevice) Close() {
	d.holder.Close()
	d.master.Close()
}
