package web

import "chartee/tee"

// Role is what a user may do on one console.
type Role int

// Roles, weakest first. RoleNone does not see the console at all.
const (
	RoleNone Role = iota
	// RoleView watches: output only, no input, no break, no lock.
	RoleView
	// RoleOperate types, sends breaks, takes and releases the write lock.
	RoleOperate
	// RoleAdmin also changes line settings and modem lines (control).
	RoleAdmin
)

var roleNames = [...]string{"none", "view", "operate", "admin"}

func (r Role) String() string {
	if r >= 0 && int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "none"
}

func (r Role) canType() bool { return r >= RoleOperate }

// backendName is the tee backend whose legs are this role's viewers.
func (r Role) backendName() string { return "web:" + r.String() }

// legOptions are the engine rights of this role's legs: the engine, not
// the page, enforces that a viewer cannot type or send a break.
func (r Role) legOptions(base tee.LegOptions) tee.LegOptions {
	o := base
	o.Input = r.canType()
	o.Control = r >= RoleAdmin
	return o
}
