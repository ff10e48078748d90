package access

import (
	"errors"
	"fmt"
	"sync"

	"chartee/chardev"
)

// Errors from Gate.Admit. Services show them to the person refused.
var (
	ErrNoAccess    = errors.New("access denied")
	ErrTooMany     = errors.New("too many sessions")
	ErrUserTooMany = errors.New("too many sessions for this user")
)

// Session is what a service registers for each live session, so a reload
// can re-check it.
type Session interface {
	// Revoke tells the session its access is gone (reason is shown to
	// the person); it must close soon. It is called without gate locks
	// held and must not block for long.
	Revoke(reason string)
	// RoleChanged tells the session its role on its tee changed (a
	// downgraded session keeps viewing). Called like Revoke.
	RoleChanged(old, now chardev.Role)
}

// Limits bound a gate's sessions. Zero means no limit.
type Limits struct {
	MaxSessions        int // overall
	MaxSessionsPerUser int
}

// Gate holds the policy in force and every live session admitted through
// it. The zero value admits nobody until SetPolicy.
type Gate struct {
	mu       sync.Mutex
	pol      *Policy
	limits   Limits
	sessions map[*Admission]struct{}
	perUser  map[string]int
}

// Admission is one admitted session; Close frees its slot.
type Admission struct {
	g    *Gate
	id   *chardev.Identity
	tee  string
	s    Session
	once sync.Once
}

// NewGate returns a gate enforcing pol (which may be nil: nobody) and lim.
func NewGate(pol *Policy, lim Limits) *Gate {
	return &Gate{pol: pol, limits: lim}
}

// Policy is the policy in force (nil before the first SetPolicy).
func (g *Gate) Policy() *Policy {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pol
}

// SetLimits changes the limits for sessions admitted from now on.
func (g *Gate) SetLimits(lim Limits) {
	g.mu.Lock()
	g.limits = lim
	g.mu.Unlock()
}

// Admit admits id's session on tee if the policy grants at least view and
// the limits allow one more session. It sets id's role. s (may be nil)
// is told when a later policy revokes or changes that role.
func (g *Gate) Admit(id *chardev.Identity, tee string, s Session) (*Admission, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := chardev.RoleNone
	if g.pol != nil {
		r = g.pol.Role(id.User, tee)
	}
	if r < chardev.RoleView {
		return nil, fmt.Errorf("%s on %s: %w", id.User, tee, ErrNoAccess)
	}
	if g.limits.MaxSessions > 0 && len(g.sessions) >= g.limits.MaxSessions {
		return nil, fmt.Errorf("%w (limit %d)", ErrTooMany, g.limits.MaxSessions)
	}
	if g.limits.MaxSessionsPerUser > 0 && g.perUser[id.User] >= g.limits.MaxSessionsPerUser {
		return nil, fmt.Errorf("%s: %w (limit %d)", id.User, ErrUserTooMany, g.limits.MaxSessionsPerUser)
	}
	id.SetRole(r)
	a := &Admission{g: g, id: id, tee: tee, s: s}
	if g.sessions == nil {
		g.sessions = map[*Admission]struct{}{}
		g.perUser = map[string]int{}
	}
	g.sessions[a] = struct{}{}
	g.perUser[id.User]++
	return a, nil
}

// Close frees the session's slot. It is idempotent.
func (a *Admission) Close() {
	a.once.Do(func() {
		g := a.g
		g.mu.Lock()
		delete(g.sessions, a)
		if g.perUser[a.id.User]--; g.perUser[a.id.User] <= 0 {
			delete(g.perUser, a.id.User)
		}
		g.mu.Unlock()
	})
}

// Tee is the tee the session was admitted on.
func (a *Admission) Tee() string { return a.tee }

// Identity is the session's identity.
func (a *Admission) Identity() *chardev.Identity { return a.id }

// SetPolicy puts pol in force and re-checks every live session: roles are
// updated in place, sessions whose role became none are revoked. It
// returns how many sessions were changed and revoked.
func (g *Gate) SetPolicy(pol *Policy) (changed, revoked int) {
	type note struct {
		a        *Admission
		old, now chardev.Role
	}
	var notes []note
	g.mu.Lock()
	g.pol = pol
	for a := range g.sessions {
		old := a.id.Role()
		now := chardev.RoleNone
		if pol != nil {
			now = pol.Role(a.id.User, a.tee)
		}
		if now == old {
			continue
		}
		// The role changes before anyone is told, so a revoked or
		// downgraded session cannot type one more chunk.
		a.id.SetRole(now)
		notes = append(notes, note{a, old, now})
	}
	g.mu.Unlock()
	for _, n := range notes {
		if n.now == chardev.RoleNone {
			revoked++
			if n.a.s != nil {
				n.a.s.Revoke(fmt.Sprintf("access to %s revoked for %s", n.a.tee, n.a.id.User))
			}
			continue
		}
		changed++
		if n.a.s != nil {
			n.a.s.RoleChanged(n.old, n.now)
		}
	}
	return changed, revoked
}

// SessionInfo describes a live session.
type SessionInfo struct {
	User    string `json:"user"`
	Tee     string `json:"tee"`
	Role    string `json:"role"`
	Service string `json:"service"`
	Source  string `json:"source"`
	Auth    string `json:"auth_method"`
}

// Sessions lists the live sessions.
func (g *Gate) Sessions() []SessionInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]SessionInfo, 0, len(g.sessions))
	for a := range g.sessions {
		out = append(out, SessionInfo{User: a.id.User, Tee: a.tee, Role: a.id.Role().String(),
			Service: a.id.Service, Source: a.id.Source, Auth: a.id.AuthMethod})
	}
	return out
}
