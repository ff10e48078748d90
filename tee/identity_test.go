package tee

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// personDev is a memdev leg with a person behind it.
type personDev struct {
	*memdev.Device
	id   *chardev.Identity
	name string
	ctl  chardev.Control
	mu   sync.Mutex
}

func (p *personDev) Identity() *chardev.Identity { return p.id }
func (p *personDev) SetLegName(n string)         { p.mu.Lock(); p.name = n; p.mu.Unlock() }
func (p *personDev) SetControl(c chardev.Control) {
	p.mu.Lock()
	p.ctl = c
	p.mu.Unlock()
}
func (p *personDev) control() chardev.Control { p.mu.Lock(); defer p.mu.Unlock(); return p.ctl }

func newPerson(user string, r chardev.Role) *personDev {
	id := chardev.NewIdentity(user, r)
	id.Service, id.Source, id.AuthMethod, id.KeyFingerprint = "ssh", "127.0.0.1:5", "publickey", "SHA256:x"
	return &personDev{Device: memdev.New(user), id: id}
}

// attributing records input chunks with their author.
type attributing struct {
	*memdev.Device
	mu   sync.Mutex
	recs []string
}

func (a *attributing) RecordInput(p []byte) error { panic("attributing recorder got RecordInput") }
func (a *attributing) RecordInputFrom(who chardev.InputAuthor, p []byte) error {
	a.mu.Lock()
	a.recs = append(a.recs, who.User()+"@"+who.Leg+":"+string(p))
	a.mu.Unlock()
	return nil
}
func (a *attributing) records() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.recs...)
}

func TestJoinNamesLegsByUserAndEnforcesRoles(t *testing.T) {
	h := newHarness(t, Options{})
	events := h.tee.Subscribe(64)
	defer events.Close()
	rec := &attributing{Device: memdev.New("cap")}
	if err := h.tee.Attach(t.Context(), "cap", LegOptions{}, memdev.Opener(nil, rec)); err != nil {
		t.Fatal(err)
	}
	var hooked []string
	var hmu sync.Mutex
	h.tee.SetInputHook(func(who chardev.InputAuthor, p []byte) {
		hmu.Lock()
		hooked = append(hooked, who.User()+":"+string(p))
		hmu.Unlock()
	})
	alice := newPerson("alice", chardev.RoleOperate)
	bob := newPerson("bob", chardev.RoleView)
	opts := LegOptions{Input: true, Replay: 1024}
	h.emit([]byte("banner\n"))
	na, err := h.tee.Join("ssh", opts, alice)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := h.tee.Join("ssh", opts, bob)
	if err != nil {
		t.Fatal(err)
	}
	if na != "ssh:alice#1" || nb != "ssh:bob#2" {
		t.Fatalf("leg names %q %q", na, nb)
	}
	eventually(t, "leg names told", func() bool {
		alice.mu.Lock()
		defer alice.mu.Unlock()
		return alice.name == na
	})
	// Replay reaches a joined leg.
	if !alice.WaitWritten(len("banner\n"), wait) || !bytes.Equal(alice.Written(), []byte("banner\n")) {
		t.Fatalf("replay: %q", alice.Written())
	}
	alice.Feed([]byte("ls\n"))
	bob.Feed([]byte("rm -rf /\n"))
	if !h.front.WaitWritten(3, wait) {
		t.Fatal("alice's input did not arrive")
	}
	eventually(t, "bob's input discarded", func() bool {
		for _, l := range h.tee.Stats().Legs {
			if l.Name == nb {
				return l.Discarded == uint64(len("rm -rf /\n"))
			}
		}
		return false
	})
	if got := string(h.front.Written()); got != "ls\n" {
		t.Fatalf("frontend got %q", got)
	}
	eventually(t, "input recorded with author", func() bool { return len(rec.records()) == 1 })
	if r := rec.records()[0]; r != "alice@ssh:alice#1:ls\n" {
		t.Fatalf("record %q", r)
	}
	// The hook runs on a goroutine of its own (see SetInputHook).
	eventually(t, "input given to the hook", func() bool {
		hmu.Lock()
		defer hmu.Unlock()
		return len(hooked) > 0
	})
	hmu.Lock()
	if len(hooked) != 1 || hooked[0] != "alice:ls\n" {
		t.Fatalf("hook %q", hooked)
	}
	hmu.Unlock()
	// Downgrade: alice stops typing at once; upgrade bob.
	alice.id.SetRole(chardev.RoleView)
	bob.id.SetRole(chardev.RoleOperate)
	alice.Feed([]byte("x"))
	bob.Feed([]byte("y"))
	if !h.front.WaitWritten(4, wait) {
		t.Fatal("bob's input did not arrive after upgrade")
	}
	eventually(t, "alice discarded", func() bool {
		for _, l := range h.tee.Stats().Legs {
			if l.Name == na {
				return l.Discarded == 1
			}
		}
		return false
	})
	if got := string(h.front.Written()); got != "ls\ny" {
		t.Fatalf("frontend got %q", got)
	}
	st := h.tee.Stats()
	var users []string
	for _, l := range st.Legs {
		if l.User != "" {
			users = append(users, l.User+"/"+l.Role)
		}
	}
	if len(users) != 2 || users[0] != "alice/view" || users[1] != "bob/operate" {
		t.Fatalf("stats users %v", users)
	}
	// Joining under a configured backend's name is refused.
	if _, err := h.tee.Join("cap", opts, newPerson("eve", chardev.RoleAdmin)); !errors.Is(err, ErrExists) {
		t.Fatalf("join over configured backend: %v", err)
	}
	// The attach event carries the person.
	for e := range events.C {
		if e.Kind == EventAttach && e.Leg == na {
			if e.User != "alice" || e.Role != "operate" || e.Auth != "publickey" || e.KeyFingerprint != "SHA256:x" || e.Source != "127.0.0.1:5" {
				t.Fatalf("attach event %+v", e)
			}
			break
		}
	}
}

func TestStealWriteLockNeedsAdminAndNamesBoth(t *testing.T) {
	h := newHarness(t, Options{Input: Exclusive})
	events := h.tee.Subscribe(64)
	defer events.Close()
	op := newPerson("olga", chardev.RoleOperate)
	adm := newPerson("root", chardev.RoleAdmin)
	opts := LegOptions{Input: true}
	if _, err := h.tee.Join("ssh", opts, op); err != nil {
		t.Fatal(err)
	}
	if _, err := h.tee.Join("ssh", opts, adm); err != nil {
		t.Fatal(err)
	}
	eventually(t, "controls", func() bool { return op.control() != nil && adm.control() != nil })
	if err := op.control().TakeWriteLock(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := op.control().(chardev.LockStealer).StealWriteLock(); !errors.Is(err, chardev.ErrNotPermitted) {
		t.Fatalf("operate stole: %v", err)
	}
	if err := adm.control().TakeWriteLock(); !errors.Is(err, chardev.ErrNotPermitted) {
		t.Fatalf("take while held: %v", err)
	}
	pl, pu, err := adm.control().(chardev.LockStealer).StealWriteLock()
	if err != nil || pl != "ssh:olga#1" || pu != "olga" {
		t.Fatalf("steal: %q %q %v", pl, pu, err)
	}
	if st := h.tee.Stats(); st.WriteLockUser != "root" || st.WriteLock != "ssh:root#2" {
		t.Fatalf("lock holder %q %q", st.WriteLock, st.WriteLockUser)
	}
	for e := range events.C {
		if e.Kind == EventWriteLock && e.FromUser != "" {
			if e.User != "root" || e.FromUser != "olga" || e.FromLeg != "ssh:olga#1" {
				t.Fatalf("steal event %+v", e)
			}
			break
		}
	}
	op.Feed([]byte("z"))
	adm.Feed([]byte("a"))
	if !h.front.WaitWritten(1, wait) {
		t.Fatal("admin input lost")
	}
	eventually(t, "olga discarded", func() bool {
		for _, l := range h.tee.Stats().Legs {
			if l.User == "olga" {
				return l.Discarded == 1
			}
		}
		return false
	})
	if got := string(h.front.Written()); got != "a" {
		t.Fatalf("frontend %q", got)
	}
}

func TestFailOverMovesToTheNextDeviceAndBack(t *testing.T) {
	front, spare := memdev.New("front"), memdev.New("spare")
	h := newHarness(t, Options{Frontend: memdev.Opener(nil, front, memdev.New("front-again")), Failover: []chardev.Opener{memdev.Opener(nil, spare)}})
	leg := h.attach("leg", LegOptions{Input: true})
	if _, err := h.tee.FailOver(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := h.tee.Stats()
	if st.Frontend.Candidate != 1 || !st.Frontend.Up {
		t.Fatalf("frontend %+v", st.Frontend)
	}
	leg.Feed([]byte("x"))
	if !spare.WaitWritten(1, wait) {
		t.Fatal("input did not reach the failover device")
	}
	// Round robin: back to the primary's opener.
	if _, err := h.tee.FailOver(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := h.tee.Stats(); st.Frontend.Candidate != 0 {
		t.Fatalf("after second failover: %+v", st.Frontend)
	}
	single := newHarness(t, Options{})
	if _, err := single.tee.FailOver(t.Context()); err == nil || !strings.Contains(err.Error(), "no failover device") {
		t.Fatalf("single device: %v", err)
	}
}
