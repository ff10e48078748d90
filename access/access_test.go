package access

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"chartee/chardev"
)

func newKey(t *testing.T) (ssh.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " test@host"
}

func TestMain(m *testing.M) {
	// Real costs make -race runs take minutes; the algorithms are the
	// same with small parameters.
	DefaultArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}
	BcryptCost = bcrypt.MinCost
	goleak.VerifyTestMain(m)
}

// cheapHash is an argon2id hash with tiny parameters, for fast tests.
func cheapHash(t *testing.T, pw string) string {
	t.Helper()
	old := DefaultArgon2
	DefaultArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}
	defer func() { DefaultArgon2 = old }()
	h, err := HashPassword(pw, "argon2id")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func role(r chardev.Role) *chardev.Role { return &r }

func TestPolicyRolesGroupsDefaults(t *testing.T) {
	cfg := Config{
		Users: []User{
			{Name: "alice", Groups: []string{"ops"}},
			{Name: "bob"},
			{Name: "root", Groups: []string{"ops", "admins"}},
		},
		Grants: map[string]Grants{
			"c0": {Roles: map[string]chardev.Role{"@ops": chardev.RoleView, "alice": chardev.RoleOperate, "@admins": chardev.RoleAdmin}},
			"c1": {Roles: map[string]chardev.Role{"bob": chardev.RoleView}, Default: role(chardev.RoleOperate)},
		},
	}
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, tee string
		want      chardev.Role
	}{
		{"alice", "c0", chardev.RoleOperate}, // named beats group: highest wins
		{"root", "c0", chardev.RoleAdmin},
		{"bob", "c0", chardev.RoleNone}, // default none
		{"bob", "c1", chardev.RoleView}, // named below the tee default: the grant wins
		{"alice", "c1", chardev.RoleOperate},
		{"alice", "c9", chardev.RoleNone}, // tee without grants: policy default
		{"mallory", "c1", chardev.RoleNone},
	}
	for _, c := range cases {
		if got := p.Role(c.user, c.tee); got != c.want {
			t.Errorf("Role(%s, %s) = %s, want %s", c.user, c.tee, got, c.want)
		}
	}
	got := p.Consoles("bob", []string{"c1", "c0", "c9"})
	if len(got) != 1 || got[0].Tee != "c1" || got[0].Role != chardev.RoleView {
		t.Fatalf("consoles %+v", got)
	}
}

func TestPolicyKeysAndPasswords(t *testing.T) {
	k1, line1 := newKey(t)
	k2, line2 := newKey(t)
	k3, _ := newKey(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "keys")
	if err := os.WriteFile(f, []byte("# alice's second key\n\n"+line2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := cheapHash(t, "s3cret")
	p, err := NewPolicy(Config{Users: []User{{Name: "alice", AuthorizedKeys: []string{line1}, AuthorizedKeysFile: f, PasswordHash: h}, {Name: "bob"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []ssh.PublicKey{k1, k2} {
		if ok, fp := p.CheckKey("alice", k); !ok || !strings.HasPrefix(fp, "SHA256:") {
			t.Fatalf("key refused: %v %s", ok, fp)
		}
	}
	if ok, _ := p.CheckKey("alice", k3); ok {
		t.Fatal("wrong key accepted")
	}
	if ok, _ := p.CheckKey("bob", k1); ok {
		t.Fatal("alice's key accepted for bob")
	}
	if !p.CheckPassword("alice", "s3cret") || p.CheckPassword("alice", "s3cret ") || p.CheckPassword("bob", "") || p.CheckPassword("nobody", "s3cret") {
		t.Fatal("password checks wrong")
	}
	if !p.HasPassword("alice") || p.HasPassword("bob") || !p.HasUser("bob") || p.HasUser("eve") {
		t.Fatal("HasPassword/HasUser wrong")
	}
}

func TestBcryptAndBadHashes(t *testing.T) {
	h, err := HashPassword("pw", "bcrypt")
	if err != nil || !VerifyPassword(h, "pw") || VerifyPassword(h, "pW") || CheckHash(h) != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	for _, bad := range []string{"hunter2", "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$2b$99$xx"} {
		if CheckHash(bad) == nil {
			t.Errorf("CheckHash(%q) accepted", bad)
		}
	}
	if _, err := HashPassword("", ""); err == nil {
		t.Error("empty password hashed")
	}
}

func TestConfigCheckNamesUnknownGrantees(t *testing.T) {
	cfg := Config{Users: []User{{Name: "alice", Groups: []string{"ops"}}},
		Grants: map[string]Grants{"c0": {Roles: map[string]chardev.Role{"alcie": chardev.RoleView}}}}
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), `unknown user "alcie"; did you mean "alice"?`) {
		t.Fatalf("got %v", err)
	}
	cfg.Grants["c0"] = Grants{Roles: map[string]chardev.Role{"@opz": chardev.RoleView}}
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), `unknown group "opz"; did you mean "ops"?`) {
		t.Fatalf("got %v", err)
	}
	cfg.Grants = nil
	cfg.Users = append(cfg.Users, User{Name: "alice"})
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseAuthorizedKey(`from="10.0.0.1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl`); err == nil {
		t.Fatal("key options accepted")
	}
}

type fakeSession struct {
	mu      sync.Mutex
	revoked string
	changes []string
}

func (f *fakeSession) Revoke(reason string) { f.mu.Lock(); f.revoked = reason; f.mu.Unlock() }
func (f *fakeSession) RoleChanged(o, n chardev.Role) {
	f.mu.Lock()
	f.changes = append(f.changes, o.String()+"->"+n.String())
	f.mu.Unlock()
}

func TestGateLimitsAndReload(t *testing.T) {
	mk := func(r chardev.Role, users ...string) *Policy {
		var us []User
		roles := map[string]chardev.Role{}
		for _, u := range users {
			us = append(us, User{Name: u})
			roles[u] = r
		}
		p, err := NewPolicy(Config{Users: us, Grants: map[string]Grants{"c0": {Roles: roles}}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	g := NewGate(mk(chardev.RoleOperate, "alice", "bob"), Limits{MaxSessions: 3, MaxSessionsPerUser: 2})
	var sess []*fakeSession
	admit := func(user, tee string) (*Admission, error) {
		s := &fakeSession{}
		sess = append(sess, s)
		return g.Admit(&chardev.Identity{User: user}, tee, s)
	}
	a1, err := admit("alice", "c0")
	if err != nil || a1.Identity().Role() != chardev.RoleOperate {
		t.Fatal(err)
	}
	if _, err := admit("alice", "c1"); !errors.Is(err, ErrNoAccess) {
		t.Fatalf("no grant: %v", err)
	}
	if _, err := admit("eve", "c0"); !errors.Is(err, ErrNoAccess) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := admit("alice", "c0"); err != nil {
		t.Fatal(err)
	}
	if _, err := admit("alice", "c0"); !errors.Is(err, ErrUserTooMany) {
		t.Fatalf("per user: %v", err)
	}
	b1, err := admit("bob", "c0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admit("bob", "c0"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("overall: %v", err)
	}
	a1.Close()
	a1.Close() // idempotent
	if len(g.Sessions()) != 2 {
		t.Fatalf("sessions %v", g.Sessions())
	}
	// Reload: alice downgraded to view, bob removed.
	changed, revoked := g.SetPolicy(mk(chardev.RoleView, "alice"))
	if changed != 1 || revoked != 1 {
		t.Fatalf("changed %d revoked %d", changed, revoked)
	}
	if b1.Identity().Role() != chardev.RoleNone || !strings.Contains(sess[len(sess)-2].revoked, "revoked") {
		t.Fatalf("bob not revoked: %+v", sess[len(sess)-2])
	}
	if sess[3].changes[0] != "operate->view" {
		t.Fatalf("alice change %v", sess[3].changes)
	}
}
