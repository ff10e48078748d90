package config

import (
	"time"

	"chartee/access"
	"chartee/chardev"
	"chartee/tee"
	"chartee/watch"
)

// Config is a whole configuration file.
type Config struct {
	// File is where the config came from ("<embedded demo>" for the
	// default), used in messages.
	File    string
	Control Control
	Metrics Metrics
	Log     Log
	Tees    []*Tee
	// Access is who may reach the consoles (users, default role, audit
	// log); SSH is the SSH service (Listen empty: none).
	Access Access
	SSH    SSH
	// Web is the browser console (Listen empty: none).
	Web Web
	// Warnings are problems that do not stop the config from working but
	// deserve a look, like a listener open to the network without TLS.
	Warnings ErrorList
}

// Control configures the HTTP+JSON control API.
type Control struct {
	Socket    string // unix socket path, created 0600
	Listen    string // optional TCP listener; only with TokenFile
	TokenFile string
}

var (
	_ chardev.Claimer = Control{}
	_ chardev.Claimer = Metrics{}
)

// Claims is what the control API binds: its socket and its TCP listener.
func (c Control) Claims() []chardev.Claim {
	return []chardev.Claim{
		{Space: "unix", Address: c.Socket, Key: "socket"},
		chardev.Bind("tcp", "listen", c.Listen),
	}
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen string // host:port serving /metrics; empty: none
}

// Claims is the address /metrics is served on.
func (m Metrics) Claims() []chardev.Claim {
	return []chardev.Claim{chardev.Bind("tcp", "listen", m.Listen)}
}

// Log configures log/slog.
type Log struct {
	Level  string // debug|info|warn|error
	Format string // text|json
}

// Tee is one frontend and its backends.
type Tee struct {
	Name          string
	Input         tee.InputMode
	ExclusiveIdle time.Duration // 0: engine default
	InputBuffer   int           // 0: engine default
	Scrollback    int           // 0: engine default
	DrainTimeout  time.Duration // 0: engine default
	Frontend      Frontend
	Backends      []*Backend
	// Access is who may do what on this tee through SSH or the web
	// console; nil gives everyone access.default.
	Access *access.Grants
	// Watches are the patterns matched over the output and their
	// actions; reload replaces them without touching legs.
	Watches []watch.Spec
	// Pacing slows input to the frontend (zero: none).
	Pacing tee.Pacing
	// LineEnding is what `ctl send --line` appends (default "\r", what
	// the Enter key sends on a serial console).
	LineEnding []byte
	Pos        Pos
}

// Frontend is the tee's device, how to reconnect it, and its spares.
type Frontend struct {
	Device
	Reconnect tee.Backoff
	Failover  []Device
}

// Device is a backend type with its typed, validated options.
type Device struct {
	Type    string
	Spec    chardev.Spec
	Factory chardev.Factory
	Pos     Pos
	// Canonical is a stable encoding of Type and Spec: two devices with
	// equal Canonical are the same configuration (reload diffing).
	Canonical string
}

// Backend is a named device attached to a tee as legs.
type Backend struct {
	Name string
	Device
	Leg tee.LegOptions
	// Given lists the keys a spec from the API or the command line set
	// (nil for a config file, where every backend is whole): a swap
	// inherits the others from the backend it replaces (see Inherit).
	Given []string
}

// Pos is a place in a config file.
type Pos struct {
	File string
	Line int
	Col  int
}
