package chardev

import "testing"

func TestClaimID(t *testing.T) {
	tests := []struct {
		c    Claim
		want string
	}{
		{Bind("tcp", "listen", "127.0.0.1:7000"), "tcp 127.0.0.1:7000"},
		{Bind("tcp", "listen", "127.0.0.1:0"), ""}, // any free port never clashes
		{Bind("udp", "listen", "[::1]:0"), ""},
		{Bind("udp", "listen", ""), ""},
		{Claim{Space: "unix", Address: "/run/x"}, "unix /run/x"},
		{Path("path", "/dev/ttyUSB0"), "path /dev/ttyUSB0"},
		{Path("path", ""), ""},
	}
	for _, tc := range tests {
		if got := tc.c.ID(); got != tc.want {
			t.Errorf("%+v: ID() = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestBindExposed(t *testing.T) {
	for addr, exposed := range map[string]bool{
		"127.0.0.1:1": false, "[::1]:1": false, "localhost:1": false, "LocalHost:1": false,
		"0.0.0.0:1": true, "[::]:1": true, "192.0.2.1:1": true, "example.com:1": true,
	} {
		if got := Bind("tcp", "listen", addr).Exposed; got != exposed {
			t.Errorf("Bind(%q).Exposed = %v, want %v", addr, got, exposed)
		}
	}
	if Path("path", "/x").Exposed || Path("path", "/x").IsBind() {
		t.Error("a path claim is neither exposed nor a bind")
	}
}

func TestClaimsOf(t *testing.T) {
	if ClaimsOf(struct{}{}) != nil {
		t.Error("a value that is not a Claimer claims nothing")
	}
	if got := ClaimsOf(claimer{}); len(got) != 1 || got[0].ID() != "tcp 127.0.0.1:1" {
		t.Errorf("ClaimsOf = %+v", got)
	}
}

type claimer struct{}

func (claimer) Claims() []Claim { return []Claim{Bind("tcp", "listen", "127.0.0.1:1")} }
