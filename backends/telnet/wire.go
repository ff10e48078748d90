package telnet

import (
	"net"
	"sync"
)

// wire serialises everything written to a connection, data and protocol
// alike, so an answer never lands inside a data write. It also keeps
// what a write cut short (a process upgrade's FreezeWrite: a write
// deadline in the past) still owes the peer to complete what it began:
// the second byte of a doubled IAC or of an NVT CR NUL, the rest of a
// protocol message. The next write sends that first, in this process
// after a rollback or in the one the connection was carried to.
type wire struct {
	mu   sync.Mutex
	conn net.Conn
	buf  []byte
	owed []byte
}

// flushLocked sends what a cut write owes. Needs w.mu.
func (w *wire) flushLocked() error {
	for len(w.owed) > 0 {
		n, err := w.conn.Write(w.owed)
		w.owed = w.owed[n:]
		if err != nil {
			return err
		}
	}
	w.owed = nil
	return nil
}

// raw writes protocol bytes; what a failed write leaves unsent is owed.
func (w *wire) raw(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.flushLocked(); err != nil {
		w.owed = append(w.owed, b...)
		return err
	}
	n, err := w.conn.Write(b)
	if err != nil {
		w.owed = append(w.owed, b[n:]...)
	}
	return err
}

// data writes p escaped for the wire. On a failed write it returns how
// many bytes of p went out or began to: the rest of a begun byte's
// escape is owed, so the caller resends exactly p[n:].
func (w *wire) data(p []byte, binary bool) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.flushLocked(); err != nil || len(p) == 0 {
		return 0, err
	}
	w.buf = AppendData(w.buf[:0], p, binary)
	nw, err := w.conn.Write(w.buf)
	if err == nil {
		return len(p), nil
	}
	n, end := wireCut(p, binary, nw)
	w.owed = append(w.owed, w.buf[nw:end]...)
	return n, err
}

// owedBytes returns what is owed, or ok false while a write is in
// progress.
func (w *wire) owedBytes() (owed []byte, ok bool) {
	if !w.mu.TryLock() {
		return nil, false
	}
	defer w.mu.Unlock()
	return append([]byte(nil), w.owed...), true
}

// wireCut says, for nw bytes of AppendData(p, binary) written, how many
// bytes of p went out or began to, and where their escape ends on the
// wire.
func wireCut(p []byte, binary bool, nw int) (n, end int) {
	for i := range p {
		if end >= nw {
			return i, end
		}
		end += escapedLen(p, i, binary)
	}
	return len(p), end
}

// escapedLen is how many wire bytes AppendData makes of p[i].
func escapedLen(p []byte, i int, binary bool) int {
	switch b := p[i]; {
	case b == IAC:
		return 2
	case b == '\r' && !binary && (i+1 == len(p) || p[i+1] != '\n'):
		return 2
	}
	return 1
}
