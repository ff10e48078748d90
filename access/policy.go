package access

import (
	"crypto/subtle"
	"slices"
	"sort"
	"sync"

	"golang.org/x/crypto/ssh"

	"chartee/chardev"
)

// Policy is a compiled, immutable Config: safe for concurrent use, and
// replaced whole on reload (Gate.SetPolicy).
type Policy struct {
	users  map[string]*compiledUser
	grants map[string]Grants
	deflt  chardev.Role
}

type compiledUser struct {
	User
	keys [][]byte // marshalled public keys
}

// dummyHash is a valid argon2id hash of nothing anyone types, with the
// default cost: checking a password for an unknown user costs the same as
// for a known one.
var dummyHashOnce = sync.OnceValue(func() string {
	h, err := HashPassword("\x00chartee-no-such-user\x00", "argon2id")
	if err != nil {
		panic(err)
	}
	return h
})

// NewPolicy checks cfg, reads every user's authorized_keys_file and
// compiles it.
func NewPolicy(cfg Config) (*Policy, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	p := &Policy{users: map[string]*compiledUser{}, grants: map[string]Grants{}, deflt: cfg.Default}
	for _, u := range cfg.Users {
		keys, err := u.LoadKeys()
		if err != nil {
			return nil, err
		}
		cu := &compiledUser{User: u}
		for _, k := range keys {
			cu.keys = append(cu.keys, k.Marshal())
		}
		p.users[u.Name] = cu
	}
	for name, g := range cfg.Grants {
		p.grants[name] = g
	}
	return p, nil
}

// HasUser reports whether name is a configured user.
func (p *Policy) HasUser(name string) bool {
	_, ok := p.users[name]
	return ok
}

// HasPassword reports whether the user may log in with a password.
func (p *Policy) HasPassword(user string) bool {
	u := p.users[user]
	return u != nil && u.PasswordHash != ""
}

// CheckKey reports whether key is one of user's keys, and its SHA256
// fingerprint.
func (p *Policy) CheckKey(user string, key ssh.PublicKey) (ok bool, fingerprint string) {
	fingerprint = ssh.FingerprintSHA256(key)
	u := p.users[user]
	if u == nil {
		return false, fingerprint
	}
	m := key.Marshal()
	for _, k := range u.keys {
		if len(k) == len(m) && subtle.ConstantTimeCompare(k, m) == 1 {
			return true, fingerprint
		}
	}
	return false, fingerprint
}

// CheckPassword reports whether pw is user's password. An unknown user, or
// one without a password, costs the same hash computation.
func (p *Policy) CheckPassword(user, pw string) bool {
	u := p.users[user]
	if u == nil || u.PasswordHash == "" {
		VerifyPassword(dummyHashOnce(), pw)
		return false
	}
	return VerifyPassword(u.PasswordHash, pw)
}

// Role is user's role on tee: the highest of the grants naming the user or
// one of their groups, else the tee's default, else the policy default.
// An unknown user has none.
func (p *Policy) Role(user, tee string) chardev.Role {
	u := p.users[user]
	if u == nil {
		return chardev.RoleNone
	}
	g, ok := p.grants[tee]
	if !ok {
		return p.deflt
	}
	best, named := chardev.RoleNone, false
	if r, ok := g.Roles[user]; ok {
		best, named = r, true
	}
	for _, grp := range u.Groups {
		if r, ok := g.Roles[GroupPrefix+grp]; ok {
			best, named = max(best, r), true
		}
	}
	if named {
		return best
	}
	if g.Default != nil {
		return *g.Default
	}
	return p.deflt
}

// Console is a tee a user may see, with their role on it.
type Console struct {
	Tee  string
	Role chardev.Role
}

// Consoles returns the tees among names on which user has at least view,
// sorted by name.
func (p *Policy) Consoles(user string, names []string) []Console {
	var out []Console
	for _, n := range names {
		if r := p.Role(user, n); r >= chardev.RoleView {
			out = append(out, Console{Tee: n, Role: r})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tee < out[j].Tee })
	return out
}

// Users lists the configured user names, sorted.
func (p *Policy) Users() []string {
	out := make([]string, 0, len(p.users))
	for n := range p.users {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Groups lists user's groups.
func (p *Policy) Groups(user string) []string {
	if u := p.users[user]; u != nil {
		return slices.Clone(u.Groups)
	}
	return nil
}
