package harness

import (
	"fmt"
	"io"
)

// CpioEntry is one file in a newc cpio archive. Mode carries the file type
// bits (S_IFDIR, S_IFREG, S_IFCHR, S_IFLNK) as well as the permissions.
type CpioEntry struct {
	Name         string // without a leading slash: "bin/busybox"
	Mode         uint32
	Data         []byte // file contents, or the target of a symlink
	Major, Minor uint32 // device numbers of a character device
}

// File type bits of a cpio mode (the Linux st_mode values).
const (
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeChar    = 0o020000
	ModeSymlink = 0o120000
)

// WriteCpio writes entries as a "newc" (SVR4, no CRC) cpio archive, the
// format the Linux kernel unpacks as an initramfs. Writing it here keeps
// the e2e tests independent of the cpio program.
func WriteCpio(w io.Writer, entries []CpioEntry) error {
	cw := &countWriter{w: w}
	for i, e := range entries {
		if err := writeCpioEntry(cw, uint32(i+1), e); err != nil {
			return err
		}
	}
	if err := writeCpioEntry(cw, 0, CpioEntry{Name: "TRAILER!!!"}); err != nil {
		return err
	}
	return cw.err
}

func writeCpioEntry(cw *countWriter, ino uint32, e CpioEntry) error {
	nlink := uint32(1)
	if e.Mode&0o170000 == ModeDir {
		nlink = 2
	}
	// 13 fields of 8 hex digits after the magic; namesize counts the NUL.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
	cw.Write([]byte(hdr))
	cw.Write([]byte(e.Name))
	cw.Write([]byte{0})
	cw.pad4()
	cw.Write(e.Data)
	cw.pad4()
	return cw.err
}

// countWriter tracks the offset for the 4-byte alignment newc requires and
// keeps the first error, so the writer above stays linear.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countWriter) pad4() {
	if r := c.n % 4; r != 0 {
		c.Write(make([]byte, 4-r))
	}
}
