package backends

import (
	"context"
	"errors"
	"fmt"

	"chartee/chardev"
)

func init() {
	chardev.Register("unix-connect", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewUnixConnectSpec() },
		Open:    unixConnect,
		Inherit: unixInherit,
		Input:   true,
	})
}

var _ chardev.Spec = (*UnixConnectSpec)(nil)

// UnixConnectSpec configures unix-connect: one connection to a unix socket
// server. As a frontend it is how chartee attaches to QEMU
// (`-chardev socket,id=c0,path=…,server=on,wait=off`); with reconnect it
// rides through the guest's restarts.
type UnixConnectSpec struct {
	// Path is the server's socket file.
	Path string `yaml:"path" json:"path"`

	NetDialOptions `yaml:",inline"`
}

// NewUnixConnectSpec returns a spec with the defaults: raw protocol, a 10s
// connect timeout, no reconnection.
func NewUnixConnectSpec() *UnixConnectSpec {
	return &UnixConnectSpec{NetDialOptions: NetDialOptions{
		Protocol:       ProtocolRaw,
		ConnectTimeout: chardev.Duration(netDefaultConnectTimeout),
	}}
}

// Validate checks the spec; errors name the key.
func (s *UnixConnectSpec) Validate() error {
	if s.Path == "" {
		return errors.New("path: required")
	}
	if s.TLS != nil && s.TLS.ServerName == "" {
		return errors.New("tls: server_name: required over a unix socket (there is no host name to check)")
	}
	return s.NetDialOptions.Validate()
}

func unixConnect(ctx context.Context, spec chardev.Spec) (chardev.Chardev, error) {
	s, ok := spec.(*UnixConnectSpec)
	if !ok {
		return nil, fmt.Errorf("unix-connect: spec is %T, want *UnixConnectSpec", spec)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("unix-connect: %w", err)
	}
	dial, err := netDialFunc("unix", s.Path, "", &s.NetDialOptions)
	if err != nil {
		return nil, fmt.Errorf("unix-connect: %w", err)
	}
	return netOpenConn(ctx, "unix-connect", s.Path, dial, &s.NetDialOptions)
}

// unixInherit rebuilds a connection carried by a chartee upgrade (the
// QEMU chardev socket keeps its one connection).
func unixInherit(spec chardev.Spec, c chardev.Carried) (chardev.Chardev, error) {
	s, ok := spec.(*UnixConnectSpec)
	if !ok {
		return nil, fmt.Errorf("unix-connect: spec is %T, want *UnixConnectSpec", spec)
	}
	dial, err := netDialFunc("unix", s.Path, "", &s.NetDialOptions)
	if err != nil {
		return nil, fmt.Errorf("unix-connect: %w", err)
	}
	return netInheritConn(c, "unix-connect", s.Path, dial, &s.NetDialOptions)
}
