package backends

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"chartee/chardev"
)

func init() {
	chardev.Register("unix-listen", chardev.Factory{
		NewSpec:       func() chardev.Spec { return NewUnixListenSpec() },
		Listen:        unixListen,
		InheritSource: unixInheritListen,
		Input:         true,
	})
}

var (
	_ chardev.Spec    = (*UnixListenSpec)(nil)
	_ chardev.Claimer = (*UnixListenSpec)(nil)
)

// UnixListenSpec configures unix-listen: a unix socket where every client
// that connects becomes a leg. It takes the tcp-listen keys except allow;
// the socket file's mode is its access control.
type UnixListenSpec struct {
	// Path is the socket file. A stale file left by a dead server is
	// removed on start; one a live server answers on is an error. The
	// file is removed on Close.
	Path string `yaml:"path" json:"path"`
	// Mode, an octal string like "0660", is applied to the socket file;
	// empty leaves what the umask gave.
	Mode string `yaml:"mode" json:"mode"`

	NetServeOptions `yaml:",inline"`
}

// Claims is the socket file the listener creates.
func (s *UnixListenSpec) Claims() []chardev.Claim {
	return []chardev.Claim{{Space: "unix", Address: s.Path, Key: "path"}}
}

// NewUnixListenSpec returns a spec with the defaults: raw protocol, reject
// when full.
func NewUnixListenSpec() *UnixListenSpec {
	return &UnixListenSpec{NetServeOptions: NetServeOptions{Protocol: ProtocolRaw, OnFull: OnFullReject}}
}

// Validate checks the spec; errors name the key.
func (s *UnixListenSpec) Validate() error {
	if s.Path == "" {
		return errors.New("path: required")
	}
	if _, err := unixParseMode(s.Mode); err != nil {
		return err
	}
	return s.NetServeOptions.Validate()
}

// unixParseMode parses the `mode` key; empty gives 0 (leave the mode alone).
func unixParseMode(s string) (fs.FileMode, error) {
	if s == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("mode %q: want an octal permission like \"0660\"", s)
	}
	return fs.FileMode(m), nil
}

func unixListen(ctx context.Context, spec chardev.Spec) (chardev.Source, error) {
	s, ok := spec.(*UnixListenSpec)
	if !ok {
		return nil, fmt.Errorf("unix-listen: spec is %T, want *UnixListenSpec", spec)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("unix-listen: %w", err)
	}
	mode, _ := unixParseMode(s.Mode)
	cfg, err := newNetSourceConfig("unix-listen", &s.NetServeOptions)
	if err != nil {
		return nil, err
	}
	cfg.peerName = unixPeerName
	if err := unixRemoveStale(ctx, s.Path); err != nil {
		return nil, fmt.Errorf("unix-listen: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", s.Path)
	if err != nil {
		return nil, fmt.Errorf("unix-listen: %w", err)
	}
	// The socket exists with the umask's mode until this chmod; clients
	// that connect in between are served, which only matters if the umask
	// is looser than the mode asked for.
	if s.Mode != "" {
		if err := os.Chmod(s.Path, mode); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("unix-listen: mode: %w", err)
		}
	}
	return newNetSource(ln, cfg), nil
}

// unixInheritListen rebuilds a listener carried by a chartee upgrade.
func unixInheritListen(spec chardev.Spec, c chardev.Carried) (chardev.Source, error) {
	s, ok := spec.(*UnixListenSpec)
	if !ok {
		return nil, fmt.Errorf("unix-listen: spec is %T, want *UnixListenSpec", spec)
	}
	cfg, err := newNetSourceConfig("unix-listen", &s.NetServeOptions)
	if err != nil {
		return nil, err
	}
	cfg.peerName = unixPeerName
	return netInheritSource(c, cfg)
}

// unixRemoveStale removes a socket file left behind by a server that is
// gone. A file that is not a socket, or a socket someone still answers on,
// is left alone and reported.
func unixRemoveStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s: exists and is not a socket", path)
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("%s: a server is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: checking for a stale socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// unixPeerName names a unix socket client by its process (SO_PEERCRED),
// since its address is empty, with the source's client number to tell
// clients of one process apart.
func unixPeerName(conn net.Conn, id uint64) string {
	name := "#" + strconv.FormatUint(id, 10)
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return name
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return name
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return name
	}
	return fmt.Sprintf("pid %d uid %d %s", cred.Pid, cred.Uid, name)
}
