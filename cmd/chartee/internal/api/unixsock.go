package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// unixSocket is a listening unix socket whose file only its owner can
// open. The mode is the socket's access control, so the socket is never
// reachable under its real name with a looser mode: it is bound under a
// random temporary name in the same directory, chmod'ed to 0600, then
// renamed into place. Changing the process umask instead would race with
// every other goroutine creating files.
type unixSocket struct {
	net.Listener
	path string
	info os.FileInfo // the socket file we created, to remove only that one
}

func listenUnix(path string) (*unixSocket, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+hex.EncodeToString(suffix[:]))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w", path, err)
	}
	// The listener would unlink the temporary name on Close; we unlink
	// the real one ourselves.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*unixSocket, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("api: listen on %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixSocket{Listener: ln, path: path, info: info}, nil
}

// removeStaleSocket removes path if it is a socket nobody listens on (left
// by a crash). A live socket means another daemon runs: that is an error,
// as is any file that is not a socket.
func removeStaleSocket(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if info.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("api: %s exists and is not a socket; not replacing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("api: %s: another process is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api: %s: cannot tell whether it is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api: removing stale socket: %w", err)
	}
	return nil
}

// Close stops listening and removes the socket file, unless it has been
// replaced by another process's socket meanwhile.
func (u *unixSocket) Close() error {
	err := u.Listener.Close()
	if cur, serr := os.Lstat(u.path); serr == nil && os.SameFile(cur, u.info) {
		os.Remove(u.path)
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
