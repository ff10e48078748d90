package config

import (
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"chartee/access"
	"chartee/backends/escape"
	"chartee/chardev"
	"chartee/tee"
)

// Access is the access section: users, the default role and the audit log.
// Per-tee grants live in each tee (Tee.Access) and are gathered into
// Access.Policy.Grants when the whole file has been read.
type Access struct {
	Policy access.Config
	Audit  Audit
	Given  bool // the file has an access section
}

// Audit configures the audit trail file.
type Audit struct {
	Path        string
	RecordInput bool
	Rotate      AuditRotate
}

// AuditRotate is the audit file's size-based rotation (as a capture's).
type AuditRotate struct {
	MaxSize  int64
	Keep     int
	Compress bool
}

// Claims is the audit file's path.
func (a Audit) Claims() []chardev.Claim { return []chardev.Claim{chardev.Path("path", a.Path)} }

// SSH configures the SSH service: one port for every console.
type SSH struct {
	Listen  string
	HostKey string
	// Escape is the escape key of SSH sessions (default ^E).
	Escape byte
	// Leg options of every session: replay on attach, queue, overflow.
	Leg              tee.LegOptions
	MaxSessions      int
	MaxSessionsUser  int
	MaxAuthTries     int
	MaxStartups      int // connections not yet authenticated
	HandshakeTimeout time.Duration
	Keepalive        time.Duration
	KeepaliveCount   int
	Password         bool // password authentication for users with a hash
}

// SSHDefaults are the SSH service's defaults.
var SSHDefaults = SSH{
	Escape:           0x05, // ^E: the project's escape key
	Leg:              tee.LegOptions{Input: true, Replay: 16 << 10, Queue: 1 << 20, Overflow: tee.Drop},
	MaxSessions:      64,
	MaxSessionsUser:  8,
	MaxAuthTries:     3,
	MaxStartups:      32,
	HandshakeTimeout: 10 * time.Second,
	Keepalive:        15 * time.Second,
	KeepaliveCount:   3,
	Password:         true,
}

// Claims is the SSH listener and its host key file.
func (s SSH) Claims() []chardev.Claim {
	return []chardev.Claim{chardev.Bind("tcp", "listen", s.Listen), chardev.Path("host_key", s.HostKey)}
}

var (
	accessKeys = []string{"audit", "default", "users"}
	userKeys   = []string{"authorized_keys", "authorized_keys_file", "groups", "name", "password"}
	auditKeys  = []string{"path", "record_input", "rotate"}
	rotateKeys = []string{"compress", "keep", "max_size"}
	sshKeys    = []string{"escape", "handshake_timeout", "host_key", "keepalive", "keepalive_count", "listen",
		"max_auth_tries", "max_sessions", "max_sessions_per_user", "max_startups", "on_overflow", "password_auth",
		"queue", "replay"}
	grantKeys = []string{"admin", "default", "operate", "view"}
	roleNames = []string{"none", "view", "operate", "admin"}
)

// grantRef is a user or group named in a tee's grants, checked once every
// user is known.
type grantRef struct {
	who  string
	node *yaml.Node
	path string
}

// accessSection decodes the access section.
func (w *walker) accessSection(n *yaml.Node, path string, a *Access) {
	a.Given = true
	a.Audit.RecordInput = true
	a.Audit.Rotate.Keep = 5
	for _, p := range w.fixedSection(n, path, accessKeys) {
		pp := join(path, p.name)
		switch p.name {
		case "default":
			a.Policy.Default = w.role(p.val, pp)
		case "users":
			a.Policy.Users = w.users(p.val, pp)
		case "audit":
			w.audit(p.val, pp, &a.Audit)
		}
	}
}

// role decodes a role name.
func (w *walker) role(n *yaml.Node, path string) chardev.Role {
	r, _ := chardev.ParseRole(w.enum(n, path, roleNames...))
	return r
}

// users decodes the user list.
func (w *walker) users(n *yaml.Node, path string) []access.User {
	n = w.deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n, path, "want a list of users, got %s", describe(n))
		return nil
	}
	var out []access.User
	names := map[string]*yaml.Node{}
	for i, item := range n.Content {
		ip := index(path, i)
		u, nameNode := w.user(item, ip)
		if u.Name != "" {
			if first, dup := names[u.Name]; dup {
				w.errf(nameNode, ip+".name", "duplicate user %q%s", u.Name, w.firstAt(first))
				continue
			}
			names[u.Name] = nameNode
		}
		out = append(out, u)
	}
	return out
}

// user decodes one user.
func (w *walker) user(n *yaml.Node, path string) (access.User, *yaml.Node) {
	n = w.deref(n)
	var u access.User
	var nameNode *yaml.Node
	for _, p := range w.fixedSection(n, path, userKeys) {
		pp := join(path, p.name)
		switch p.name {
		case "name":
			nameNode = p.val
			u.Name = w.userName(p.val, pp)
		case "authorized_keys":
			for i, kn := range w.strList(p.val, pp) {
				s := w.str(kn, index(pp, i))
				if _, err := access.ParseAuthorizedKey(s); err != nil {
					w.errf(kn, index(pp, i), "%v", err)
					continue
				}
				u.AuthorizedKeys = append(u.AuthorizedKeys, s)
			}
		case "authorized_keys_file":
			u.AuthorizedKeysFile = w.str(p.val, pp)
		case "password":
			s := w.str(p.val, pp)
			if err := access.CheckHash(s); err != nil {
				w.errf(p.val, pp, "%v", err)
				continue
			}
			u.PasswordHash = s
		case "groups":
			for i, gn := range w.strList(p.val, pp) {
				if g := w.userName(gn, index(pp, i)); g != "" {
					u.Groups = append(u.Groups, g)
				}
			}
		}
	}
	if n != nil && n.Kind == yaml.MappingNode && nameNode == nil {
		w.errf(n, path, "name: required")
	}
	return u, nameNode
}

// userName decodes a user or group name.
func (w *walker) userName(n *yaml.Node, path string) string {
	before := w.count
	s := w.str(n, path)
	if w.count > before {
		return ""
	}
	if err := access.ValidUserName(s); err != nil {
		w.errf(n, path, "%v", err)
		return ""
	}
	return s
}

// strList returns the items of a list of scalars.
func (w *walker) strList(n *yaml.Node, path string) []*yaml.Node {
	n = w.deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n, path, "want a list, got %s", describe(n))
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		out = append(out, w.deref(c))
	}
	return out
}

// audit decodes the audit log section.
func (w *walker) audit(n *yaml.Node, path string, a *Audit) {
	ps := w.fixedSection(n, path, auditKeys)
	for _, p := range ps {
		pp := join(path, p.name)
		switch p.name {
		case "path":
			a.Path = w.str(p.val, pp)
		case "record_input":
			a.RecordInput = w.boolean(p.val, pp)
		case "rotate":
			for _, q := range w.fixedSection(p.val, pp, rotateKeys) {
				qp := join(pp, q.name)
				switch q.name {
				case "max_size":
					a.Rotate.MaxSize = int64(w.size(q.val, qp))
				case "keep":
					a.Rotate.Keep = w.count0(q.val, qp)
				case "compress":
					a.Rotate.Compress = w.boolean(q.val, qp)
				}
			}
		}
	}
	if a.Path == "" {
		w.errf(n, path, "path: required (the audit file)")
	}
	w.claimAll(n, ps, path, a.Claims())
}

// count0 decodes a non-negative integer.
func (w *walker) count0(n *yaml.Node, path string) int {
	var v int
	before := w.count
	w.scalar(n, path, reflectInt(&v))
	if w.count == before && v < 0 {
		w.errf(n, path, "%d: must not be negative", v)
	}
	return v
}

// sshSection decodes the ssh section.
func (w *walker) sshSection(n *yaml.Node, path string, s *SSH) {
	*s = SSHDefaults
	ps := w.fixedSection(n, path, sshKeys)
	for _, p := range ps {
		pp := join(path, p.name)
		switch p.name {
		case "listen":
			s.Listen = w.listenAddr(p.val, pp)
		case "host_key":
			s.HostKey = w.str(p.val, pp)
		case "escape":
			k, err := escape.ParseKey(w.str(p.val, pp))
			if err != nil {
				w.errf(p.val, pp, "%v", err)
			}
			s.Escape = k
		case "replay", "queue", "on_overflow":
			w.legKey(p, pp, &s.Leg)
		case "max_sessions":
			s.MaxSessions = w.count0(p.val, pp)
		case "max_sessions_per_user":
			s.MaxSessionsUser = w.count0(p.val, pp)
		case "max_auth_tries":
			s.MaxAuthTries = w.positive(p.val, pp)
		case "max_startups":
			s.MaxStartups = w.positive(p.val, pp)
		case "handshake_timeout":
			s.HandshakeTimeout = w.duration(p.val, pp)
		case "keepalive":
			s.Keepalive = w.duration(p.val, pp)
		case "keepalive_count":
			s.KeepaliveCount = w.positive(p.val, pp)
		case "password_auth":
			s.Password = w.boolean(p.val, pp)
		}
	}
	if s.Listen == "" {
		w.errf(n, path, "listen: required (host:port of the SSH service, e.g. 127.0.0.1:2222)")
	}
	if s.HostKey == "" {
		w.errf(n, path, "host_key: required (a file; an ed25519 key is generated there on first start)")
	}
	if s.HandshakeTimeout <= 0 {
		s.HandshakeTimeout = SSHDefaults.HandshakeTimeout
	}
	w.claimAll(n, ps, path, s.Claims())
}

// positive decodes an integer of at least 1.
func (w *walker) positive(n *yaml.Node, path string) int {
	var v int
	before := w.count
	w.scalar(n, path, reflectInt(&v))
	if w.count == before && v < 1 {
		w.errf(n, path, "%d: must be at least 1", v)
	}
	return v
}

// grants decodes a tee's access section; the names it uses are checked
// against the users once the file is read.
func (w *walker) grants(n *yaml.Node, path string, refs *[]grantRef) *access.Grants {
	g := &access.Grants{Roles: map[string]chardev.Role{}}
	for _, p := range w.fixedSection(n, path, grantKeys) {
		pp := join(path, p.name)
		if p.name == "default" {
			r := w.role(p.val, pp)
			g.Default = &r
			continue
		}
		r, _ := chardev.ParseRole(p.name)
		for i, wn := range w.strList(p.val, pp) {
			ip := index(pp, i)
			who := w.str(wn, ip)
			name := strings.TrimPrefix(who, access.GroupPrefix)
			if err := access.ValidUserName(name); err != nil {
				w.errf(wn, ip, "%v (a user, or @group)", err)
				continue
			}
			g.Roles[who] = max(g.Roles[who], r)
			*refs = append(*refs, grantRef{who: who, node: wn, path: ip})
		}
	}
	return g
}

// checkAccess runs the checks that need the whole file: every user and
// group a grant names exists, grants have someone to serve, a service
// that lets people in has users.
func (w *walker) checkAccess(cfg *Config, root *yaml.Node, refs []grantRef) {
	users, groups := map[string]bool{}, map[string]bool{}
	for _, u := range cfg.Access.Policy.Users {
		users[u.Name] = true
		for _, g := range u.Groups {
			groups[g] = true
		}
	}
	for _, r := range refs {
		if err := access.CheckGrantee(r.who, users, groups); err != nil {
			w.errf(r.node, r.path, "%v", err)
		}
	}
	cfg.Access.Policy.Grants = map[string]access.Grants{}
	for _, t := range cfg.Tees {
		if t.Access != nil {
			cfg.Access.Policy.Grants[t.Name] = *t.Access
		}
	}
	if cfg.SSH.Listen != "" && len(cfg.Access.Policy.Users) == 0 {
		w.errf(root, "ssh", "the ssh service needs users: add access.users")
	}
	if cfg.Web.Listen != "" && len(cfg.Access.Policy.Users) == 0 {
		w.errf(root, "web", "the web service needs users: add access.users")
	}
	for _, t := range cfg.Tees {
		if t.Access == nil {
			continue
		}
		for _, b := range t.Backends {
			for _, c := range claimsOf(b) {
				if c.Exposed && c.IsBind() {
					w.warnf(nil, "tees."+t.Name+".backends."+b.Name, "%s %s is reachable from the network and carries no identity: whoever connects bypasses the tee's access grants; bind it to 127.0.0.1", c.Space, c.Address)
				}
			}
		}
	}
}

// claimsOf is what a backend's spec claims, if it says.
func claimsOf(b *Backend) []chardev.Claim {
	if c, ok := b.Spec.(chardev.Claimer); ok {
		return c.Claims()
	}
	return nil
}

func reflectInt(p *int) reflect.Value { return reflect.ValueOf(p).Elem() }
