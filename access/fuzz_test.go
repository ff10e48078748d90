package access

import (
	"strings"
	"testing"

	"pgregory.net/rapid"

	"chartee/chardev"
)

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"alice", "alice:console0", "alice:", ":c0", "a:b:c", "al ice:c0", "ålice:c0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, login string) {
		u, tee, err := ParseTarget(login)
		if err != nil {
			return
		}
		if ValidUserName(u) != nil || strings.ContainsAny(tee, ":@ ") {
			t.Fatalf("%q -> %q %q", login, u, tee)
		}
		back := u
		if tee != "" {
			back += ":" + tee
		}
		if back != login {
			t.Fatalf("%q -> %q %q does not round-trip", login, u, tee)
		}
	})
}

func FuzzParseArgon2id(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=8,m=9,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=16$m=8,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, sum, err := ParseArgon2id(s)
		if err != nil {
			return
		}
		if p.Memory < 8 || p.Memory > maxArgonMemory || p.Time < 1 || p.Time > maxArgonTime || p.Threads < 1 ||
			len(salt) < 8 || len(sum) < 16 || int(p.KeyLen) != len(sum) {
			t.Fatalf("%q accepted with %+v", s, p)
		}
		if CheckHash(s) != nil {
			t.Fatalf("%q parsed but CheckHash refuses it", s)
		}
	})
}

func FuzzParseAuthorizedKeys(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b\n# c\n\n"))
	f.Add([]byte(`command="x" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl`))
	f.Add([]byte("ssh-rsa AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseAuthorizedKeys(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			if k == nil || len(k.Marshal()) == 0 {
				t.Fatal("nil key accepted")
			}
		}
	})
}

// TestParseTargetProperties: any valid user and console name joined by
// ':' parses back to the same pair; a bare valid user is a menu request.
func TestParseTargetProperties(t *testing.T) {
	name := rapid.StringMatching(`[A-Za-z0-9._-]{1,64}`)
	rapid.Check(t, func(t *rapid.T) {
		u := name.Draw(t, "user")
		c := name.Draw(t, "tee")
		gu, gt, err := ParseTarget(u + ":" + c)
		if err != nil || gu != u || gt != c {
			t.Fatalf("%q:%q -> %q %q %v", u, c, gu, gt, err)
		}
		gu, gt, err = ParseTarget(u)
		if err != nil || gu != u || gt != "" {
			t.Fatalf("%q -> %q %q %v", u, gu, gt, err)
		}
		bad := rapid.StringMatching(`[A-Za-z0-9]{0,5}[ @:/\x00][A-Za-z0-9]{0,5}`).Draw(t, "bad")
		if _, _, err := ParseTarget(bad + ":" + c); err == nil && strings.ContainsAny(bad, " @:/\x00") {
			t.Fatalf("user %q accepted", bad)
		}
	})
}

// TestRoleOrderProperty: a user's role is the highest grant naming them or
// a group of theirs, whatever the grants.
func TestRoleOrderProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		groups := rapid.SliceOfDistinct(rapid.SampledFrom([]string{"a", "b", "c"}), rapid.ID[string]).Draw(t, "groups")
		grants := map[string]int{}
		for _, who := range []string{"u", "@a", "@b", "@c"} {
			if rapid.Bool().Draw(t, "has "+who) {
				grants[who] = rapid.IntRange(0, 3).Draw(t, "role "+who)
			}
		}
		cfg := Config{Users: []User{{Name: "u", Groups: append([]string{"a", "b", "c"}[:0:0], groups...)}, {Name: "other", Groups: []string{"a", "b", "c"}}},
			Grants: map[string]Grants{"t": {Roles: toRoles(grants)}}}
		p, err := NewPolicy(cfg)
		if err != nil {
			t.Fatal(err)
		}
		want, named := 0, false
		for who, r := range grants {
			if who == "u" || containsGroup(groups, who) {
				want, named = max(want, r), true
			}
		}
		if !named {
			want = 0
		}
		if got := int(p.Role("u", "t")); got != want {
			t.Fatalf("grants %v groups %v: role %d, want %d", grants, groups, got, want)
		}
	})
}

func toRoles(m map[string]int) map[string]chardev.Role {
	out := map[string]chardev.Role{}
	for k, v := range m {
		out[k] = chardev.Role(v)
	}
	return out
}

func containsGroup(groups []string, who string) bool {
	for _, g := range groups {
		if "@"+g == who {
			return true
		}
	}
	return false
}
