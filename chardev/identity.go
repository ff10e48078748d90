package chardev

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Role is what a person may do on one tee. Roles are ordered: each one
// includes the rights of those below it.
type Role uint8

// Roles. The zero value is RoleNone: no access.
const (
	RoleNone    Role = iota // may not attach
	RoleView                // sees output, never types
	RoleOperate             // may type (subject to the tee's exclusive write lock) and send a break
	RoleAdmin               // also steals the write lock and runs ctl-level operations
)

var roleNames = [...]string{"none", "view", "operate", "admin"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", r)
}

// ParseRole parses "none", "view", "operate" or "admin".
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if strings.EqualFold(s, n) {
			return Role(i), nil
		}
	}
	return 0, fmt.Errorf("role %q: want one of none, view, operate, admin", s)
}

// MarshalText spells the role for JSON and YAML.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses the role.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Identity is the person behind an interactive leg (an SSH or browser
// session): who they are, how they proved it, and the role they hold on
// the leg's tee. The engine reads it when the leg attaches (leg name,
// events, stats) and on every input chunk (the role decides whether the
// chunk reaches the frontend, the user is written next to it in input
// captures and the audit log).
//
// Everything but the role is fixed once the leg is attached. The role is
// atomic because a configuration reload may change it while the session
// runs: a downgrade to view stops typing at once, and a service closes a
// session whose role became none.
type Identity struct {
	User           string // user name from the access configuration
	Service        string // "ssh", "web": the service that authenticated it
	Source         string // remote address
	AuthMethod     string // "publickey", "password", ...
	KeyFingerprint string // SHA256:... of the key used, if any

	role atomic.Uint32
}

// NewIdentity returns an identity holding role r.
func NewIdentity(user string, r Role) *Identity {
	id := &Identity{User: user}
	id.SetRole(r)
	return id
}

// Role is the role in force now. A nil identity (a raw leg) has none.
func (i *Identity) Role() Role {
	if i == nil {
		return RoleNone
	}
	return Role(i.role.Load())
}

// SetRole changes the role in force.
func (i *Identity) SetRole(r Role) { i.role.Store(uint32(r)) }

// Name is the user name, or "" for a nil identity.
func (i *Identity) Name() string {
	if i == nil {
		return ""
	}
	return i.User
}

// Identified is implemented by leg devices that carry a person. The
// engine names such a leg "<backend>:<user>#N", lets it type only while
// its role is at least operate, and attributes its input to the user.
type Identified interface {
	Identity() *Identity
}

// IdentityOf returns dev's identity, or nil when dev carries none.
func IdentityOf(dev any) *Identity {
	if d, ok := dev.(Identified); ok {
		return d.Identity()
	}
	return nil
}

// LegNamer is implemented by devices that want to know the name the engine
// gave their leg (a session shows "you are ssh:alice#3"). The engine calls
// SetLegName once, before the leg's first Read.
type LegNamer interface {
	SetLegName(name string)
}

// InputAuthor says who typed an input chunk: the leg it came from and the
// person behind that leg (nil for a leg without identity, such as a raw
// TCP client).
type InputAuthor struct {
	Leg      string
	Identity *Identity
}

// User is the author's user name, or "" when the leg has no identity.
func (a InputAuthor) User() string { return a.Identity.Name() }

// AttributedInputRecorder is implemented by input recorders that also log
// who typed each chunk (a timestamped or asciicast capture, the audit
// log). The engine calls RecordInputFrom instead of RecordInput when a
// device has it; chunks from different legs are never merged, so one call
// has one author.
type AttributedInputRecorder interface {
	RecordInputFrom(who InputAuthor, p []byte) error
}

// LockStealer is implemented by the Control handle of a tee with an
// exclusive write lock: an admin takes the lock from whoever holds it.
// It returns the previous holder's leg and user ("" when the lock was
// free) and fails with ErrNotPermitted unless the leg's person is an
// admin of the tee.
type LockStealer interface {
	StealWriteLock() (prevLeg, prevUser string, err error)
}
