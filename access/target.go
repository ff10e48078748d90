package access

import (
	"fmt"
	"strings"
)

// ParseTarget splits an SSH login name: "alice:console0" is user alice
// asking for tee console0; "alice" is alice asking for the menu (tee "").
// Both parts must be valid names; the tee name is checked against the
// characters tee names allow, not against the running tees.
func ParseTarget(login string) (user, tee string, err error) {
	user, tee, hasTee := strings.Cut(login, ":")
	if err := ValidUserName(user); err != nil {
		return "", "", fmt.Errorf("login %q: user: %w", login, err)
	}
	if !hasTee {
		return user, "", nil
	}
	if tee == "" {
		return "", "", fmt.Errorf("login %q: empty console name after ':'", login)
	}
	if err := validTeeName(tee); err != nil {
		return "", "", fmt.Errorf("login %q: %w", login, err)
	}
	return user, tee, nil
}

// validTeeName accepts what the config accepts as a tee name: letters,
// digits, '.', '_' and '-'.
func validTeeName(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("console name %q: longer than 64 bytes", s)
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("console name %q: only letters, digits, '.', '_' and '-' are allowed", s)
		}
	}
	return nil
}
