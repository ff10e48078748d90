//go:build !linux

package backends

import "syscall"

// readPoller is Linux's epoll set (readpoll.go); elsewhere a client's
// leg waits in Read as before.
type readPoller struct{}

var readPoll readPoller

func (readPoller) add(syscall.RawConn, func()) (uint64, bool) { return 0, false }

func (readPoller) cancel(uint64) func() { return nil }
