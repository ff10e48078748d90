package handover

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Inherited is what a new process was handed: the state document and the
// carried files, in the order the old process listed them.
type Inherited struct {
	State []byte
	Files []*os.File
	conn  *os.File
	rd    *bufio.Reader
}

// Inherit returns what this process was handed, or nil when it was not
// started by a handover. It clears the handover variables from the
// environment, so programs the daemon starts do not see them.
func Inherit() (*Inherited, error) {
	fdText := os.Getenv(EnvFD)
	if fdText == "" {
		return nil, nil
	}
	nText := os.Getenv(EnvFiles)
	os.Unsetenv(EnvFD)
	os.Unsetenv(EnvFiles)
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("handover: %s=%q: not a file descriptor", EnvFD, fdText)
	}
	n, err := strconv.Atoi(nText)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("handover: %s=%q: not a count", EnvFiles, nText)
	}
	in := &Inherited{conn: os.NewFile(uintptr(fd), "handover")}
	for i := range n {
		in.Files = append(in.Files, os.NewFile(uintptr(fd+1+i), "inherited-"+strconv.Itoa(i)))
	}
	in.rd = bufio.NewReader(in.conn)
	var size [8]byte
	if _, err := io.ReadFull(in.rd, size[:]); err != nil {
		return nil, fmt.Errorf("handover: reading the state: %w", err)
	}
	l := binary.BigEndian.Uint64(size[:])
	if l > maxState {
		return nil, fmt.Errorf("handover: state of %d bytes is too large", l)
	}
	in.State = make([]byte, l)
	if _, err := io.ReadFull(in.rd, in.State); err != nil {
		return nil, fmt.Errorf("handover: reading the state: %w", err)
	}
	return in, nil
}

// ErrWithdrawn is returned by Ready when the old process did not commit:
// it rolled back (timeout) or died. The new process must exit without
// touching any inherited device.
var ErrWithdrawn = errors.New("handover: the old process did not hand over (it rolled back or died); exiting without touching anything")

// Ready tells the old process this one is ready, with info (one line: its
// version), and waits for its commit. Only after a nil return may the
// process read or write inherited devices.
func (in *Inherited) Ready(info string) error {
	info = strings.ReplaceAll(info, "\n", " ")
	if _, err := io.WriteString(in.conn, "ready "+info+"\n"); err != nil {
		return ErrWithdrawn
	}
	line, err := in.rd.ReadString('\n')
	in.conn.Close()
	if err != nil || line != "commit\n" {
		return ErrWithdrawn
	}
	return nil
}

// Fail tells the old process why this one cannot take over; the old
// process rolls back and reports reason.
func (in *Inherited) Fail(reason error) {
	msg := strings.ReplaceAll(reason.Error(), "\n", "; ")
	io.WriteString(in.conn, "fail "+msg+"\n")
	in.conn.Close()
}
