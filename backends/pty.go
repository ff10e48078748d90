package backends

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/creack/pty"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

func init() {
	chardev.Register("pty", chardev.Factory{
		NewSpec: func() chardev.Spec { return &PtySpec{} },
		Open:    opener("pty", OpenPty),
		Inherit: ptyInherit,
		Input:   true,
	})
}

// Interface guards. A pty has no modem lines and no break, so it
// implements neither ModemController nor Breaker.
var (
	_ chardev.Chardev        = (*Pty)(nil)
	_ chardev.LineController = (*Pty)(nil)
	_ chardev.Describer      = (*Pty)(nil)
	_ chardev.Claimer        = (*PtySpec)(nil)
)

// PtySpec is the configuration of a pseudo-terminal for a terminal program
// (minicom, picocom, screen) to attach to.
type PtySpec struct {
	// Link, if set, is a symlink made to point at the pty's slave
	// (/dev/pts/N changes every time), replaced atomically if it exists and
	// removed on close.
	Link string `yaml:"link" json:"link"`
	// Mode is the slave's permission bits as an octal string ("0660");
	// empty leaves the system default (0620, group tty).
	Mode string `yaml:"mode" json:"mode"`
}

// Claims is the symlink, when one is made: a second pty would replace it.
func (s *PtySpec) Claims() []chardev.Claim {
	if s.Link == "" {
		return nil
	}
	return []chardev.Claim{chardev.Path("link", s.Link)}
}

// Validate checks the options; errors name the key.
func (s *PtySpec) Validate() error {
	if _, err := s.perm(); err != nil {
		return err
	}
	if s.Link != "" && (filepath.Base(s.Link) == "/" || filepath.Base(s.Link) == ".") {
		return fmt.Errorf("pty: link: %q: want a file path", s.Link)
	}
	return nil
}

func (s *PtySpec) perm() (fs.FileMode, error) {
	if s.Mode == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(s.Mode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("pty: mode: %q: want octal permission bits like 0660", s.Mode)
	}
	return fs.FileMode(m), nil
}

// Pty is a pseudo-terminal: chartee reads and writes the master, a terminal
// program opens the slave (or the link to it).
//
// The Pty keeps its own descriptor of the slave open for its whole life.
// Without it, the master reads EIO as soon as the last program using the
// slave exits, so a user quitting minicom to start picocom would break the
// leg; with it the pty simply waits for the next program. While nobody is
// attached, what chartee writes collects in the slave's input queue (a few
// KiB) and then Write blocks like any slow leg; the next program to attach
// reads what was queued.
//
// The slave is put into raw mode so bytes pass unchanged; a program that
// attaches sets its own mode, and LineSettings reports whatever is in
// force.
type Pty struct {
	master *os.File // pollable
	slave  *os.File // held open; also the handle for termios
	link   string

	closeOnce sync.Once
	closeErr  error

	// inherited: handed over by an upgrade not committed yet
	// (carry_pty.go); Close leaves the link alone.
	inherited atomic.Bool
}

// OpenPty creates the pseudo-terminal and, if asked, its link.
func OpenPty(ctx context.Context, spec *PtySpec) (*Pty, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pty: %w", err)
	}
	perm, _ := spec.perm()
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("pty: open: %w", err)
	}
	// creack/pty leaves the master blocking (it calls Fd()), so Close
	// would not wake a Read; use a pollable duplicate instead.
	pm, err := tty.Pollable(master)
	master.Close()
	if err != nil {
		slave.Close()
		return nil, fmt.Errorf("pty: %w", err)
	}
	p := &Pty{master: pm, slave: slave}
	if err := p.setup(spec.Link, perm); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Pty) setup(link string, perm fs.FileMode) error {
	if err := tty.Control(p.slave, tty.MakeRaw); err != nil {
		return fmt.Errorf("pty: %s: raw mode: %w", p.slave.Name(), err)
	}
	if perm != 0 {
		if err := p.slave.Chmod(perm); err != nil {
			return fmt.Errorf("pty: mode: %w", err)
		}
	}
	if link != "" {
		if err := ptyReplaceLink(p.slave.Name(), link); err != nil {
			return fmt.Errorf("pty: link: %w", err)
		}
		p.link = link
	}
	return nil
}

// ptyReplaceLink points link at target atomically: a program opening link
// sees the old target or the new one, never a missing file. The symlink is
// made under a temporary name in the same directory and renamed over link.
func ptyReplaceLink(target, link string) error {
	var suffix [6]byte
	rand.Read(suffix[:])
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp-"+hex.EncodeToString(suffix[:]))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Name is the slave's path (/dev/pts/N).
func (p *Pty) Name() string { return p.slave.Name() }

// Describe names the pty and its link.
func (p *Pty) Describe() string {
	if p.link != "" {
		return fmt.Sprintf("pty %s (link %s)", p.slave.Name(), p.link)
	}
	return "pty " + p.slave.Name()
}

// Read returns what the attached program writes.
func (p *Pty) Read(b []byte) (int, error) {
	n, err := p.master.Read(b)
	if err != nil {
		// Nothing but Freeze sets a read deadline.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = chardev.ErrFrozen
		}
		err = fmt.Errorf("pty: read %s: %w", p.slave.Name(), err)
	}
	return n, err
}

// Write sends b to the attached program (or queues it for the next one).
func (p *Pty) Write(b []byte) (int, error) {
	n, err := p.master.Write(b)
	if err != nil {
		// Nothing but FreezeWrite sets a write deadline.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = chardev.ErrFrozen
		}
		err = fmt.Errorf("pty: write %s: %w", p.slave.Name(), err)
	}
	return n, err
}

// Close destroys the pty, waking pending Reads and Writes, and removes the
// link if it still points at this pty. Safe to call more than once.
func (p *Pty) Close() error {
	p.closeOnce.Do(func() {
		errs := []error{p.master.Close()}
		if p.link != "" && !p.inherited.Load() {
			// Leave the link alone if someone else has taken it over.
			if target, err := os.Readlink(p.link); err == nil && target == p.slave.Name() {
				if err := os.Remove(p.link); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		errs = append(errs, p.slave.Close())
		if err := errors.Join(errs...); err != nil {
			p.closeErr = fmt.Errorf("pty: close %s: %w", p.slave.Name(), err)
		}
	})
	return p.closeErr
}

// SetLineSettings sets the pty's termios (a pty forces 8 data bits and no
// parity, and has no real baud rate, but records it for the program).
func (p *Pty) SetLineSettings(l chardev.LineSettings) error {
	if err := tty.Control(p.slave, func(fd int) error { return tty.SetLine(fd, l) }); err != nil {
		return fmt.Errorf("pty: %s: set line settings %v: %w", p.slave.Name(), l, err)
	}
	return nil
}

// LineSettings reads the pty's termios: what chartee or the attached
// program last set.
func (p *Pty) LineSettings() (chardev.LineSettings, error) {
	var l chardev.LineSettings
	err := tty.Control(p.slave, func(fd int) error {
		var err error
		l, err = tty.GetLine(fd)
		return err
	})
	if err != nil {
		return l, fmt.Errorf("pty: %s: line settings: %w", p.slave.Name(), err)
	}
	return l, nil
}
