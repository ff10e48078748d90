package backends

// This file is how the network types freeze at a cut and are carried to
// the process a chartee upgrade hands over to (chardev.Freezer, Carrier,
// Adopter, Factory.Inherit): a read deadline in the past stops a Read
// without losing a byte (what the peer sends waits in the kernel), and
// the socket's file descriptor is duplicated into the new process, so the
// peer never sees a reconnection.
//
// Carried so far: tcp-listen and unix-listen listeners with their raw
// clients, and tcp-connect and unix-connect connections speaking raw.
// Not carried: TLS (its keys live in this process), telnet and RFC 2217
// (their negotiation state is not exported yet), clients with an escape
// key (the escape machine's state is not either); a tee with one of those
// refuses the upgrade and names it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"chartee/chardev"
)

// Interface guards.
var (
	_ chardev.Freezer = (*NetSource)(nil)
	_ chardev.Carrier = (*NetSource)(nil)
	_ chardev.Adopter = (*NetSource)(nil)
	_ chardev.Freezer = (*NetClient)(nil)
	_ chardev.Carrier = (*NetClient)(nil)
	_ chardev.Freezer = (*NetConn)(nil)
	_ chardev.Carrier = (*NetConn)(nil)
)

// netPast is the deadline that freezes: any time in the past.
var netPast = time.Unix(1, 0)

// netFrozen turns the error of a read stopped by Freeze into
// chardev.ErrFrozen. Nothing else sets a read deadline on a carried
// socket (a TLS handshake does, but TLS is never carried).
func netFrozen(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return chardev.ErrFrozen
	}
	return err
}

type deadliner interface{ SetDeadline(time.Time) error }

// Freeze makes Accept return chardev.ErrFrozen until Thaw; clients that
// connect meanwhile wait in the listen backlog.
func (s *NetSource) Freeze() error {
	d, ok := s.ln.(deadliner)
	if !ok {
		return fmt.Errorf("%s %s: freeze: %w", s.cfg.typ, s.addr, chardev.ErrUnsupported)
	}
	return d.SetDeadline(netPast)
}

// Thaw undoes Freeze.
func (s *NetSource) Thaw() error {
	if d, ok := s.ln.(deadliner); ok {
		return d.SetDeadline(time.Time{})
	}
	return nil
}

// netSourceState is a carried listener's state document.
type netSourceState struct {
	NextID uint64 `json:"next_id"`
}

// Carry hands over the listening socket.
func (s *NetSource) Carry() (chardev.Carried, error) {
	if s.cfg.tls != nil {
		return chardev.Carried{}, fmt.Errorf("%s %s: TLS sessions cannot be carried", s.cfg.typ, s.addr)
	}
	f, err := netFile(s.ln)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s %s: %w", s.cfg.typ, s.addr, err)
	}
	s.mu.Lock()
	st, _ := json.Marshal(netSourceState{NextID: s.nextID})
	s.mu.Unlock()
	return chardev.Carried{Files: []*os.File{f}, State: st}, nil
}

// netInheritSource rebuilds a carried listener with the spec's options.
func netInheritSource(c chardev.Carried, cfg netSourceConfig) (*NetSource, error) {
	if len(c.Files) != 1 {
		return nil, fmt.Errorf("%s: inherit: want 1 file, got %d", cfg.typ, len(c.Files))
	}
	var st netSourceState
	if err := json.Unmarshal(c.State, &st); err != nil {
		return nil, fmt.Errorf("%s: inherit: %w", cfg.typ, err)
	}
	ln, err := net.FileListener(c.Files[0])
	c.Files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("%s: inherit: %w", cfg.typ, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// The socket file is the old process's until it exits; the
		// new one must not unlink it on a failed start either.
		ul.SetUnlinkOnClose(false)
	}
	s := newNetSource(ln, cfg)
	s.nextID = st.NextID
	return s, nil
}

// netClientState is a carried client's state document.
type netClientState struct {
	Peer string `json:"peer"`
}

// Adopt rebuilds a client the old process's source had accepted.
func (s *NetSource) Adopt(c chardev.Carried) (chardev.Chardev, error) {
	if len(c.Files) != 1 {
		return nil, fmt.Errorf("%s %s: adopt: want 1 file, got %d", s.cfg.typ, s.addr, len(c.Files))
	}
	var st netClientState
	if err := json.Unmarshal(c.State, &st); err != nil {
		return nil, fmt.Errorf("%s %s: adopt: %w", s.cfg.typ, s.addr, err)
	}
	conn, err := net.FileConn(c.Files[0])
	c.Files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s: adopt: %w", s.cfg.typ, s.addr, err)
	}
	if s.cfg.tls != nil || s.cfg.wrapConn != nil {
		conn.Close()
		return nil, fmt.Errorf("%s %s: adopt: this listener's clients cannot be carried", s.cfg.typ, s.addr)
	}
	s.mu.Lock()
	s.nextID++
	cl := newNetClient(s, conn, st.Peer)
	s.clients = append(s.clients, cl)
	s.mu.Unlock()
	// The client had its banner and protocol start in the old process.
	cl.startOnce.Do(func() {
		stream, err := netWrapServer(conn, netServeConfig{protocol: ProtocolRaw})
		cl.stream, cl.startErr = stream, err
		cl.ready.Store(err == nil)
	})
	if s.cfg.serve.notices {
		return netNoticeClient{cl}, nil
	}
	return cl, nil
}

// Freeze makes Read return chardev.ErrFrozen until Thaw.
func (c *NetClient) Freeze() error { return c.conn.SetReadDeadline(netPast) }

// Thaw undoes Freeze.
func (c *NetClient) Thaw() error { return c.conn.SetReadDeadline(time.Time{}) }

// Carry hands over the client's connection.
func (c *NetClient) Carry() (chardev.Carried, error) {
	serve := c.src.cfg.serve
	switch {
	case c.src.cfg.tls != nil:
		return chardev.Carried{}, fmt.Errorf("%s: TLS sessions cannot be carried", c.Describe())
	case serve.protocol != "" && serve.protocol != ProtocolRaw:
		return chardev.Carried{}, fmt.Errorf("%s: protocol %s cannot be carried yet (only raw)", c.Describe(), serve.protocol)
	case serve.escape != 0:
		return chardev.Carried{}, fmt.Errorf("%s: clients with an escape key cannot be carried yet", c.Describe())
	case c.src.cfg.wrapConn != nil:
		return chardev.Carried{}, fmt.Errorf("%s: cannot be carried", c.Describe())
	}
	f, err := netFile(c.conn)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s: %w", c.Describe(), err)
	}
	st, _ := json.Marshal(netClientState{Peer: c.peer})
	return chardev.Carried{Files: []*os.File{f}, State: st}, nil
}

// rawConn returns the connection under d when it speaks raw, or nil.
func (d *NetConn) rawConn() net.Conn {
	if d.protocol != "" && d.protocol != ProtocolRaw {
		return nil
	}
	c, _ := d.connected().(net.Conn)
	return c
}

// Freeze makes Read return chardev.ErrFrozen until Thaw.
func (d *NetConn) Freeze() error {
	c := d.rawConn()
	if c == nil {
		return fmt.Errorf("%s %s: freeze: not connected, or not raw: %w", d.typ, d.addr, chardev.ErrUnsupported)
	}
	return c.SetReadDeadline(netPast)
}

// Thaw undoes Freeze.
func (d *NetConn) Thaw() error {
	if c := d.rawConn(); c != nil {
		return c.SetReadDeadline(time.Time{})
	}
	return nil
}

// Carry hands over the connection.
func (d *NetConn) Carry() (chardev.Carried, error) {
	c := d.rawConn()
	if c == nil {
		return chardev.Carried{}, fmt.Errorf("%s %s: only a connected raw stream can be carried", d.typ, d.addr)
	}
	if _, ok := c.(interface{ ConnectionState() }); ok {
		return chardev.Carried{}, fmt.Errorf("%s %s: TLS sessions cannot be carried", d.typ, d.addr)
	}
	f, err := netFile(c)
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s %s: %w", d.typ, d.addr, err)
	}
	return chardev.Carried{Files: []*os.File{f}, State: []byte("{}")}, nil
}

// netInheritConn rebuilds a carried raw connection as a NetConn that
// redials with o's options once it is lost.
func netInheritConn(c chardev.Carried, typ, addr string, dial func(context.Context) (net.Conn, error), o *NetDialOptions) (chardev.Chardev, error) {
	if o.Protocol != "" && o.Protocol != ProtocolRaw || o.TLS != nil {
		return nil, fmt.Errorf("%s %s: inherit: only raw connections are carried", typ, addr)
	}
	if len(c.Files) != 1 {
		return nil, fmt.Errorf("%s %s: inherit: want 1 file, got %d", typ, addr, len(c.Files))
	}
	conn, err := net.FileConn(c.Files[0])
	c.Files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s: inherit: %w", typ, addr, err)
	}
	return netAdoptConn(conn, typ, addr, dial, o), nil
}

// netFile duplicates the socket under v.
func netFile(v any) (*os.File, error) {
	f, ok := v.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("%T has no file descriptor to carry", v)
	}
	return f.File()
}

// netAdoptConn makes a NetConn of a connection already established.
func netAdoptConn(conn net.Conn, typ, addr string, dial func(context.Context) (net.Conn, error), o *NetDialOptions) *NetConn {
	d := &NetConn{typ: typ, addr: addr, protocol: o.Protocol, dial: dial}
	if o.Reconnect != nil {
		d.backoff = o.Reconnect.backoff()
	}
	d.cond = sync.NewCond(&d.mu)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.cur, d.gen = conn, 1
	return d
}
