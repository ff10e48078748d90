package access

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2Params are an argon2id hash's cost parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	KeyLen  uint32
}

// DefaultArgon2 is OWASP's argon2id recommendation (19 MiB, 2 passes, 1
// lane): strong, yet a burst of logins on a small appliance stays affordable.
var DefaultArgon2 = Argon2Params{Memory: 19 << 10, Time: 2, Threads: 1, KeyLen: 32}

// BcryptCost is the cost of new bcrypt hashes.
var BcryptCost = 12

// Limits on hashes read from a config: a hash is data an attacker with
// write access to the config could use to make every login burn memory.
const (
	maxArgonMemory = 1 << 20 // KiB: 1 GiB
	maxArgonTime   = 16
)

// HashPassword hashes pw with argon2id ("argon2id", the default) or bcrypt
// ("bcrypt"), in the encoding a config file holds.
func HashPassword(pw, algo string) (string, error) {
	if pw == "" {
		return "", errors.New("passwd: empty password")
	}
	switch algo {
	case "", "argon2id":
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return "", err
		}
		p := DefaultArgon2
		sum := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
		return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum)), nil
	case "bcrypt":
		if len(pw) > 72 {
			return "", errors.New("passwd: bcrypt takes at most 72 bytes; use argon2id")
		}
		h, err := bcrypt.GenerateFromPassword([]byte(pw), BcryptCost)
		return string(h), err
	}
	return "", fmt.Errorf("passwd: algorithm %q: want argon2id or bcrypt", algo)
}

// argonHash is a parsed argon2id hash.
type argonHash struct {
	p    Argon2Params
	salt []byte
	sum  []byte
}

// ParseArgon2id parses "$argon2id$v=19$m=65536,t=3,p=2$salt$hash" (the
// PHC string format, base64 without padding).
func ParseArgon2id(s string) (Argon2Params, []byte, []byte, error) {
	h, err := parseArgon2id(s)
	return h.p, h.salt, h.sum, err
}

func parseArgon2id(s string) (argonHash, error) {
	var h argonHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, errors.New(`argon2id hash: want $argon2id$v=19$m=...,t=...,p=...$salt$hash`)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, fmt.Errorf("argon2id hash: version %q: want v=%d", parts[2], argon2.Version)
	}
	var m, t, p uint64
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || seen[k] {
			return h, fmt.Errorf("argon2id hash: parameter %q", kv)
		}
		seen[k] = true
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return h, fmt.Errorf("argon2id hash: unknown parameter %q", k)
		}
	}
	switch {
	case m < 8 || m > maxArgonMemory:
		return h, fmt.Errorf("argon2id hash: memory m=%d KiB: want 8 to %d", m, maxArgonMemory)
	case t < 1 || t > maxArgonTime:
		return h, fmt.Errorf("argon2id hash: time t=%d: want 1 to %d", t, maxArgonTime)
	case p < 1 || p > 255:
		return h, fmt.Errorf("argon2id hash: threads p=%d: want 1 to 255", p)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return h, errors.New("argon2id hash: salt: want at least 8 bytes, base64 without padding")
	}
	sum, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(sum) < 16 || len(sum) > 64 {
		return h, errors.New("argon2id hash: hash: want 16 to 64 bytes, base64 without padding")
	}
	h.p = Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p), KeyLen: uint32(len(sum))}
	h.salt, h.sum = salt, sum
	return h, nil
}

// CheckHash reports whether s is a password hash chartee can verify. Plain
// text is refused: a config must never hold a password.
func CheckHash(s string) error {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		_, err := parseArgon2id(s)
		return err
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return fmt.Errorf("bcrypt hash: %w", err)
		}
		return nil
	}
	return errors.New("password: not a bcrypt ($2b$...) or argon2id ($argon2id$...) hash; never put a plain password here (make a hash with `chartee passwd`)")
}

// VerifyPassword reports whether pw matches hash, in constant time with
// respect to the password.
func VerifyPassword(hash, pw string) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		h, err := parseArgon2id(hash)
		if err != nil {
			return false
		}
		sum := argon2.IDKey([]byte(pw), h.salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen)
		return subtle.ConstantTimeCompare(sum, h.sum) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}
