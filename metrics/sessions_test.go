package metrics

import (
	"fmt"
	"strings"
	"testing"

	"chartee/chardev"
	"chartee/chardev/memdev"
	"chartee/tee"
)

type personDev struct {
	*memdev.Device
	id *chardev.Identity
}

func (p personDev) Identity() *chardev.Identity { return p.id }

// TestSessionsByRoleWithoutUserNames: people on a tee are counted by
// backend and role; no series carries a user or leg name, and 30 users
// make no more series than one.
func TestSessionsByRoleWithoutUserNames(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)
	join := func(user string, role chardev.Role) personDev {
		d := personDev{memdev.New(user), chardev.NewIdentity(user, role)}
		if _, err := r.tee.Join("ssh", tee.LegOptions{Input: true}, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := join("user0", chardev.RoleView)
	waitValue(t, reg, 1, "chartee_sessions", "tee", "lab", "backend", "ssh", "role", "view")
	waitValue(t, reg, 0, "chartee_sessions", "tee", "lab", "backend", "ssh", "role", "operate")
	one := len(gatherSeries(t, reg))
	for i := 1; i < 30; i++ {
		role := chardev.RoleOperate
		if i%10 == 0 {
			role = chardev.RoleAdmin
		}
		join(fmt.Sprintf("user%d", i), role)
	}
	waitValue(t, reg, 27, "chartee_sessions", "tee", "lab", "backend", "ssh", "role", "operate")
	waitValue(t, reg, 2, "chartee_sessions", "tee", "lab", "backend", "ssh", "role", "admin")
	all := gatherSeries(t, reg)
	if len(all) != one {
		t.Fatalf("%d series with 30 people, %d with one", len(all), one)
	}
	for _, s := range all {
		for k, v := range s.labels {
			if strings.HasPrefix(v, "user") || strings.Contains(v, "#") {
				t.Fatalf("series %s carries %s=%q", s.key(), k, v)
			}
		}
	}
	first.EndInput()
	waitValue(t, reg, 0, "chartee_sessions", "tee", "lab", "backend", "ssh", "role", "view")
}
