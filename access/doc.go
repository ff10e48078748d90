// Package access is who may reach chartee's consoles and what they may do
// there: users, groups, per-tee roles, credential checks, and the live
// sessions that a reload must re-check. Services that let people in (the
// SSH service in package sshd, the browser console) build on it; the
// engine (package tee) only sees the chardev.Identity a session's device
// carries.
//
// # Model
//
// A Config lists Users (name, SSH authorized keys, an optional bcrypt or
// argon2id password hash, groups) and, per tee, Grants: a role for named
// users or groups ("@ops") and a default role for everyone else (none
// unless set). Roles are chardev.Role: view (read only), operate (may
// type, subject to the tee's exclusive write lock, and send a break),
// admin (also steals the write lock and runs ctl-level operations). A user
// named in several grants of one tee gets the highest role.
//
// NewPolicy checks a Config and compiles it into an immutable *Policy:
//
//	pol, err := access.NewPolicy(cfg)
//	ok, fp := pol.CheckKey("alice", key)       // ssh.PublicKey; fp is SHA256:...
//	ok = pol.CheckPassword("alice", "secret")  // constant time, also for unknown users
//	r := pol.Role("alice", "console0")         // chardev.RoleNone when not granted
//	for _, c := range pol.Consoles("alice") { ... } // tees alice may see, sorted
//
// # Sessions
//
// A Gate holds the policy in force and the live sessions. A service
// authenticates a person, then asks the gate to admit a session on a tee
// (this enforces max sessions overall and per user and refuses role none),
// and gives the engine a device that implements chardev.Identified with
// the session's Identity. The leg then attaches with tee.Join:
//
//	id := &chardev.Identity{User: "alice", Service: "web", Source: addr, AuthMethod: "password"}
//	s, err := gate.Admit(id, "console0", sess)  // sess implements access.Session; sets id's role
//	defer s.Close()                            // frees the slot
//	legName, err := t.Join("web", legOpts, dev) // dev.Identity() returns id
//
// Gate.SetPolicy (a reload) re-checks every live session: the role in the
// Identity is updated in place (the engine reads it on every input chunk,
// so a downgrade to view stops typing at once and the session keeps
// viewing), and a session whose role became none is told through
// Session.Revoke and must close.
//
// # Input attribution and audit
//
// Input typed on an identified leg reaches capture files and the audit
// log with its author (chardev.InputAuthor); package audit writes the
// JSON-lines audit file. A service reports its own happenings (a refused
// login, an admin operation) on the tee's event stream with tee.Emit, or
// to the gate's Audit hook when no tee is involved.
//
// # Names
//
// ParseTarget splits an SSH-style login name "user:tee" (Opengear's
// `ssh user:port@host`); ValidUserName says which user names are allowed
// (no ':' or '@', which the login syntax and group references need).
package access
