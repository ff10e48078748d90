package handover

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
)

// Inherited is the new process's side of a handover. State and Files are
// set by Prepared: the state document and the carried files, in the order
// the old process listed them.
type Inherited struct {
	State []byte
	Files []*os.File
	conn  *net.UnixConn
	fr    *fileReader
	rd    *bufio.Reader
}

// Inherit returns this process's handover socket, or nil when it was not
// started by a handover. It clears the handover variables from the
// environment, so programs the daemon starts do not see them. Nothing is
// read yet: the process prepares, then calls Prepared.
func Inherit() (*Inherited, error) {
	fdText := os.Getenv(EnvFD)
	if fdText == "" {
		return nil, nil
	}
	proto := os.Getenv(EnvProtocol)
	os.Unsetenv(EnvFD)
	os.Unsetenv(EnvProtocol)
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("handover: %s=%q: not a file descriptor", EnvFD, fdText)
	}
	if proto != protocol {
		return nil, fmt.Errorf("handover: the old process speaks handover protocol %q, this binary %q", proto, protocol)
	}
	conn, err := unixConn(os.NewFile(uintptr(fd), "handover"))
	if err != nil {
		return nil, err
	}
	return newInherited(conn), nil
}

func newInherited(conn *net.UnixConn) *Inherited {
	fr := newFileReader(conn)
	return &Inherited{conn: conn, fr: fr, rd: bufio.NewReaderSize(fr, 64<<10)}
}

// ErrWithdrawn is returned when the old process did not hand over: it
// rolled back (a timeout, a freeze that failed) or died. The new process
// must exit without touching any inherited device.
var ErrWithdrawn = errors.New("handover: the old process did not hand over (it rolled back or died); exiting without touching anything")

// Prepared tells the old process this one has started and checked its
// config, with info (one line: its version), and waits for the state and
// the files, which it sets. It may wait long: the old process freezes in
// between. An error other than ErrWithdrawn is a broken handover, which
// the caller should report with Fail.
func (in *Inherited) Prepared(info string) error {
	if err := in.say(msgPrepared, info); err != nil {
		return ErrWithdrawn
	}
	line, err := readLine(in.rd)
	if err != nil {
		return ErrWithdrawn
	}
	files, size, err := parseStateHeader(line)
	if err != nil {
		return err
	}
	// The files ride on one byte per batch, ahead of the document.
	if _, err := io.CopyN(io.Discard, in.rd, int64(batches(files))); err != nil {
		in.fr.closeAll()
		return withdrawnOr(err)
	}
	state := make([]byte, size)
	if _, err := io.ReadFull(in.rd, state); err != nil {
		in.fr.closeAll()
		return withdrawnOr(err)
	}
	fs, err := in.fr.take(files)
	if err != nil {
		return err
	}
	in.State, in.Files = state, fs
	return nil
}

// withdrawnOr is ErrWithdrawn for the old process's end, err otherwise.
func withdrawnOr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return ErrWithdrawn
	}
	return err
}

// Ready tells the old process this one is ready, with info (one line: its
// version), and waits for its commit. Only after a nil return may the
// process read or write inherited devices; then it calls Running.
func (in *Inherited) Ready(info string) error {
	if err := in.say(msgReady, info); err != nil {
		return ErrWithdrawn
	}
	line, err := readLine(in.rd)
	if err != nil || line != msgCommit {
		in.conn.Close()
		return ErrWithdrawn
	}
	return nil
}

// Running tells the old process the tees read on, with info (one line:
// how long each step took), and closes the handover socket.
func (in *Inherited) Running(info string) {
	in.say(msgRunning, info)
	in.conn.Close()
}

// Fail tells the old process why this one cannot take over; the old
// process rolls back and reports reason.
func (in *Inherited) Fail(reason error) {
	in.say(msgFail, reason.Error())
	in.fr.closeAll()
	for _, f := range in.Files {
		f.Close()
	}
	in.conn.Close()
}

func (in *Inherited) say(kind, arg string) error {
	_, err := io.WriteString(in.conn, formatMessage(kind, arg))
	return err
}
