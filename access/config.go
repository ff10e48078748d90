package access

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"chartee/chardev"
)

// Config is the access section of a configuration: users and, per tee,
// grants. The zero value lets nobody in.
type Config struct {
	Users []User
	// Grants maps a tee name to who may do what on it. A tee missing
	// from the map gives everyone Default.
	Grants map[string]Grants
	// Default is the role of a user on a tee that does not name them
	// (nor any of their groups) and has no default of its own.
	Default chardev.Role
}

// User is one person.
type User struct {
	Name string
	// AuthorizedKeys are authorized_keys lines (options are not
	// supported; comments and blank lines are skipped).
	AuthorizedKeys []string
	// AuthorizedKeysFile is a file of such lines, read by LoadKeys.
	AuthorizedKeysFile string
	// PasswordHash is a bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$)
	// hash; empty means no password login.
	PasswordHash string
	Groups       []string
}

// Grants are the roles on one tee.
type Grants struct {
	// Roles maps a user name, or "@group", to a role.
	Roles map[string]chardev.Role
	// Default is the role of users not named; nil means Config.Default.
	Default *chardev.Role
}

// GroupPrefix marks a group in a grant: "@ops".
const GroupPrefix = "@"

// ValidUserName reports why name cannot be a user (or group) name, or nil.
// ':' separates user and tee in an SSH login, '@' marks groups and hosts.
func ValidUserName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 64 {
		return fmt.Errorf("name %q: longer than 64 bytes", name)
	}
	for _, r := range name {
		ok := r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return fmt.Errorf("name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// ParseAuthorizedKeys parses authorized_keys text: one key per line,
// blank lines and # comments skipped. Lines with options (from="...",
// command="...") are refused rather than silently ignoring the
// restriction they ask for.
func ParseAuthorizedKeys(data []byte) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// ParseAuthorizedKey parses one authorized_keys line without options.
func ParseAuthorizedKey(line string) (ssh.PublicKey, error) {
	k, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("authorized key: %w", err)
	}
	if len(opts) > 0 {
		return nil, fmt.Errorf("authorized key: options (%s) are not supported; use roles in the access section", strings.Join(opts, ","))
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("authorized key: one key per line")
	}
	return k, nil
}

// LoadKeys returns u's keys: the inline lines and those of its file.
func (u *User) LoadKeys() ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, line := range u.AuthorizedKeys {
		k, err := ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("user %s: authorized_keys[%d]: %w", u.Name, i, err)
		}
		keys = append(keys, k)
	}
	if u.AuthorizedKeysFile != "" {
		data, err := os.ReadFile(u.AuthorizedKeysFile)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u.Name, err)
		}
		fk, err := ParseAuthorizedKeys(data)
		if err != nil {
			return nil, fmt.Errorf("user %s: %s: %w", u.Name, u.AuthorizedKeysFile, err)
		}
		keys = append(keys, fk...)
	}
	return keys, nil
}

// Check reports the first problem with cfg that the config layer's own
// checks would have caught (duplicate or invalid names, bad hashes,
// grants naming unknown users or groups). Files are not read.
func (cfg *Config) Check() error {
	users := map[string]bool{}
	groups := map[string]bool{}
	for _, u := range cfg.Users {
		if err := ValidUserName(u.Name); err != nil {
			return fmt.Errorf("access: user: %w", err)
		}
		if users[u.Name] {
			return fmt.Errorf("access: user %s: defined twice", u.Name)
		}
		users[u.Name] = true
		if u.PasswordHash != "" {
			if err := CheckHash(u.PasswordHash); err != nil {
				return fmt.Errorf("access: user %s: %w", u.Name, err)
			}
		}
		for _, g := range u.Groups {
			if err := ValidUserName(g); err != nil {
				return fmt.Errorf("access: user %s: group: %w", u.Name, err)
			}
			groups[g] = true
		}
	}
	for teeName, g := range cfg.Grants {
		for who := range g.Roles {
			if err := CheckGrantee(who, users, groups); err != nil {
				return fmt.Errorf("access: tee %s: %w", teeName, err)
			}
		}
	}
	return nil
}

// CheckGrantee reports whether who (a user or "@group") is known.
func CheckGrantee(who string, users, groups map[string]bool) error {
	if g, ok := strings.CutPrefix(who, GroupPrefix); ok {
		if !groups[g] {
			return fmt.Errorf("unknown group %q%s", g, suggest(g, keys(groups)))
		}
		return nil
	}
	if !users[who] {
		return fmt.Errorf("unknown user %q%s", who, suggest(who, keys(users)))
	}
	return nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// suggest returns "; did you mean X?" for the closest known name.
func suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// distance is the Levenshtein distance, bounded for short names.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
