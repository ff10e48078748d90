package backends

// A pty across a process upgrade: the master and chartee's own slave
// descriptor are handed over, and the link is left where it is, so a
// program on the slave (picocom, a cat) sees neither a hangup nor a new
// device: the master is never closed (the old process's copy stays open
// until it exits, the new one's is open by then), and what either side
// sends during the pause waits in the pty's queues.
//
// The master is pollable (tty.Pollable: creack/pty leaves it blocking), so
// a read deadline in the past stops a Read without consuming a byte, the
// way the network types freeze.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"chartee/backends/internal/tty"
	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Freezer   = (*Pty)(nil)
	_ chardev.Carrier   = (*Pty)(nil)
	_ chardev.Discarder = (*Pty)(nil)

	_ chardev.WriteFreezer = (*Pty)(nil)
)

// ptyState is a carried pty's state document: the master and slave are
// its files, in that order.
type ptyState struct {
	// Slave is the slave's path, which the master's pty number must
	// confirm.
	Slave string `json:"slave"`
	// Link is the symlink to the slave, left in place.
	Link string `json:"link,omitempty"`
}

// decodePtyState decodes and checks a carried pty's state.
func decodePtyState(data []byte) (ptyState, error) {
	var st ptyState
	if err := decodeState("pty", data, &st); err != nil {
		return st, err
	}
	if st.Slave == "" {
		return st, errors.New("pty: carried state: no slave path")
	}
	return st, nil
}

// Freeze makes Read return chardev.ErrFrozen until Thaw.
func (p *Pty) Freeze() error {
	if err := p.master.SetReadDeadline(netPast); err != nil {
		return fmt.Errorf("pty: freeze %s: %w", p.slave.Name(), err)
	}
	return nil
}

// Thaw undoes Freeze. An inherited pty's first Thaw is the commit of the
// upgrade: from then on closing it removes its link.
func (p *Pty) Thaw() error {
	p.inherited.Store(false)
	return p.master.SetReadDeadline(time.Time{})
}

// FreezeWrite cuts a Write in progress short (nobody reads the slave and
// its queue is full): it returns what it wrote, and the tee carries the
// rest to the new process.
func (p *Pty) FreezeWrite() error {
	if err := p.master.SetWriteDeadline(netPast); err != nil {
		return fmt.Errorf("pty: freeze %s: %w", p.slave.Name(), err)
	}
	return nil
}

// ThawWrite undoes FreezeWrite.
func (p *Pty) ThawWrite() error { return p.master.SetWriteDeadline(time.Time{}) }

// Carry hands over the master and the slave.
func (p *Pty) Carry() (chardev.Carried, error) {
	doc, err := json.Marshal(ptyState{Slave: p.slave.Name(), Link: p.link})
	if err != nil {
		return chardev.Carried{}, err
	}
	m, err := dupFile(p.master)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("pty: carry %s: %w", p.slave.Name(), err)
	}
	s, err := dupFile(p.slave)
	if err != nil {
		m.Close()
		return chardev.Carried{}, fmt.Errorf("pty: carry %s: %w", p.slave.Name(), err)
	}
	return chardev.Carried{Files: []*os.File{m, s}, State: doc}, nil
}

// ptyInherit rebuilds a pty a chartee upgrade carried. It takes the
// carried files, whatever happens.
func ptyInherit(s chardev.Spec, c chardev.Carried) (chardev.Chardev, error) {
	defer closeFiles(c.Files)
	spec, ok := s.(*PtySpec)
	if !ok {
		return nil, fmt.Errorf("pty: spec is %T, want *PtySpec", s)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := carriedFiles("pty", c.Files, 2); err != nil {
		return nil, err
	}
	st, err := decodePtyState(c.State)
	if err != nil {
		return nil, err
	}
	if st.Link != spec.Link {
		return nil, fmt.Errorf("pty: inherit: the running pty %s has link %q, the new config wants %q: upgrade with the old config, then reload", st.Slave, st.Link, spec.Link)
	}
	if err := ptyCheckPair(c.Files[0], st.Slave); err != nil {
		return nil, err
	}
	master, err := tty.Pollable(c.Files[0])
	if err != nil {
		return nil, fmt.Errorf("pty: inherit: %w", err)
	}
	// The pty goes by its slave's path, not the inherited file's name.
	slave, err := dupNamed(c.Files[1], st.Slave)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("pty: inherit: %w", err)
	}
	p := &Pty{master: master, slave: slave, link: st.Link}
	// Until the tee thaws it (the old process committed), the pty is
	// still the old process's: Close leaves the link alone.
	p.inherited.Store(true)
	return p, nil
}

// Discard closes a pty nobody used: like Close, except that an inherited
// pty (a failed upgrade) leaves the link to the old process.
func (p *Pty) Discard() error { return p.Close() }

// ptyCheckPair checks that master is the master of the pty whose slave
// is slave (TIOCGPTN gives its number).
func ptyCheckPair(master *os.File, slave string) error {
	var n int
	err := tty.Control(master, func(fd int) error {
		var err error
		u, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		n = int(u)
		return err
	})
	if err != nil {
		return fmt.Errorf("pty: inherit: the carried master: %w", err)
	}
	if want := "/dev/pts/" + strconv.Itoa(n); want != slave {
		return fmt.Errorf("pty: inherit: the carried master is %s's, not %s's", want, slave)
	}
	return nil
}
