package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"chartee/backends/escape"
	"chartee/chardev"
	"chartee/tee"
)

// Interface guards: an SSH session is an interactive leg with a person.
var (
	_ chardev.Chardev      = (*sessionDev)(nil)
	_ chardev.Identified   = (*sessionDev)(nil)
	_ chardev.LegNamer     = (*sessionDev)(nil)
	_ chardev.ControlAware = (*sessionDev)(nil)
	_ chardev.Noticer      = (*sessionDev)(nil)
	_ chardev.Escaper      = (*sessionDev)(nil)
	_ chardev.Peer         = (*sessionDev)(nil)
	_ chardev.Describer    = (*sessionDev)(nil)
)

// sessionDev is an SSH session channel as a leg device. Read returns what
// the person types, less escape commands, which it carries out; Write
// sends console output. Messages to the person go through the same write
// lock as output, so they never land inside a write.
type sessionDev struct {
	s   *Server
	ch  ssh.Channel
	id  *chardev.Identity
	t   *tee.Tee
	key byte

	writeMu sync.Mutex

	mu      sync.Mutex
	ctl     chardev.Control
	leg     string
	revoked string

	// Read side, used only by the leg's reader.
	m       escape.Machine
	pending []byte // typed ahead of the menu's Enter
	rbuf    []byte
	rest    []byte
	dbuf    []byte
	data    []byte
	held    escape.Command
	detach  bool

	// gone is closed when the client closed the channel. An EOF on the
	// channel before that is only the end of the client's input (ssh
	// -T < /dev/null watching a console): the session keeps its output.
	gone <-chan struct{}

	viewNoticed atomic.Bool
	closeOnce   sync.Once
	closed      chan struct{}
}

func newSessionDev(s *Server, ch ssh.Channel, id *chardev.Identity, t *tee.Tee, key byte) *sessionDev {
	return &sessionDev{s: s, ch: ch, id: id, t: t, key: key, m: escape.Machine{Key: key},
		rbuf: make([]byte, 4096), closed: make(chan struct{})}
}

func (d *sessionDev) Identity() *chardev.Identity { return d.id }
func (d *sessionDev) Peer() string                { return d.id.Source }
func (d *sessionDev) EscapeKey() string           { return escape.KeyName(d.key) }
func (d *sessionDev) Describe() string {
	return fmt.Sprintf("ssh session of %s from %s", d.id.User, d.id.Source)
}

func (d *sessionDev) SetLegName(n string) {
	d.mu.Lock()
	d.leg = n
	d.mu.Unlock()
}

func (d *sessionDev) legName() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.leg
}

func (d *sessionDev) SetControl(c chardev.Control) {
	d.mu.Lock()
	d.ctl = c
	d.mu.Unlock()
}

func (d *sessionDev) control() chardev.Control {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ctl
}

// Read returns the person's typing without escape sequences.
func (d *sessionDev) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(d.data) > 0 {
			n := copy(p, d.data)
			d.data = d.data[n:]
			d.noticeViewOnly()
			return n, nil
		}
		if d.held.Op != escape.OpNone {
			cmd := d.held
			d.held = escape.Command{}
			d.run(cmd)
		}
		if d.detach {
			return 0, io.EOF
		}
		if len(d.rest) == 0 {
			if len(d.pending) > 0 {
				d.rest, d.pending = d.pending, nil
			} else {
				n, err := d.ch.Read(d.rbuf)
				if n == 0 {
					if err == nil {
						continue
					}
					if errors.Is(err, io.EOF) && d.gone != nil {
						select {
						case <-d.gone:
						case <-d.closed:
						}
					}
					return 0, err
				}
				d.rest = d.rbuf[:n]
			}
		}
		var cmd escape.Command
		d.dbuf, d.rest, cmd = d.m.Step(d.dbuf[:0], d.rest)
		d.data = d.dbuf
		if cmd.Op == escape.OpNone {
			continue
		}
		if len(d.data) > 0 {
			d.held = cmd
			continue
		}
		d.run(cmd)
	}
}

// noticeViewOnly tells a view-only person, once per role, that typing is
// not sent.
func (d *sessionDev) noticeViewOnly() {
	if d.id.Role() >= chardev.RoleOperate {
		d.viewNoticed.Store(false)
		return
	}
	if !d.viewNoticed.Swap(true) {
		d.Notice(fmt.Sprintf("view only: what you type on %s is not sent (%s . detaches)", d.t.Name(), escape.KeyName(d.key)))
	}
}

// Write sends console output to the person.
func (d *sessionDev) Write(p []byte) (int, error) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	return d.ch.Write(p)
}

// Close ends the session: the channel gets an exit status and closes.
func (d *sessionDev) Close() error {
	d.closeOnce.Do(func() {
		code := uint32(0)
		if d.revokedReason() != "" {
			code = 1
		}
		d.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ C uint32 }{code}))
		d.ch.Close()
		close(d.closed)
	})
	return nil
}

// Notice shows a one-line message on a line of its own.
func (d *sessionDev) Notice(text string) { d.say(text) }

func (d *sessionDev) say(msg string) {
	msg = strings.ReplaceAll(strings.TrimRight(msg, "\r\n"), "\r\n", "\n")
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.ch.Write([]byte("\r\n[chartee] " + msg + "\r\n"))
}

// Revoke closes the session: its access was withdrawn by a reload.
func (d *sessionDev) Revoke(reason string) {
	d.mu.Lock()
	d.revoked = reason
	d.mu.Unlock()
	d.say(reason + "; closing the session")
	d.Close()
}

// RoleChanged tells the person their new role; a downgraded session keeps
// viewing.
func (d *sessionDev) RoleChanged(old, now chardev.Role) {
	d.say(fmt.Sprintf("your role on %s changed from %s to %s", d.t.Name(), old, now))
	if old >= chardev.RoleOperate && now < chardev.RoleOperate {
		if c := d.control(); c != nil {
			c.ReleaseWriteLock()
		}
	}
}

func (d *sessionDev) revokedReason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked
}

// Escape commands beyond the shared ones (b, l, u, s, ?).
const (
	keyDetach = '.'
	keyWho    = 'w'
	keySteal  = '!'
	keyFail   = 'f'
)

// run carries out an escape command.
func (d *sessionDev) run(cmd escape.Command) {
	ctl := d.control()
	switch {
	case cmd.Op == escape.OpHelp:
		d.say(d.help())
		return
	case cmd.Op == escape.OpUnknown && cmd.Key == keyDetach:
		d.say("detached")
		d.detach = true
		return
	case cmd.Op == escape.OpUnknown && cmd.Key == keyWho:
		d.say(who(d.t.Stats()))
		return
	case ctl == nil:
		d.say("not attached yet")
		return
	}
	switch {
	case cmd.Op == escape.OpBreak:
		if err := ctl.Break(escape.BreakDuration); err != nil {
			d.say("break: " + d.explain(err))
			return
		}
		d.admin("break")
		d.say("break sent")
	case cmd.Op == escape.OpLock:
		if err := ctl.TakeWriteLock(); err != nil {
			d.say("write lock: " + d.explain(err))
			return
		}
		d.say("write lock taken")
	case cmd.Op == escape.OpUnlock:
		ctl.ReleaseWriteLock()
		d.say("write lock released")
	case cmd.Op == escape.OpStatus:
		d.say(ctl.Status())
	case cmd.Op == escape.OpUnknown && cmd.Key == keySteal:
		ls, ok := ctl.(chardev.LockStealer)
		if !ok {
			d.say("this tee cannot steal the write lock")
			return
		}
		prevLeg, prevUser, err := ls.StealWriteLock()
		if err != nil {
			d.say("steal: " + d.explain(err))
			return
		}
		d.steal(prevLeg, prevUser)
	case cmd.Op == escape.OpUnknown && cmd.Key == keyFail:
		d.failOver()
	default:
		d.say(fmt.Sprintf("unknown escape command %q; %s ? lists them", cmd.Key, escape.KeyName(d.key)))
	}
}

// failOver moves the tee's frontend to its next device (admin).
func (d *sessionDev) failOver() {
	if d.id.Role() < chardev.RoleAdmin {
		d.say(fmt.Sprintf("fail over: not permitted for %s as %s (admin only)", d.id.User, d.id.Role()))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rep, err := d.t.FailOver(ctx)
	if err != nil {
		d.say("fail over: " + err.Error())
		return
	}
	d.admin(fmt.Sprintf("frontend swapped from %s to %s", rep.From, rep.To))
	d.say(fmt.Sprintf("frontend swapped from %s to %s", rep.From, rep.To))
}

// steal reports a stolen write lock to the person and the one it was
// taken from.
func (d *sessionDev) steal(prevLeg, prevUser string) {
	if prevLeg == "" {
		d.say("write lock taken (it was free)")
		return
	}
	from := prevLeg
	if prevUser != "" {
		from = prevUser + " (" + prevLeg + ")"
	}
	d.admin("write lock stolen from " + from)
	d.say("write lock taken from " + from)
}

// admin records an admin operation on the tee's event stream (and so in
// the audit log).
func (d *sessionDev) admin(what string) {
	d.t.Emit(tee.Event{Kind: tee.EventAdmin, Backend: Backend, Leg: d.legName(), User: d.id.User,
		Role: d.id.Role().String(), Source: d.id.Source, Reason: what})
}

// explain turns a permission error into words for the person.
func (d *sessionDev) explain(err error) string {
	if errors.Is(err, chardev.ErrNotPermitted) {
		return fmt.Sprintf("not permitted for %s as %s (%v)", d.id.User, d.id.Role(), err)
	}
	return err.Error()
}

func (d *sessionDev) help() string {
	k := escape.KeyName(d.key)
	return fmt.Sprintf("escape commands (%[1]s then):\n"+
		"  b  send a break to the device (operate)\n"+
		"  l  take the write lock (operate)\n"+
		"  u  release the write lock\n"+
		"  !  steal the write lock from whoever holds it (admin)\n"+
		"  f  swap the frontend to the next configured device (admin)\n"+
		"  s  show status\n"+
		"  w  who is attached\n"+
		"  .  detach\n"+
		"  ?  this help\n"+
		"  %[1]s  send %[1]s itself\n"+
		"you are %[2]s, %[3]s on %[4]s", k, d.id.User, d.id.Role(), d.t.Name())
}

// who lists the people and legs on a tee, and the write lock holder.
func who(st tee.Stats) string {
	var lines []string
	for _, l := range st.Legs {
		s := l.Name
		if l.User != "" {
			s = fmt.Sprintf("%-20s %-8s %-8s from %s", l.Name, l.User, l.Role, l.Peer)
		} else if l.Peer != "" {
			s = fmt.Sprintf("%-20s from %s", l.Name, l.Peer)
		}
		lines = append(lines, s)
	}
	sort.Strings(lines)
	lock := "free"
	if st.WriteLock != "" {
		lock = st.WriteLock
		if st.WriteLockUser != "" {
			lock = st.WriteLockUser + " (" + st.WriteLock + ")"
		}
	}
	return fmt.Sprintf("%s: %d legs, write lock %s\n  %s", st.Name, len(lines), lock, strings.Join(lines, "\n  "))
}
