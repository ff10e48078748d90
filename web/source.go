package web

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"chartee/chardev"
	"chartee/tee"
)

// source is a tee backend's source of viewer legs: the WebSocket handler
// hands each new viewer to it, and the tee's accept loop makes it a leg.
type source struct {
	addr string
	ch   chan *viewer
	done chan struct{}
	once sync.Once
}

var _ chardev.Source = (*source)(nil)

func newSource(addr string) *source {
	return &source{addr: addr, ch: make(chan *viewer), done: make(chan struct{})}
}

// Accept implements chardev.Source.
func (s *source) Accept() (chardev.Chardev, error) {
	select {
	case v := <-s.ch:
		return v, nil
	case <-s.done:
		return nil, fmt.Errorf("web: %w", net.ErrClosed)
	}
}

// Close implements chardev.Source: the tee detached the backend or closed.
func (s *source) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// Addr implements chardev.Source.
func (s *source) Addr() string { return s.addr }

func (s *source) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// offer hands v to the accept loop; false if the source closed first.
func (s *source) offer(v *viewer) bool {
	select {
	case s.ch <- v:
		return true
	case <-s.done:
		return false
	case <-v.ctx.Done():
		return false
	}
}

var errNoSource = errors.New("web: console not available")

// sources keeps one source per tee and role, attached on first use, and
// again after the backend was detached or the tee replaced (reload).
type sources struct {
	mu   sync.Mutex
	m    map[srcKey]*source
	addr string
	opts tee.LegOptions
}

type srcKey struct {
	t    *tee.Tee
	role Role
}

func (ss *sources) get(t *tee.Tee, role Role) (*source, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[srcKey]*source{}
	}
	k := srcKey{t, role}
	if s := ss.m[k]; s != nil && !s.closed() {
		return s, nil
	}
	for k, s := range ss.m { // forget sources of closed tees
		if s.closed() {
			delete(ss.m, k)
		}
	}
	s := newSource(ss.addr)
	if err := t.AttachSource(role.backendName(), role.legOptions(ss.opts), s); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoSource, err)
	}
	ss.m[k] = s
	return s, nil
}

// detachAll removes the viewer backends from their tees (server
// shutdown): their sources stop and every browser leg is closed.
func (ss *sources) detachAll() {
	ss.mu.Lock()
	m := ss.m
	ss.m = nil
	ss.mu.Unlock()
	for k, s := range m {
		if !s.closed() {
			k.t.Detach(k.role.backendName())
		}
	}
}
