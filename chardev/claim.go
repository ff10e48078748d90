package chardev

import (
	"net"
	"strings"
)

// Claim is one resource a configured device (or service) holds
// exclusively while it runs: an address it binds, a socket it creates, a
// file or device it writes. Two claims with the same ID cannot both be held
// at once.
type Claim struct {
	// Space is the namespace Address lives in: "tcp", "udp" or "unix" for
	// what the device binds, "path" for a file, device node or symlink it
	// opens or makes.
	Space string
	// Address is the host:port or path, as configured.
	Address string
	// Key is the spec key the address comes from ("listen", "path"), so
	// the config layer can point at it in an error.
	Key string
	// Exposed is whether peers beyond this machine can reach it: a bind
	// to an address that is not loopback. Use Bind to fill it in.
	Exposed bool
	// Encrypted is whether what crosses it is protected (TLS is on).
	Encrypted bool
	// CanEncrypt is whether the type has a way to encrypt it at all (a
	// `tls` section), which decides what an exposure warning advises.
	CanEncrypt bool
}

// Bind returns the claim of a device that binds addr in space ("tcp",
// "udp"): exposed unless addr is a loopback address.
func Bind(space, key, addr string) Claim {
	return Claim{Space: space, Address: addr, Key: key, Exposed: !IsLoopback(addr)}
}

// Path returns the claim of a device that owns the filesystem path p: a
// capture file, a serial device, a pty's symlink.
func Path(key, p string) Claim {
	return Claim{Space: "path", Address: p, Key: key}
}

// IsBind reports whether the claim is an address the device binds (as
// opposed to a path it opens).
func (c Claim) IsBind() bool {
	return c.Space == "tcp" || c.Space == "udp" || c.Space == "unix"
}

// ID is what two claims must not share; "" when the claim cannot collide
// (an empty address, or port 0, which asks the kernel for any free port).
func (c Claim) ID() string {
	if c.Address == "" {
		return ""
	}
	if c.Space == "tcp" || c.Space == "udp" {
		if _, port, err := net.SplitHostPort(c.Address); err == nil && port == "0" {
			return ""
		}
	}
	return c.Space + " " + c.Address
}

// Claimer is implemented by specs that hold something exclusively: every
// listening type, and types that own a path. It is caddy's WriterKey idiom
// widened to every resource: the config layer rejects two claims with the
// same ID (`chartee check` catches a duplicate bind before start) and warns
// about exposed, unencrypted ones; the daemon, on reload, lets the old
// holder of a claim go before the new one binds. Neither knows a concrete
// type, so a new listening type gets both by implementing Claims alone.
//
// Claims is called on a validated spec and must not do I/O. A spec whose
// claims depend on its form (udp: a listener, or a stream bound to a local
// address) returns what the form in use holds.
//
// Services that are not backends (the control API, the metrics endpoint,
// SSH and web listeners) declare their addresses the same way: the config
// type of their section implements Claimer, and the section's decoder hands
// it to the walker's claimAll (see config's Control and Metrics), so a
// service binding the address of a backend, or of another service, is
// reported at that key by `chartee check`.
type Claimer interface {
	Claims() []Claim
}

// ClaimsOf returns what v claims: nothing unless it is a Claimer.
func ClaimsOf(v any) []Claim {
	if c, ok := v.(Claimer); ok {
		return c.Claims()
	}
	return nil
}

// IsLoopback reports whether host:port (or a bare host) only listens on
// this machine.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
