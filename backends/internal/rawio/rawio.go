// Package rawio reads and writes non-blocking descriptors through their
// syscall.RawConn with raw system calls, for the keystroke path.
//
// Why: every read(2) or write(2) made through os.File or net.Conn enters
// the Go scheduler's syscall state (runtime.entersyscall). When the
// process was idle between two keystrokes, that wakes the runtime's
// sysmon thread, which then polls every 20 µs until the process is idle
// again: on a two-CPU machine, two extra context switches per keystroke
// and a CPU taken from the program echoing the key (docs/ENGINE.md,
// "Issue 10, third pass"). A read or write of a non-blocking descriptor
// never blocks, so it does not need that state: waiting is the runtime
// poller's job, through RawConn, as before (deadlines and Close work as
// with os.File and net.Conn).
package rawio

import (
	"io"
	"syscall"
	"unsafe"
)

// FD reads and writes one non-blocking descriptor. Its state is reused
// (no allocation per call): at most one Read and one Write at a time,
// which is how the engine uses a device.
type FD struct {
	rc syscall.RawConn
	r  op
	w  op
}

type op struct {
	fn  func(uintptr) bool
	p   []byte
	n   int
	err syscall.Errno
}

// New returns an FD for rc, the RawConn of a descriptor in non-blocking
// mode (an *os.File from os.NewFile of a non-blocking descriptor, a
// net.Conn).
func New(rc syscall.RawConn) *FD {
	f := &FD{rc: rc}
	f.r.fn = f.tryRead
	f.w.fn = f.tryWrite
	return f
}

// RawConn is the descriptor's RawConn, for what waits on the descriptor
// otherwise (a reader waiting without a goroutine, backends' read poller).
func (f *FD) RawConn() syscall.RawConn { return f.rc }

// Read reads into p, waiting with the runtime poller while there is
// nothing to read. It returns io.EOF for a read of 0 bytes, the errno of
// a failed read, or the poller's error (a deadline, a closed
// descriptor).
func (f *FD) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f.r.p = p
	err := f.rc.Read(f.r.fn)
	n, errno := f.r.n, f.r.err
	f.r.p, f.r.n, f.r.err = nil, 0, 0
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// TryWrite writes what the descriptor takes at once — possibly nothing —
// and never waits. Only a failed write is an error.
func (f *FD) TryWrite(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f.w.p = p
	err := f.rc.Write(f.w.fn)
	n, errno := f.w.n, f.w.err
	f.w.p, f.w.n, f.w.err = nil, 0, 0
	switch {
	case err != nil:
		return 0, err
	case errno == syscall.EAGAIN:
		return 0, nil
	case errno != 0:
		return 0, errno
	}
	return n, nil
}

// tryRead is one read attempt; false (wait for the poller) on EAGAIN.
func (f *FD) tryRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&f.r.p[0])), uintptr(len(f.r.p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		f.r.n, f.r.err = int(n), e
		return true
	}
}

// tryWrite is one write attempt: never waits for the descriptor.
func (f *FD) tryWrite(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&f.w.p[0])), uintptr(len(f.w.p)))
		if e == syscall.EINTR {
			continue
		}
		f.w.n, f.w.err = int(n), e
		if e != 0 {
			f.w.n = 0
		}
		return true
	}
}
