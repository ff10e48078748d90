package config

import (
	"os"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"chartee/chardev"
)

const accessBase = `
access:
  users:
    - name: alice
      authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b"]
      groups: [ops]
    - name: bob
      groups: [ops]
  audit:
    path: /tmp/audit.jsonl
    record_input: false
ssh:
  listen: 127.0.0.1:2222
  host_key: /tmp/hostkey
  max_sessions_per_user: 2
tees:
  - name: c0
    frontend: {type: null}
    access:
      admin: [alice]
      operate: ["@ops"]
      default: view
  - name: c1
    frontend: {type: null}
`

func TestAccessSectionParses(t *testing.T) {
	cfg := mustParse(t, accessBase)
	p := cfg.Access.Policy
	if len(p.Users) != 2 || p.Users[0].Name != "alice" || len(p.Users[0].AuthorizedKeys) != 1 || p.Users[1].Groups[0] != "ops" {
		t.Fatalf("users %+v", p.Users)
	}
	g, ok := p.Grants["c0"]
	if !ok || g.Roles["alice"] != chardev.RoleAdmin || g.Roles["@ops"] != chardev.RoleOperate || *g.Default != chardev.RoleView {
		t.Fatalf("grants %+v", p.Grants)
	}
	if _, ok := p.Grants["c1"]; ok {
		t.Fatal("c1 has no grants")
	}
	if cfg.Access.Audit.Path != "/tmp/audit.jsonl" || cfg.Access.Audit.RecordInput || cfg.Access.Audit.Rotate.Keep != 5 {
		t.Fatalf("audit %+v", cfg.Access.Audit)
	}
	s := cfg.SSH
	if s.Listen != "127.0.0.1:2222" || s.Escape != 0x05 || s.MaxSessionsUser != 2 || s.MaxSessions != SSHDefaults.MaxSessions || !s.Leg.Input {
		t.Fatalf("ssh %+v", s)
	}
}

func TestAccessErrorsHavePositionsAndSuggestions(t *testing.T) {
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown user", "admin: [alice]", "admin: [alcie]", `test.yaml:20:15: tees[0].access.admin[0]: unknown user "alcie"; did you mean "alice"?`},
		{"unknown group", `operate: ["@ops"]`, `operate: ["@opz"]`, `test.yaml:21:17: tees[0].access.operate[0]: unknown group "opz"; did you mean "ops"?`},
		{"typo in grant key", "operate: [", "operator: [", `test.yaml:21:7: tees[0].access.operator: unknown key for access; did you mean "operate"?`},
		{"typo in user key", "groups: [ops]\n    - name: bob", "group: [ops]\n    - name: bob", `did you mean "groups"?`},
		{"bad role", "default: view", "default: viewer", `"viewer" is not one of none, view, operate, admin; did you mean "view"?`},
		{"plain password", "      groups: [ops]\n    - name: bob", "      password: hunter2\n      groups: [ops]\n    - name: bob", "never put a plain password here"},
		{"duplicate user", "name: bob", "name: alice", `duplicate user "alice"`},
		{"bad key", "ssh-ed25519 AAAAC3", "ssh-ed25519 AAAAX3", "authorized key"},
		{"bad user name", "name: bob", "name: bo:b", "only letters, digits"},
		{"ssh typo", "max_sessions_per_user: 2", "max_session_per_user: 2", `did you mean "max_sessions_per_user"?`},
		{"ssh escape", "max_sessions_per_user: 2", "escape: x", "escape key"},
		{"audit without path", "path: /tmp/audit.jsonl", "rotate: {keep: 2}", "path: required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(accessBase, c.from) {
				t.Fatalf("base lacks %q", c.from)
			}
			text := strings.Replace(accessBase, c.from, c.to, 1)
			_, err := Parse("test.yaml", []byte(text))
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n%v\nwant %q", err, c.want)
			}
		})
	}
}

func TestSSHNeedsUsers(t *testing.T) {
	_, err := Parse("test.yaml", []byte("ssh: {listen: 127.0.0.1:2222, host_key: k}\ntees: [{name: t, frontend: {type: null}}]\n"))
	if err == nil || !strings.Contains(err.Error(), "the ssh service needs users") {
		t.Fatalf("got %v", err)
	}
}

func TestSSHListenerClaimsAreChecked(t *testing.T) {
	text := strings.Replace(accessBase, "  - name: c1\n    frontend: {type: null}\n",
		"  - name: c1\n    frontend: {type: null}\n    backends:\n      - {name: raw, type: tcp-listen, listen: 127.0.0.1:2222}\n", 1)
	_, err := Parse("test.yaml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:2222 is already bound") {
		t.Fatalf("duplicate bind not caught: %v", err)
	}
}

func TestExposedRawLegOnGrantedTeeWarns(t *testing.T) {
	text := strings.Replace(accessBase, "      default: view\n",
		"      default: view\n    backends:\n      - {name: raw, type: tcp-listen, listen: 0.0.0.0:7000}\n", 1)
	cfg := mustParse(t, text)
	if !strings.Contains(cfg.Warnings.Error(), "bypasses the tee's access grants") {
		t.Fatalf("warnings: %v", cfg.Warnings)
	}
}

func TestAccessExampleConfigChecks(t *testing.T) {
	data, err := os.ReadFile("../../../../configs/access-ssh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("access-ssh.yaml", data); err != nil {
		t.Fatal(err)
	}
}

// TestAccessGrantsProperty: whatever roles a tee grants to the configured
// users, the parsed grants say exactly that (the highest role per name).
func TestAccessGrantsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		names := []string{"alice", "bob", "@ops"}
		want := map[string]chardev.Role{}
		var b strings.Builder
		b.WriteString(strings.SplitN(accessBase, "tees:", 2)[0])
		b.WriteString("tees:\n  - name: c0\n    frontend: {type: null}\n    access:\n")
		for _, role := range []string{"view", "operate", "admin"} {
			who := rapid.SliceOfDistinct(rapid.SampledFrom(names), rapid.ID[string]).Draw(t, role)
			if len(who) == 0 {
				continue
			}
			r, _ := chardev.ParseRole(role)
			b.WriteString("      " + role + ": [")
			for i, w := range who {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(`"` + w + `"`)
				want[w] = max(want[w], r)
			}
			b.WriteString("]\n")
		}
		if len(want) == 0 {
			b.WriteString("      default: none\n")
		}
		cfg, err := Parse("p.yaml", []byte(b.String()))
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		got := cfg.Access.Policy.Grants["c0"].Roles
		if len(got) != len(want) {
			t.Fatalf("got %v want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("got %v want %v", got, want)
			}
		}
	})
}

func FuzzAccessSection(f *testing.F) {
	f.Add([]byte(accessBase))
	f.Add([]byte("access: {users: [{name: a, password: x}]}\ntees: [{name: t, frontend: {type: null}, access: {view: [b]}}]"))
	f.Add([]byte("ssh: {listen: 127.0.0.1:1, host_key: k}\naccess: {users: [{name: a, groups: [g]}]}\ntees: [{name: t, frontend: {type: null}, access: {admin: ['@g'], default: admin}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error")
			}
			return
		}
		// A parsed config's access section is consistent by itself.
		if err := cfg.Access.Policy.Check(); err != nil {
			t.Fatalf("parsed config fails access check: %v", err)
		}
	})
}
