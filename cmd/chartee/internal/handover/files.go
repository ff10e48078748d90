package handover

// Files cross the handover socket as SCM_RIGHTS, up to fdBatch riding on
// one byte of the stream. They are sent only after the cut, so the new
// process can start and read its config while the old one still runs,
// holding nothing the old process uses.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// fileReader reads the handover socket and collects the descriptors that
// arrive with it, in order. Every read goes through it, so a buffered
// reader on top may read ahead without dropping any.
type fileReader struct {
	c   *net.UnixConn
	oob []byte
	fds []int
}

func newFileReader(c *net.UnixConn) *fileReader {
	return &fileReader{c: c, oob: make([]byte, unix.CmsgSpace(4*fdBatch))}
}

var errTruncated = errors.New("handover: file descriptors were cut off in transit (RLIMIT_NOFILE too low?)")

func (r *fileReader) Read(p []byte) (int, error) {
	// The kernel stops a read after a message that carries descriptors,
	// so one read brings one batch at most (Go sets MSG_CMSG_CLOEXEC).
	n, oobn, flags, _, err := r.c.ReadMsgUnix(p, r.oob)
	if n < 0 {
		n = 0
	}
	if n == 0 && oobn == 0 && err == nil {
		err = io.EOF // recvmsg's 0 on a stream socket
	}
	if oobn > 0 {
		if perr := r.collect(r.oob[:oobn]); perr != nil && err == nil {
			err = perr
		}
	}
	if flags&unix.MSG_CTRUNC != 0 && err == nil {
		err = errTruncated
	}
	return n, err
}

func (r *fileReader) collect(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("handover: control message: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fmt.Errorf("handover: control message: %w", err)
		}
		r.fds = append(r.fds, fds...)
	}
	return nil
}

// take returns the n descriptors received as files, or closes them all
// and fails when it was not n.
func (r *fileReader) take(n int) ([]*os.File, error) {
	fds := r.fds
	r.fds = nil
	if len(fds) != n {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("handover: %d files announced, %d received", n, len(fds))
	}
	files := make([]*os.File, n)
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "inherited-"+strconv.Itoa(i))
	}
	return files, nil
}

// closeAll closes descriptors received but not taken.
func (r *fileReader) closeAll() {
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	r.fds = nil
}

// sendFiles sends files in batches, one byte each. The descriptors are
// read without Fd, which would put shared sockets into blocking mode.
func sendFiles(c *net.UnixConn, files []*os.File) error {
	defer runtime.KeepAlive(files)
	for len(files) > 0 {
		batch := files[:min(len(files), fdBatch)]
		files = files[len(batch):]
		fds := make([]int, len(batch))
		for i, f := range batch {
			fd, err := rawFD(f)
			if err != nil {
				return err
			}
			fds[i] = fd
		}
		if _, _, err := c.WriteMsgUnix([]byte{'F'}, unix.UnixRights(fds...), nil); err != nil {
			return fmt.Errorf("handover: sending files: %w", err)
		}
	}
	return nil
}

// rawFD is f's descriptor, valid while f is open.
func rawFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("handover: %s: %w", f.Name(), err)
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, fmt.Errorf("handover: %s: %w", f.Name(), err)
	}
	return fd, nil
}

// unixConn makes a net.UnixConn of one end of a socketpair (f is closed:
// the conn holds a duplicate).
func unixConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("handover: socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("handover: socket is a %T, not a unix socket", c)
	}
	return uc, nil
}
