package cli

import (
	"net"
	"os"
)

// sdNotify sends state to systemd's notification socket ($NOTIFY_SOCKET,
// set for a Type=notify unit); without one it does nothing. The unit
// shipped in configs/ is Type=notify with NotifyAccess=all: the daemon
// says READY=1 once it serves, and across an upgrade the old process
// names the new one (MAINPID=) before it exits, so systemd neither
// considers the service dead nor kills the process that took over, and
// `systemctl reload` (SIGHUP to $MAINPID) reaches the new one.
func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
