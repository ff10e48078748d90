package chardev

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// HostChecker is implemented by specs that can tell, without opening
// anything, whether what they need is on this host now: a serial port that
// is not plugged in, a capture directory that was never made. `chartee
// check` prints what CheckHost returns as warnings (a device may appear
// later; a directory may be made by systemd's LogsDirectory=). Each error
// names the key and says what to do.
type HostChecker interface {
	CheckHost() []error
}

// CheckExists reports a device path that does not exist now.
func CheckExists(key, path, what string) error {
	if path == "" {
		return nil
	}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %s does not exist now; %s", key, path, what)
	default:
		return fmt.Errorf("%s: %w", key, err)
	}
}

// CheckDir reports a file path whose directory does not exist now, or is
// not a directory, with the fix.
func CheckDir(key, path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: the directory %s does not exist, so %s cannot be created; make it (mkdir -p %s), or under systemd set LogsDirectory= or RuntimeDirectory= in the unit (configs/chartee.service does)", key, dir, path, dir)
	case err != nil:
		return fmt.Errorf("%s: %w", key, err)
	case !fi.IsDir():
		return fmt.Errorf("%s: %s is not a directory", key, dir)
	}
	return nil
}

// CheckHost runs spec's host checks if it has any.
func CheckHost(spec Spec) []error {
	if h, ok := spec.(HostChecker); ok {
		return h.CheckHost()
	}
	return nil
}
