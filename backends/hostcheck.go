package backends

import "chartee/chardev"

// Host checks (`chartee check`): what each spec needs on this host that
// the config alone cannot promise.
var (
	_ chardev.HostChecker = (*SerialSpec)(nil)
	_ chardev.HostChecker = (*FileSpec)(nil)
	_ chardev.HostChecker = (*PtySpec)(nil)
	_ chardev.HostChecker = (*UnixListenSpec)(nil)
	_ chardev.HostChecker = (*UnixConnectSpec)(nil)
)

// CheckHost warns about a serial port that is not there (unplugged, or a
// typo in a by-id name): chartee keeps retrying it, and says why.
func (s *SerialSpec) CheckHost() []error {
	return nonNil(chardev.CheckExists("path", s.Path,
		"chartee keeps retrying it and shows why it cannot open it in the log and in `chartee ctl list` (plug the adapter in, or check the name under /dev/serial/by-id/)"))
}

// CheckHost warns about a capture directory that does not exist.
func (s *FileSpec) CheckHost() []error { return nonNil(chardev.CheckDir("path", s.Path)) }

// CheckHost warns about a link directory that does not exist.
func (s *PtySpec) CheckHost() []error { return nonNil(chardev.CheckDir("link", s.Link)) }

// CheckHost warns about a socket directory that does not exist.
func (s *UnixListenSpec) CheckHost() []error { return nonNil(chardev.CheckDir("path", s.Path)) }

// CheckHost warns about a socket that is not there yet (QEMU not started).
func (s *UnixConnectSpec) CheckHost() []error {
	return nonNil(chardev.CheckExists("path", s.Path, "chartee keeps retrying it (start the program that serves it, e.g. QEMU with -chardev socket,server=on)"))
}

func nonNil(err error) []error {
	if err == nil {
		return nil
	}
	return []error{err}
}
